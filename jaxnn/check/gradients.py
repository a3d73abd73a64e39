"""``check_gradients``: a network gradient vs autodiff, finite differences, jvp (formulas §4)."""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.activations import ACTIVATIONS
from jaxnn.backward import value_and_autodiff_grad, value_and_manual_grad
from jaxnn.check.compare import (
    Block,
    custom_kink_examples,
    entry_blocks,
    near_kink,
    summarise,
    to_host,
    unit_directions,
    with_leaf,
)
from jaxnn.check.options import (
    DEFAULT_METHODS,
    PARAM_NAMES,
    check_eps,
    check_methods,
    check_network_inputs,
    check_thresholds,
    full_precision_matmuls,
    param_dtype,
)
from jaxnn.check.report import GradientReport, MethodResult
from jaxnn.forward import cost, cost_from_cache, forward
from jaxnn.network import Network

Array = jax.Array


# --- check_gradients -----------------------------------------------------------------------


# --- the computations, as pure functions of arrays (jitted or not) -----------------------
#
# Each takes arrays first and hashable configuration last (net, l2, keep_prob,
# group, eps, margin), so ``jax.jit`` with those static caches one program per
# network and shape. ``check_gradients(jit=False)`` runs them op by op instead.


def _k_native(params, X, Y, key, net, l2, keep_prob):
    """(J, manual grads, jax.grad grads) in the dtype of the inputs."""
    J, gm = value_and_manual_grad(params, X, Y, net, l2=l2, key=key, keep_prob=keep_prob)
    _, ga = value_and_autodiff_grad(params, X, Y, net, l2=l2, key=key, keep_prob=keep_prob)
    return J, gm, ga


def _k_base(params, X, Y, key, net, l2, keep_prob):
    """(Z^[1..L], J, manual grads): the float64 reference point of FD and jvp."""
    _, cache = forward(params, X, net, key=key, keep_prob=keep_prob)
    J, g = value_and_manual_grad(params, X, Y, net, l2=l2, key=key, keep_prob=keep_prob)
    return [c["Z"] for c in cache], J, g


def _cost_and_kink(params, X, Y, key, Z0, net, l2, keep_prob, margin):
    _, cache = forward(params, X, net, key=key, keep_prob=keep_prob)
    J = cost_from_cache(params, cache, Y, net, l2=l2)
    return J, near_kink(cache, Z0, net.layer_activations, margin)


def _k_fd_entries(params, X, Y, key, Z0, js, ss, net, l2, keep_prob, group, eps, margin):
    """J(θ + s_i ε e_{j_i}) and its kink flag, for a batch of (j, s) over the group's entries."""
    f = lambda p: _cost_and_kink(p, X, Y, key, Z0, net, l2, keep_prob, margin)  # noqa: E731
    flat, g, _ = _group_fn(params, group, f)
    return jax.vmap(lambda j, s: g(flat.at[j].add(s * eps)))(js, ss)


def _k_fd_directions(params, X, Y, key, Z0, V, net, l2, keep_prob, group, eps, margin):
    """J(θ + ε v_i) and its kink flag, for a batch of directions v_i over the group's entries."""
    f = lambda p: _cost_and_kink(p, X, Y, key, Z0, net, l2, keep_prob, margin)  # noqa: E731
    flat, g, _ = _group_fn(params, group, f)
    return jax.vmap(lambda v: g(flat + eps * v))(V)


def _k_jvp(params, X, Y, key, T, net, l2, keep_prob, group):
    """jax.jvp of the cost along each row of T (tangents over the group's entries)."""
    f = lambda p: cost(p, X, Y, net, l2=l2, key=key, keep_prob=keep_prob)  # noqa: E731
    flat, g, _ = _group_fn(params, group, f)
    return jax.vmap(lambda t: jax.jvp(g, (flat,), (t,))[1])(T)


_KERNELS = {
    "native": (_k_native, ("net", "l2", "keep_prob")),
    "base": (_k_base, ("net", "l2", "keep_prob")),
    "fd_entries": (_k_fd_entries, ("net", "l2", "keep_prob", "group", "eps", "margin")),
    "fd_directions": (_k_fd_directions, ("net", "l2", "keep_prob", "group", "eps", "margin")),
    "jvp": (_k_jvp, ("net", "l2", "keep_prob", "group")),
}
_JITTED = {name: jax.jit(f, static_argnames=static) for name, (f, static) in _KERNELS.items()}


def _kernel(name: str, jit: bool):
    return _JITTED[name] if jit else _KERNELS[name][0]


# --- check_gradients -----------------------------------------------------------------------


