"""``check_gradients``: a network's hand-derived gradient vs autodiff, finite differences, jvp (formulas §4).

The gradient under test is ``jaxnn.backward`` (or your own ``backward(params,
cache, Y, net)``); it is compared with up to three references:

* ``"autodiff"``: ``jax.grad`` of ``jaxnn.cost``, in the caller's dtype
  (rtol 1e-5 for float32, 1e-10 for float64);
* ``"finite_difference"``: central differences in float64 on upcast copies
  of params, X and Y (rtol 1e-6); every entry of small leaves in one batched
  (``jax.vmap``) evaluation, random unit directions v for leaves larger than
  ``max_entries`` (⟨g, v⟩ against the difference quotient along v);
* ``"jvp"``: forward mode, ``jax.jvp`` of the cost along random unit
  directions in each leaf, against ⟨g, v⟩, in float64 (rtol 1e-10).

Each comparison passes when error <= rtol + its estimated noise bound
(``jaxnn.check.compare``, ``jaxnn.check.perturb``): for autodiff the rounding
of both sides, measured by recomputing them in float64 on upcast copies (or,
for a float64 model, in float32, scaled by u64/u32); for finite differences
the truncation seen between steps ε and 2ε plus the rounding of J over ε.

Kinks (ReLU, leaky ReLU at 0, any ``Activation.kinks``): a finite difference
whose ±ε or ±2ε step brings a pre-activation within ``kink_margin`` times its
move of a kink is excluded and counted; an example with a pre-activation
exactly on a kink of a custom activation is left out of autodiff and jvp.
The report also says which range of Z^[l] each layer's check exercised.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.check.compare import summarise
from jaxnn.check.engine import finite_difference_method, jvp_method
from jaxnn.check.network_kernels import custom_kink_examples, kernel
from jaxnn.check.network_methods import FDContext, autodiff_result, drop_note, network_problem
from jaxnn.check.options import (
    AUTODIFF_THRESHOLDS,
    DEFAULT_METHODS,
    FD_THRESHOLD,
    JVP_THRESHOLD,
    PARAM_NAMES,
    check_eps,
    check_methods,
    check_network_inputs,
    check_positive_ints,
    check_thresholds,
    full_precision_matmuls,
    param_dtype,
    unit_roundoff,
)
from jaxnn.check.perturb import (
    partner_dtype,
    phi_rounding,
    rounding_estimate,
)
from jaxnn.check.report import GradientReport, LayerCoverage
from jaxnn.core.compat import enable_x64, to_device
from jaxnn.core.forward import forward
from jaxnn.core.network import Network

Array = jax.Array


@full_precision_matmuls
def check_gradients(
    params: list[dict],
    X: Array,
    Y: Array,
    net: Network,
    *,
    backward: Callable | None = None,
    methods: Sequence[str] = DEFAULT_METHODS,
    eps: float = 1e-6,
    thresholds: Mapping[str, float] | None = None,
    l2: float = 0.0,
    key: jax.Array | None = None,
    keep_prob: float = 1.0,
    fd_mode: str = "auto",
    max_entries: int = 4096,
    n_directions: int = 4,
    kink_margin: float = 4.0,
    seed: int = 0,
    n_worst: int = 5,
    jit: bool = True,
) -> GradientReport:
    """Check a network's hand-derived gradient against autodiff, finite differences and/or jvp.

    Args:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``, any float dtype.
      X: (n_x, m), one column per example.
      Y: (n_L, m).
      net: the ``Network`` (custom ``Activation``/``Loss`` objects welcome).
      backward: your own ``backward(params, cache, Y, net) -> grads`` (e.g. a
        student's delta recursion; cache from ``jaxnn.forward``) checked in
        place of ``jaxnn.backward``; grads must have the structure, shapes
        and dtypes of params.
      methods: any of ``"autodiff"`` (jax.grad, caller's dtype),
        ``"finite_difference"`` (central differences in float64), ``"jvp"``
        (jax.jvp along random directions, float64).
      eps: finite-difference step ε > 0 (conventions §3: 1e-6).
      thresholds: per-method overrides of the rtol of conventions §3
        (autodiff 1e-5 float32 / 1e-10 float64, finite_difference 1e-6, jvp 1e-10).
      l2: weight-decay strength λ, as in ``value_and_manual_grad`` (0 with ``backward``).
      key: dropout PRNG key; a fixed key makes the cost a deterministic function of params.
      keep_prob: inverted-dropout keep probability (needs ``key`` when < 1).
      fd_mode: ``"auto"`` (every entry of leaves up to ``max_entries`` entries,
        random directions for larger ones), ``"entries"`` or ``"directions"``.
      max_entries: largest leaf perturbed entry by entry in ``"auto"``; a
        network with at most this many parameters is perturbed in one batch.
      n_directions: random unit directions per leaf (jvp, directional FD).
      kink_margin: a finite difference is excluded when a pre-activation is
        within ``kink_margin`` x the distance the ±ε (±2ε) step moved it of a kink.
      seed: seed of the random directions.
      n_worst: how many worst entries each method reports.
      jit: compile each computation (one program per network, dtype and
        shape, cached across calls); ``jit=False`` runs op by op, faster for
        many small networks of the same shapes (what ``run_sweep`` does).

    Returns:
      A ``GradientReport``: per method the error, the noise bound and the
      verdict (error <= rtol + noise bound), per layer and leaf, the worst
      entries, where the error enters the backward pass, and the range of
      Z^[l] each layer exercised; ``report.raise_if_failed()`` for tests.

    Raises:
      ValueError: params/X/Y that do not fit ``net`` (naming the layer and
        shapes), NaN or inf in params, X or Y (naming the array and its
        first bad column), a bad option, a ``backward`` returning the wrong
        structure or shapes, or a custom activation/loss whose derivative
        returns the wrong shape.

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jaxnn.init_params(jax.random.key(0), net)
    >>> X, Y = jnp.ones((2, 4)), jnp.ones((1, 4))
    >>> check_gradients(params, X, Y, net).passed
    True
    """
    methods = check_methods(methods)
    eps = check_eps(eps)
    if fd_mode not in ("auto", "entries", "directions"):
        raise ValueError(f"fd_mode = {fd_mode!r}: choose 'auto', 'entries' or 'directions'.")
    check_positive_ints(n_directions=n_directions, max_entries=max_entries, n_worst=n_worst)
    if not (isinstance(kink_margin, numbers.Real) and math.isfinite(kink_margin) and kink_margin >= 1):
        raise ValueError(f"kink_margin = {kink_margin!r} must be a finite number >= 1.")
    if isinstance(l2, bool) or not isinstance(l2, numbers.Real) or not (math.isfinite(l2) and l2 >= 0):
        raise ValueError(f"l2 = {l2!r} must be a finite number >= 0 (the weight-decay strength λ).")
    if isinstance(keep_prob, bool) or not isinstance(keep_prob, numbers.Real) or not 0 < keep_prob <= 1:
        raise ValueError(f"keep_prob = {keep_prob!r} must be a number in (0, 1].")
    if keep_prob < 1 and key is None:
        raise ValueError("keep_prob < 1 asks for dropout, which needs a fixed PRNG key: pass key=...")
    if backward is not None and not callable(backward):
        raise ValueError(
            f"backward = {backward!r} must be a function backward(params, cache, Y, net) -> grads."
        )
    if backward is not None and l2 != 0:
        raise ValueError(
            "backward= is called as backward(params, cache, Y, net), without λ: check it with l2=0 "
            "(or add the (λ/m) W term inside your function and keep l2=0 here)."
        )
    check_network_inputs(params, X, Y, net)
    dtype = param_dtype(params)
    defaults = {
        "autodiff": AUTODIFF_THRESHOLDS.get(dtype, 1e-5),
        "finite_difference": FD_THRESHOLD,
        "jvp": JVP_THRESHOLD,
    }
    thr = check_thresholds(thresholds, methods, defaults)
    cfg = {"net": net, "l2": float(l2), "keep_prob": float(keep_prob)}
    if backward is not None:
        _check_backward(backward, params, X, Y, net, key, keep_prob)
    acts = net.layer_activations
    m = int(np.shape(X)[1])
    partner = partner_dtype(dtype)

    n_params = sum(int(np.size(p[k])) for p in params for k in PARAM_NAMES)
    with_terms = m * n_params <= MAX_TERMS
    with enable_x64(True):
        p64 = jax.device_put([{k: np.asarray(p[k], np.float64) for k in PARAM_NAMES} for p in params])
        X64, Y64 = jax.device_put((np.asarray(X, np.float64), np.asarray(Y, np.float64)))
        # the float64 gradients and the rounding floors at this point, in one program
        (J64, Z0, g64, a64), floors = kernel("both_and_floors", jit)(
            p64, X64, Y64, key, _signs(p64, m), backward=backward, terms=with_terms, **cfg
        )
        Z0 = [np.asarray(z) for z in Z0]
    keep = ~custom_kink_examples(Z0, acts)
    cols = (lambda A: A) if keep.all() else (lambda A: A[:, keep])
    if not keep.all():  # the floors of the examples compared only
        floors = _floors(p64, X, Y, key, cfg, cols, jit, int(keep.sum()) * n_params <= MAX_TERMS)
    sides = {}  # dtype -> (J, gradient under test, autodiff gradient) on the kept examples, float64 NumPy
    for dt in (dtype, partner):
        with enable_x64(dt == "float64" or dtype == "float64"):
            jdt = jnp.dtype(dt)
            p = [{k: to_device(np.asarray(q[k], np.float64), jdt) for k in PARAM_NAMES} for q in params]
            Xd, Yd = (to_device(cols(np.asarray(A, np.float64)), jdt) for A in (X, Y))
            if dt == "float64" and keep.all():
                J, gm, ga = J64, g64, a64
            else:
                # the default optimisation level: the rounding measured is the one training has
                J, _, gm, ga = kernel("both", jit, fast=False)(p, Xd, Yd, key, backward=backward, **cfg)
            sides[dt] = (float(J), _host(gm), _host(ga))
    low = dtype if partner == "float64" else "float32"
    rounding = _rounding(params, sides, dtype, partner, _host_floors(*floors))
    J_low = sides[low][0] if keep.all() else float(J64)
    delta_J = float(phi_rounding(np.array([float(J64)]), np.array([J_low]), np.array([float(J64)]), low)[0])
    g64h = _host(g64)
    ctx = FDContext(p64, X64, Y64, key, Z0, cfg, eps, n_worst, jit, seed)

    prob = network_problem(
        ctx, g64h, rounding, delta_J, max_entries, kink_margin, g_keep=sides["float64"][1], cols=cols
    )
    results = []
    for method in methods:
        if method == "autodiff":
            results.append(autodiff_result(sides[dtype], rounding, dtype, thr[method], keep, n_worst))
        elif method == "finite_difference":
            why = f"a ±ε or ±2ε step would bring a pre-activation within {kink_margin:g}x its move of a kink."
            results.append(
                finite_difference_method(
                    prob,
                    eps,
                    thr[method],
                    np.random.default_rng(seed),
                    max_entries=max_entries,
                    n_directions=n_directions,
                    n_worst=n_worst,
                    mode=fd_mode,
                    excluded_why=why,
                )
            )
        else:
            results.append(_jvp(prob, thr[method], keep, n_directions, n_worst, seed))
    coverage = tuple(
        LayerCoverage(l, float(z.min()), float(z.max()), float(np.mean(np.abs(z) > 4)))
        for l, z in enumerate(Z0, start=1)
    )
    subject = _describe(net) + ("" if backward is None else f", backward = {_name(backward)}")
    return GradientReport(subject, m, dtype, eps, float(J64), tuple(results), "check_gradients", coverage)


def _jvp(prob, threshold, keep, n_directions, n_worst, seed):
    """The engine's jvp method on the kept examples (a custom kink's examples are left out)."""
    m, n_dropped = keep.size, int((~keep).sum())
    strategy = (
        f"jax.jvp of jaxnn.cost along {n_directions} random unit directions v per leaf, vs ⟨g, v⟩, "
        "float64; noise: ||rounding|| of both sides' float64 gradients"
    )
    note = drop_note(n_dropped, m) if n_dropped else ""
    if not keep.any():
        return summarise("jvp", "float64", [], threshold, strategy, n_worst, n_dropped, note)
    rng = np.random.default_rng(seed + 1)
    return jvp_method(
        prob,
        threshold,
        rng,
        n_directions=n_directions,
        n_worst=n_worst,
        strategy=strategy,
        excluded=n_dropped,
        note=note,
    )


# the per-example terms cost m x #params numbers: above this, no terms floor
MAX_TERMS = 1 << 24


def _rounding(params, sides, dtype, partner, floors):
    """``{"manual", "autodiff"}`` -> per-layer dicts of (r_native, r_64): each side's rounding.

    jax.grad's rounding is its gap to its recomputation in the partner
    precision, at least u times the size of the terms its sum cancels
    (``_floors``): one draw of a gap can be small by luck, a sum of
    terms cannot be computed to better than that. The gradient under test is
    never recomputed to estimate its own rounding (a bug confined to one
    branch would widen its own bound): it is taken as jax.grad's, plus the
    rounding of its own output magnitude (conventions §3).
    """
    u, u64 = unit_roundoff(dtype), unit_roundoff("float64")
    terms, rep = floors
    out = {"autodiff": [], "manual": []}
    for l in range(len(params)):
        ad, man = {}, {}
        for k in PARAM_NAMES:
            r_nat, r64 = rounding_estimate(sides[dtype][2][l][k], sides[partner][2][l][k], dtype)
            r_nat, r64 = np.maximum(r_nat, u * rep[l][k]), np.maximum(r64, u64 * rep[l][k])
            if terms is not None:
                r_nat, r64 = np.maximum(r_nat, u * terms[l][k]), np.maximum(r64, u64 * terms[l][k])
            ad[k] = (r_nat, r64)
            g_nat, g64 = sides[dtype][1][l][k], sides["float64"][1][l][k]
            man_nat = r_nat + u * np.abs(g_nat)
            # the float64 comparisons (finite differences, jvp) check a gradient that the model
            # computes in its own dtype: it cannot be held to more than that dtype represents
            man[k] = (man_nat, np.maximum(r64 + u64 * np.abs(g64), man_nat))
        out["autodiff"].append(ad)
        out["manual"].append(man)
    return out


# random sign draws of the representability floor
SIGN_DRAWS = 4


def _signs(p64, m: int) -> list:
    """The random signs (s_Z, s_A) of each layer, (SIGN_DRAWS, n_l, m): the same draws every check."""
    rng = np.random.default_rng(0)
    with enable_x64(True):
        return jax.device_put(
            [tuple(rng.choice([-1.0, 1.0], (SIGN_DRAWS, p["b"].shape[0], m)) for _ in range(2)) for p in p64]
        )


def _floors(p64, X, Y, key, cfg, cols, jit, with_terms):
    """``kernel("floors")`` on the kept examples: ``(terms or None, representable)`` as computed on device.

    terms: mean_i |∂L^(i)/∂θ| (bounded above), the size of what jax.grad's sum
    cancels. representable: the effect on jax.grad of every Z^[l], A^[l] off by
    one unit roundoff (u = 1; the largest of a few random-sign draws): where a
    computation saturates (a softmax exactly one-hot, a tanh exactly ±1),
    recomputing it in another precision shows no rounding at all, yet the
    gradient is known only to what the dtype can represent at the scale of
    those values (conventions §3). ``check_gradients`` gets both from
    ``kernel("both_and_floors")`` when every example is kept.
    """
    with enable_x64(True):  # p64: check_gradients' float64 params, already on the device
        X64, Y64 = jax.device_put(tuple(cols(np.asarray(A, np.float64)) for A in (X, Y)))
        return kernel("floors", jit)(p64, X64, Y64, key, _signs(p64, X64.shape[1]), terms=with_terms, **cfg)


def _host_floors(terms, t):
    """The floors on the host: terms per layer {"W", "b"} (or None), and the largest of the sign draws."""
    rep = [{k: np.max(np.abs(np.asarray(q[k], np.float64)), axis=0) for k in PARAM_NAMES} for q in t]
    return (None if terms is None else _host(terms)), rep


def _host(grads) -> list[dict[str, np.ndarray]]:
    return [{k: np.asarray(np.asarray(g[k]), dtype=np.float64) for k in PARAM_NAMES} for g in grads]


def _name(fn) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def _describe(net: Network) -> str:
    d = net.describe()
    return f"Network({tuple(d['layer_sizes'])}, ({', '.join(d['activations'])}), {d['loss']})"


def _check_backward(backward, params, X, Y, net, key, keep_prob) -> None:
    """A user's backward must return grads with the params' structure, shapes and dtypes."""

    def run(p, X, Y):
        _, cache = forward(p, X, net, key=key, keep_prob=keep_prob)
        return backward(p, cache, Y, net)

    try:
        out = jax.eval_shape(run, params, X, Y)
    except Exception as e:  # noqa: BLE001 - user code: its failure becomes a clear error
        raise ValueError(
            f"check_gradients: backward(params, cache, Y, net) failed: {type(e).__name__}: {e}"
        ) from None
    if not isinstance(out, (list, tuple)) or len(out) != net.L:
        raise ValueError(
            f"check_gradients: backward returned {type(out).__name__} "
            f"{jax.tree.structure(out)}; expected a list of {net.L} {{'W', 'b'}} dicts like params."
        )
    for l, (g, p) in enumerate(zip(out, params), start=1):
        if not isinstance(g, dict) or set(g) != set(PARAM_NAMES):
            raise ValueError(
                f"check_gradients: backward's entry for layer {l} is {g!r}; expected {{'W': dW, 'b': db}}."
            )
        for k in PARAM_NAMES:
            want, got = jnp.shape(p[k]), tuple(g[k].shape)
            if got != tuple(want) or jnp.dtype(g[k].dtype) != jnp.dtype(p[k].dtype):
                raise ValueError(
                    f"check_gradients: backward returned d{k}^[{l}] of shape {got} and dtype {g[k].dtype}, "
                    f"expected {tuple(want)} and {p[k].dtype} (those of {k}^[{l}]); a gradient has exactly "
                    f"its parameter's shape (no broadcasting). Fix: return d{k}^[{l}] of shape {tuple(want)} "
                    "(e.g. db = sum of dZ over the m columns, keepdims=True)."
                )
