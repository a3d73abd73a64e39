"""Perturbations and noise estimates: central differences at ε and 2ε, random directions, rounding.

The finite-difference side of every checker (conventions §3). A scalar
function φ (the cost, or ⟨c, f(x)⟩ for a cotangent c) is evaluated in float64
at x ± ε e_j and x ± 2ε e_j (or x ± εv, x ± 2εv for a random unit direction
v), in batches. Then

* D_ε = (φ(x + ε) - φ(x - ε)) / 2ε is the reference, and
* the noise bound of entry j is |D_2ε - D_ε| + δφ/ε + r_j:
  - truncation: D_h = φ' + c h² + ..., so D_2ε - D_ε = 3cε² measures the
    O(ε²) term (three times over; rounding in it only adds);
  - rounding of φ: each evaluation is off by at most about δφ, so the
    quotient by up to 2δφ/2ε = δφ/ε. δφ is estimated per problem: the larger of
    u·φ_abs (u = 2^-53, φ_abs the sum of absolute values, e.g. J for a sum of
    losses) and the gap between φ computed in float32 and in float64, scaled
    by u64/u32 (rounding scales with the unit roundoff; the gap captures
    cancellation that u·|φ| misses);
  - r_j: the rounding of the float64 gradient under test itself (see
    ``rounding_estimate``).

``rounding_estimate`` turns the same computation done in two precisions into
an estimate of each one's rounding error: a float32 (or bfloat16) result
differs from its float64 recomputation on upcast copies by its rounding
(plus float64's, 2^29 times smaller); a float64 result's rounding is
estimated as its float32 recomputation's gap times u64/u32.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from jaxnn.check.options import TINY, unit_roundoff

CHUNK = 512
U64 = 2.0**-53


def batch_size(n: int, chunk: int = CHUNK) -> int:
    """Rows per batched evaluation: a power of two from 256 to ``chunk``.

    The eager primitives are compiled once per shape, so networks of similar
    size reuse them.

    Args:
      n: the number of evaluations wanted.
      chunk: the largest batch.

    >>> batch_size(10), batch_size(1000)
    (256, 512)
    """
    return min(chunk, max(256, 1 << (max(n, 1) - 1).bit_length()))


def unit_directions(rng: np.random.Generator, k: int, shape) -> np.ndarray:
    """``k`` random unit vectors of shape ``shape`` (Gaussian, normalised), stacked: (k, *shape).

    Args:
      rng: the NumPy generator.
      k: how many.
      shape: the shape of each.

    >>> unit_directions(np.random.default_rng(0), 2, (3,)).shape
    (2, 3)
    """
    V = rng.standard_normal((k, *shape))
    norms = np.sqrt(np.sum(V.reshape(k, -1) ** 2, axis=1)).reshape((k,) + (1,) * len(shape))
    return V / np.maximum(norms, TINY)


def entry_differences(run: Callable, x: np.ndarray, idx: np.ndarray, eps: float, one_sided: bool = False):
    """Central differences at ε and 2ε along the coordinates ``idx`` of the flat float64 vector ``x``.

    Args:
      run: ``run(js, ss) -> (values (B, K), flags (B,))``: φ (K values, one
        per cotangent) at x with x[js[b]] += ss[b]·ε, and a flag that
        excludes the perturbation (a kink in reach). B is a batch size.
      x: the flat point, float64 (n,).
      idx: the coordinates to perturb (k,).
      eps: ε.
      one_sided: also return the forward and backward one-sided quotients
        (φ(x+2ε) - φ(x+ε))/ε and (φ(x-ε) - φ(x-2ε))/ε, each (k, K).

    Returns:
      ``(D_ε (k, K), D_2ε (k, K), excluded (k,))``; the steps actually taken
      (x + hε) - (x - hε) after rounding are the denominators.

    >>> run = lambda js, ss: ((np.arange(3.0)[js] + ss * 1e-3)[:, None] ** 2, np.zeros(len(js), bool))
    >>> D1, D2, ex = entry_differences(run, np.arange(3.0), np.arange(3), 1e-3)
    >>> np.round(D1[:, 0], 2).tolist()
    [0.0, 2.0, 4.0]
    """
    k = idx.size
    js = np.tile(idx, 4)
    ss = np.repeat([1.0, -1.0, 2.0, -2.0], k)
    vals, flags = _batched(run, (js, ss), 4 * k, batch_size(4 * k))
    xs = x[idx]
    step1 = (xs + eps) - (xs - eps)
    step2 = (xs + 2 * eps) - (xs - 2 * eps)
    v = vals.reshape(4, k, -1)
    with np.errstate(all="ignore"):
        D1 = (v[0] - v[1]) / step1[:, None]
        D2 = (v[2] - v[3]) / step2[:, None]
        if one_sided:  # (φ(x+2ε) - φ(x+ε))/ε and (φ(x-ε) - φ(x-2ε))/ε: they differ across a kink
            sides = ((v[2] - v[0]) / eps, (v[1] - v[3]) / eps)
    excluded = flags.reshape(4, k).any(axis=0)
    return (D1, D2, excluded, *sides) if one_sided else (D1, D2, excluded)


def direction_differences(run: Callable, V: np.ndarray, eps: float):
    """Central differences at ε and 2ε along the rows of ``V`` (unit directions over the flat x).

    Args:
      run: ``run(deltas) -> (values (B, K), flags (B,))``: φ at x + deltas[b].
      V: (k, n) directions.
      eps: ε.

    Returns:
      ``(D_ε (k, K), D_2ε (k, K), excluded (k,))``.

    >>> run = lambda d: (((1.0 + d.sum(axis=1)) ** 2)[:, None], np.zeros(len(d), bool))
    >>> D1, _, _ = direction_differences(run, np.ones((1, 1)), 1e-3)
    >>> round(float(D1[0, 0]), 2)
    2.0
    """
    k = V.shape[0]
    rows = np.concatenate([V, -V, 2 * V, -2 * V]) * eps
    # directions are few and each is a whole evaluation: batches of the next power of two
    vals, flags = _batched(run, (rows,), 4 * k, min(CHUNK, 1 << (4 * k - 1).bit_length()))
    v = vals.reshape(4, k, -1)
    D1 = (v[0] - v[1]) / (2 * eps)
    D2 = (v[2] - v[3]) / (4 * eps)
    return D1, D2, flags.reshape(4, k).any(axis=0)


def _batched(run, arrays, n, B):
    """``run`` over ``n`` rows of ``arrays`` in batches of ``B`` rows (padded with the first row)."""
    vals, flags = [], []
    for start in range(0, n, B):
        part = [a[start : start + B] for a in arrays]
        k = part[0].shape[0]
        part = [np.concatenate([p, np.repeat(p[:1], B - k, axis=0)]) for p in part]
        v, f = run(*part)  # host arrays: the run converts them in its own precision (float64)
        v = np.asarray(v, np.float64).reshape(B, -1)[:k]
        vals.append(v)
        flags.append(np.asarray(f, bool).reshape(B)[:k])
    return np.concatenate(vals), np.concatenate(flags)


def fd_noise(D1: np.ndarray, D2: np.ndarray, delta_phi, eps: float, rounding=0.0) -> np.ndarray:
    """Per-entry noise bound of a central difference: |D_2ε - D_ε| + δφ/ε + rounding.

    Args:
      D1: D_ε.
      D2: D_2ε, same shape.
      delta_phi: δφ, the estimated rounding error of one evaluation of φ
        (broadcast against D1: one per cotangent).
      eps: ε.
      rounding: the rounding estimate of the float64 value compared with D_ε.

    >>> float(fd_noise(np.ones(1), np.ones(1), 1e-16, 1e-6)[0])
    1e-10
    """
    with np.errstate(all="ignore"):
        n = np.abs(D2 - D1) + np.asarray(delta_phi) / eps + rounding
    return np.where(np.isfinite(n), n, 0.0)


def rounding_estimate(native, partner, native_dtype) -> tuple[np.ndarray, np.ndarray]:
    """Rounding-error estimates ``(of the native result, of its float64 version)`` per entry.

    ``native`` was computed in ``native_dtype``; ``partner`` is the same
    computation in float64 on upcast copies when ``native_dtype`` is narrower,
    else in float32 on downcast copies. See the module docstring.

    Args:
      native: the result in the caller's dtype (as float64 NumPy).
      partner: the recomputation (as float64 NumPy), same shape.
      native_dtype: the caller's dtype.

    Returns:
      ``(r_native, r_64)``, non-negative, same shape; 0 where a side is not finite.

    >>> r, r64 = rounding_estimate(np.array([1.0 + 2**-24]), np.array([1.0]), "float32")
    >>> float(r[0]) == 2**-24, float(r64[0]) == 2**-53
    (True, True)
    """
    with np.errstate(all="ignore"):
        gap = np.abs(np.asarray(native, np.float64) - np.asarray(partner, np.float64))
    gap = np.where(np.isfinite(gap), gap, 0.0)
    u = unit_roundoff(native_dtype)
    if u == U64:
        scaled = gap * (U64 / unit_roundoff("float32"))
        return scaled, scaled
    return gap, gap * (U64 / u)


def partner_dtype(native_dtype) -> str:
    """The precision the rounding estimate recomputes in: float32 for float64, float64 otherwise.

    Args:
      native_dtype: the caller's dtype.

    >>> partner_dtype("float32"), partner_dtype("float64")
    ('float64', 'float32')
    """
    return "float32" if unit_roundoff(native_dtype) == U64 else "float64"


SCATTER_POINTS = 16


def scatter_rounding(batched: Callable, x, u: float, *args, points: int = SCATTER_POINTS) -> np.ndarray:
    """Rounding noise of a function at ``x``, measured: the scatter of its values about a line, per entry.

    The function is evaluated at x ⊙ (1 + t_s 64u r) for one random r in
    [-1, 1]^n and ``points`` values t_s in [-1, 1]: a move of a few dozen units
    in the last place of every input, which changes the low bits of every
    intermediate value while the function itself changes linearly in t (to
    far below u). The largest residual of a straight-line fit in t is the
    rounding noise of one evaluation. Closed-over constants keep their
    precision, so this holds where recomputing in another precision cannot.

    Args:
      batched: ``batched(xs, *args)``: the function vmapped over the rows of xs (points, n).
      x: the flat point, a jax array (n,).
      u: the unit roundoff of the computation.
      *args: further arguments of ``batched`` (not perturbed).
      points: how many evaluations.

    Returns:
      The per-entry noise amplitude, float64 NumPy, flat.

    >>> import jax
    >>> float(scatter_rounding(jax.vmap(jnp.sum), jnp.ones(3), 2.0**-24).max()) < 1e-6
    True
    """
    xs, ts = scatter_points(x, u, points)
    vals = np.asarray(batched(jnp.asarray(xs, x.dtype), *args), np.float64).reshape(points, -1)
    return scatter_residual(vals, ts)


def scatter_points(x, u: float, points: int = SCATTER_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """The points of ``scatter_rounding``: ``(xs (points, n) float64, ts (points,))``.

    Args:
      x: the flat point (n,).
      u: the unit roundoff of the computation.
      points: how many.

    >>> xs, ts = scatter_points(np.ones(2), 2.0**-24)
    >>> xs.shape, ts.shape
    ((16, 2), (16,))
    """
    r = np.random.default_rng(0).uniform(-1.0, 1.0, np.shape(x))
    ts = np.linspace(-1.0, 1.0, points)
    return np.asarray(x, np.float64)[None] * (1 + ts[:, None] * 64 * u * r[None]), ts


def scatter_residual(vals: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """The largest residual of a straight-line fit in t of each column of ``vals`` (points, n).

    Args:
      vals: the function's values at the points of ``scatter_points``.
      ts: their t.

    >>> ts = np.linspace(-1, 1, 16)
    >>> float(scatter_residual(np.outer(ts, np.ones(2)), ts).max()) < 1e-12
    True
    """
    vals = np.asarray(vals, np.float64).reshape(len(ts), -1)
    basis = np.stack([np.ones(len(ts)), ts], axis=1)
    coef, *_ = np.linalg.lstsq(basis, vals, rcond=None)
    with np.errstate(all="ignore"):
        res = np.abs(vals - basis @ coef).max(axis=0)
    return np.where(np.isfinite(res), res, 0.0)


def phi_rounding(phi64: np.ndarray, phi_low: np.ndarray, phi_abs: np.ndarray, low_dtype) -> np.ndarray:
    """δφ: the estimated rounding error of one float64 evaluation of φ (see the module docstring).

    Args:
      phi64: φ in float64 (K,).
      phi_low: φ in ``low_dtype`` at the same point (K,).
      phi_abs: the sum of absolute values behind φ (K,).
      low_dtype: float32 (or the caller's narrower dtype).

    >>> float(phi_rounding(np.ones(1), np.ones(1), np.ones(1), "float32")[0]) == 2**-53
    True
    """
    with np.errstate(all="ignore"):
        gap = np.abs(np.asarray(phi_low, np.float64) - phi64) * (U64 / unit_roundoff(low_dtype))
    gap = np.where(np.isfinite(gap), gap, 0.0)
    return np.maximum(U64 * np.abs(phi_abs), gap)