@full_precision_matmuls
def check_gradients(
    params: list[dict],
    X: Array,
    Y: Array,
    net: Network,
    *,
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
    """Check the hand-derived gradient against autodiff, finite differences and/or jvp.

    Args:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``, any float dtype.
      X: (n_x, m). Y: (n_L, m).
      net: the ``Network`` (custom ``Activation``/``Loss`` objects welcome).
      methods: any of ``"autodiff"`` (jax.grad, caller's dtype),
        ``"finite_difference"`` (central differences in float64), ``"jvp"``
        (jax.jvp along random directions, float64).
      eps: finite-difference step ε > 0 (conventions §3: 1e-6).
      thresholds: per-method overrides of the conventions §3 thresholds
        (autodiff 1e-5 float32 / 1e-10 float64, finite_difference 1e-6, jvp 1e-10).
      l2, key, keep_prob: as in ``value_and_manual_grad`` (a fixed dropout key
        makes the cost a deterministic function of params).
      fd_mode: ``"auto"`` (every entry of leaves up to ``max_entries`` entries,
        random directions for larger ones), ``"entries"`` or ``"directions"``.
      max_entries: largest leaf perturbed entry by entry in ``"auto"``; a
        network with at most this many parameters is perturbed in one batch.
      n_directions: random unit directions per leaf (jvp, directional FD).
      kink_margin: a finite difference is excluded when a pre-activation is
        within ``kink_margin`` x the distance the ±ε step moved it of a kink.
      seed: seed of the random directions.
      n_worst: how many worst entries each method reports.
      jit: compile each computation (one program per network and shape,
        cached across calls). ``jit=False`` runs op by op: slower for one
        network, faster for many small networks of the same shapes (whose
        primitives are then compiled once), which is what ``run_sweep`` does.

    Returns:
      A ``GradientReport``; ``report.passed``, ``str(report)``, ``report.raise_if_failed()``.

    Raises:
      ValueError: params/X/Y that do not fit ``net`` (naming the layer and
        shapes), non-finite inputs, eps <= 0 or not finite, an unknown method, or
        a custom activation/loss whose derivative returns the wrong shape.

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
    for name, value in (("n_directions", n_directions), ("max_entries", max_entries), ("n_worst", n_worst)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} = {value!r} must be an integer >= 1.")
    if not (isinstance(kink_margin, numbers.Real) and math.isfinite(kink_margin) and kink_margin >= 1):
        raise ValueError(f"kink_margin = {kink_margin!r} must be a finite number >= 1.")
    if isinstance(l2, bool) or not isinstance(l2, numbers.Real) or not (math.isfinite(l2) and l2 >= 0):
        raise ValueError(f"l2 = {l2!r} must be a finite number >= 0 (the weight-decay strength λ).")
    if isinstance(keep_prob, bool) or not isinstance(keep_prob, numbers.Real) or not 0 < keep_prob <= 1:
        raise ValueError(f"keep_prob = {keep_prob!r} must be a number in (0, 1].")
    if keep_prob < 1 and key is None:
        raise ValueError("keep_prob < 1 asks for dropout, which needs a fixed PRNG key: pass key=...")
    check_network_inputs(params, X, Y, net)
    dtype = param_dtype(params)
    thr = check_thresholds(thresholds, methods, dtype)
    cfg = {"net": net, "l2": float(l2), "keep_prob": float(keep_prob)}
    acts = net.layer_activations
    m = int(np.shape(X)[1])
    kinked_custom = any(g.kinks and ACTIVATIONS.get(g.name) is not g for g in acts)

    base = None
    if "finite_difference" in methods or "jvp" in methods or kinked_custom:
        with jax.enable_x64(True):
            p64 = [{k: jnp.asarray(np.asarray(p[k], np.float64)) for k in PARAM_NAMES} for p in params]
            X64 = jnp.asarray(np.asarray(X, np.float64))
            Y64 = jnp.asarray(np.asarray(Y, np.float64))
            Z0, J64, g64 = _kernel("base", jit)(p64, X64, Y64, key, **cfg)
            base = _Base(p64, X64, Y64, key, Z0, float(J64), to_host(g64))
        keep = ~custom_kink_examples(base.Z0, acts)
    else:
        keep = np.ones(m, bool)

    results, J_native = [], math.nan
    for method in methods:
        if method == "autodiff":
            result, J_native = _autodiff(params, X, Y, key, dtype, thr[method], cfg, keep, n_worst, jit)
            results.append(result)
        elif method == "finite_difference":
            results.append(
                _finite_differences(
                    base,
                    cfg,
                    eps,
                    thr[method],
                    fd_mode,
                    max_entries,
                    n_directions,
                    kink_margin,
                    seed,
                    n_worst,
                    jit,
                )
            )
        else:
            results.append(_jvp(base, cfg, thr[method], keep, n_directions, max_entries, seed, n_worst, jit))
    return GradientReport(
        network=_describe(net),
        m=m,
        dtype=dtype,
        eps=eps,
        cost=base.J if base is not None else J_native,
        results=tuple(results),
    )


class _Base(NamedTuple):
    """The float64 point every FD / jvp comparison is made at."""

    p64: list
    X64: Array
    Y64: Array
    key: Array | None
    Z0: list
    J: float
    g64: list  # manual gradient, on the host


def _describe(net: Network) -> str:
    d = net.describe()
    return f"Network({tuple(d['layer_sizes'])}, ({', '.join(d['activations'])}), {d['loss']})"


def _drop_note(n: int, m: int) -> str:
    return (
        f"{n} of {m} examples left out: a pre-activation sits exactly on a kink of a custom "
        "activation, where its derivative is a convention that may differ from JAX's."
    )


def _autodiff(params, X, Y, key, dtype, threshold, cfg, keep, n_worst, jit):
    m = keep.size
    n_dropped = int((~keep).sum())
    strategy = "jax.grad of jaxnn.cost, in the caller's dtype"
    if not keep.any():
        return summarise(
            "autodiff", dtype, [], threshold, strategy, n_worst, n_dropped, _drop_note(n_dropped, m)
        ), math.nan
    with jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext():
        jdt = jnp.dtype(dtype)
        p = [{k: jnp.asarray(q[k], jdt) for k in PARAM_NAMES} for q in params]
        Xn, Yn = jnp.asarray(X, jdt), jnp.asarray(Y, jdt)
        if n_dropped:
            Xn, Yn = Xn[:, keep], Yn[:, keep]
        J, gm, ga = _kernel("native", jit)(p, Xn, Yn, key, **cfg)
        blocks = entry_blocks(to_host(gm), to_host(ga))
    note = _drop_note(n_dropped, m) if n_dropped else ""
    return summarise("autodiff", dtype, blocks, threshold, strategy, n_worst, n_dropped, note), float(J)


def _groups(p64, max_entries: int) -> list[tuple[tuple[int, str], ...]]:
    """Leaves evaluated together in one batched pass.

    A small network (at most ``max_entries`` parameters) is one group: one
    vmapped evaluation perturbs everything, few dispatches. A larger one goes
    leaf by leaf, so each batched pass re-evaluates only the layers from the
    perturbed leaf on (``jax.vmap`` batches only what depends on it).
    """
    leaves = tuple((l, name) for l in range(len(p64)) for name in PARAM_NAMES)
    if sum(p64[l][name].size for l, name in leaves) <= max_entries:
        return [leaves]
    return [(leaf,) for leaf in leaves]


def _group_fn(params, group, fn):
    """``fn(params)`` as a function of the group's leaves concatenated into one flat vector."""
    shapes = [params[l][name].shape for l, name in group]
    sizes = [math.prod(s) for s in shapes]
    flat = jnp.concatenate([params[l][name].reshape(-1) for l, name in group])

    def f(new_flat):
        p, start = params, 0
        for (l, name), shape, size in zip(group, shapes, sizes):
            p = with_leaf(p, l, name, new_flat[start : start + size].reshape(shape))
            start += size
        return fn(p)

    return flat, f, sizes


def _batch_size(n: int, chunk: int = 512) -> int:
    # Powers of two from 256 up: the eager primitives are compiled once per
    # shape, and a sweep over networks of similar size then reuses them.
    return min(chunk, max(256, 1 << (max(n, 1) - 1).bit_length()))


def _finite_differences(
    base, cfg, eps, threshold, fd_mode, max_entries, n_directions, kink_margin, seed, n_worst, jit
):
    p64, g64 = base.p64, base.g64
    rng = np.random.default_rng(seed)
    blocks, by_entry, by_dir = {}, [], []
    args = (p64, base.X64, base.Y64, base.key, base.Z0)
    kcfg = dict(cfg, eps=eps, margin=float(kink_margin))
    with jax.enable_x64(True):
        for group in _groups(p64, max_entries):
            by_entries = tuple(
                (l, name)
                for l, name in group
                if fd_mode == "entries" or (fd_mode == "auto" and p64[l][name].size <= max_entries)
            )
            if by_entries:
                sizes = [p64[l][name].size for l, name in by_entries]
                n = sum(sizes)
                B = _batch_size(2 * n)
                js = np.concatenate([np.arange(n), np.arange(n)])
                ss = np.concatenate([np.ones(n), -np.ones(n)])
                J, kink = np.zeros(2 * n), np.zeros(2 * n, bool)
                for start in range(0, 2 * n, B):
                    j, s = js[start : start + B], ss[start : start + B]
                    k = j.size
                    pad = B - k  # padded with copies of the first perturbation, then dropped
                    j, s = np.concatenate([j, np.zeros(pad, j.dtype)]), np.concatenate([s, np.ones(pad)])
                    Jb, kb = _kernel("fd_entries", jit)(
                        *args, jnp.asarray(j), jnp.asarray(s), group=by_entries, **kcfg
                    )
                    J[start : start + k], kink[start : start + k] = np.asarray(Jb)[:k], np.asarray(kb)[:k]
                x = np.concatenate([np.asarray(p64[l][name]).ravel() for l, name in by_entries])
                step = (x + eps) - (x - eps)  # the step actually taken, after rounding
                with np.errstate(all="ignore"):
                    fd = (J[:n] - J[n:]) / step
                mask = ~(kink[:n] | kink[n:])
                start = 0
                for (l, name), size in zip(by_entries, sizes):
                    shape = p64[l][name].shape
                    sl = slice(start, start + size)
                    blocks[l, name] = Block(
                        l + 1, name, "entry", g64[l][name], fd[sl].reshape(shape), mask[sl].reshape(shape)
                    )
                    by_entry.append(f"{name}^[{l + 1}]")
                    start += size
            for l, name in group:
                if (l, name) in blocks:
                    continue
                shape = p64[l][name].shape
                V = unit_directions(rng, n_directions, shape).reshape(n_directions, -1)
                J, kink = _kernel("fd_directions", jit)(
                    *args, jnp.asarray(np.concatenate([V, -V])), group=((l, name),), **kcfg
                )
                J, kink = np.asarray(J), np.asarray(kink)
                k = n_directions
                manual = V @ g64[l][name].reshape(-1)
                blocks[l, name] = Block(
                    l + 1, name, "direction", manual, (J[:k] - J[k:]) / (2 * eps), ~(kink[:k] | kink[k:])
                )
                by_dir.append(f"{name}^[{l + 1}]")
    blocks = [blocks[l, name] for l in range(len(p64)) for name in PARAM_NAMES]
    excluded = int(sum((~b.mask).sum() for b in blocks))
    parts = []
    if by_entry:
        parts.append(f"central differences in float64, every entry of {', '.join(by_entry)}")
    if by_dir:
        parts.append(
            f"{n_directions} random unit directions v in each of {', '.join(by_dir)} "
            "(<g, v> vs (J(θ+εv) - J(θ-εv))/2ε, float64)"
        )
    note = ""
    if excluded:
        note = (
            f"{excluded} finite differences excluded: a ±ε step would bring a pre-activation within "
            f"{kink_margin:g}x its move of a kink."
        )
    return summarise(
        "finite_difference", "float64", blocks, threshold, "; ".join(parts), n_worst, excluded, note
    )


def _jvp(base, cfg, threshold, keep, n_directions, max_entries, seed, n_worst, jit) -> MethodResult:
    m = keep.size
    n_dropped = int((~keep).sum())
    strategy = (
        f"jax.jvp of jaxnn.cost along {n_directions} random unit directions v per leaf, vs <g, v>, float64"
    )
    if not keep.any():
        return summarise(
            "jvp", "float64", [], threshold, strategy, n_worst, n_dropped, _drop_note(n_dropped, m)
        )
    rng = np.random.default_rng(seed + 1)
    blocks = {}
    p64, g64 = base.p64, base.g64
    with jax.enable_x64(True):
        X, Y = base.X64, base.Y64
        if n_dropped:
            X, Y = X[:, keep], Y[:, keep]
            g64 = to_host(_kernel("base", jit)(p64, X, Y, base.key, **cfg)[2])
        for group in _groups(p64, max_entries):
            sizes = [p64[l][name].size for l, name in group]
            # n_directions per leaf, each zero outside its own leaf; padded to a
            # power of two (>= 32) rows so shapes repeat across networks.
            D = len(group) * n_directions
            T = np.zeros((max(32, 1 << (D - 1).bit_length()), sum(sizes)))
            start = 0
            for i, size in enumerate(sizes):
                T[i * n_directions : (i + 1) * n_directions, start : start + size] = unit_directions(
                    rng, n_directions, (size,)
                )
                start += size
            ref = np.asarray(_kernel("jvp", jit)(p64, X, Y, base.key, jnp.asarray(T), group=group, **cfg))[:D]
            start = 0
            for i, ((l, name), size) in enumerate(zip(group, sizes)):
                rows = slice(i * n_directions, (i + 1) * n_directions)
                manual = T[rows, start : start + size] @ g64[l][name].reshape(-1)
                blocks[l, name] = Block(
                    l + 1, name, "direction", manual, ref[rows], np.ones(n_directions, bool)
                )
                start += size
    blocks = [blocks[l, name] for l in range(len(p64)) for name in PARAM_NAMES]
    note = _drop_note(n_dropped, m) if n_dropped else ""
    return summarise("jvp", "float64", blocks, threshold, strategy, n_worst, n_dropped, note)
