"""The comparisons behind ``check_vjp`` / ``check_grad``, once the inputs are validated.

For each seeded random cotangent c (c = 1 for a scalar f) the rule under test
runs in the primals' dtype (and in float64 for narrower primals). Its noise
bound never comes from the rule itself (a bug would widen it): the
reference's rounding, measured by its recomputation in the partner precision
(float64 for float32 / bfloat16, float32 for float64) and by the scatter of
its values under perturbations of a few dozen ulps (``scatter_rounding``),
stands for both sides, plus the rounding of the rule's output magnitude.
Then the reference (``jax.vjp``), finite differences of ⟨c, f⟩ in float64 at
ε and 2ε, and ``jax.jvp`` of the reference are compared with it leaf by leaf
(``jaxnn.check.compare``).
"""

from __future__ import annotations

import collections
import contextlib

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.check.engine import finite_difference_method, jvp_method, reference_method
from jaxnn.check.options import (
    AUTODIFF_THRESHOLDS,
    FAST_COMPILE,
    FD_THRESHOLD,
    JVP_THRESHOLD,
    check_thresholds,
    dtype_name,
    unit_roundoff,
)
from jaxnn.check.perturb import (
    U64,
    partner_dtype,
    phi_rounding,
    rounding_estimate,
    scatter_points,
    scatter_residual,
)
from jaxnn.check.report import GradientReport
from jaxnn.check.vjp_methods import cotangent_matrix, per_leaf, vjp_problem
from jaxnn.core.compat import enable_x64, to_device

# compiled programs kept for checks of the same functions and shapes (a bounded LRU)
_PROGRAMS: collections.OrderedDict = collections.OrderedDict()
MAX_PROGRAMS = 128


def jitter(jit: bool, key):
    """``maybe_jit(fn, name)``: ``fn`` itself (eager), ``jax.jit(fn)``, or the program kept under (key, name).

    A check compiles a few programs; a second check of the same functions (f,
    rule, reference, static arguments) and shapes reuses them instead of
    compiling again (``key`` None: never kept). Each kept program takes every
    array it needs as an argument: only the functions and shapes are baked in.

    Args:
      jit: compile at all.
      key: a hashable identity of the functions and shapes, or None.

    >>> jitter(False, None)(abs, "x")(-1)
    1
    """

    def maybe_jit(fn, name):
        if not jit:
            return fn
        if key is None:
            return jax.jit(fn, **FAST_COMPILE)
        k = (key, name)
        if k not in _PROGRAMS:
            _PROGRAMS[k] = jax.jit(fn, **FAST_COMPILE)
            while len(_PROGRAMS) > MAX_PROGRAMS:
                _PROGRAMS.popitem(last=False)
        _PROGRAMS.move_to_end(k)
        return _PROGRAMS[k]

    return maybe_jit


def leaf_names(tree, prefix: str) -> list[str]:
    """Each leaf's name: ``prefix`` + its pytree key path (``primals[0]['W1']``).

    Args:
      tree: the pytree.
      prefix: e.g. ``"primals"``.

    >>> leaf_names(({"W": 1.0}, 2.0), "primals")
    ["primals[0]['W']", 'primals[1]']
    """
    return [prefix + jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _cast(tree, dtype):
    # cast on the host: jnp.asarray(..., dtype) would compile a conversion per new shape
    return jax.tree.map(lambda x: to_device(np.asarray(x, np.float64).astype(jnp.dtype(dtype))), tree)


def _host(tree) -> list[np.ndarray]:
    return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


def compare_rule(
    who, f, primals, names, out, rule, what, reference, opts, cache_key=None, keep=None
) -> GradientReport:
    """Run every method on a validated problem and build the ``GradientReport`` (see ``check_vjp``).

    Args:
      who: ``"check_vjp"`` or ``"check_grad"`` (the report's kind and messages).
      f: the function.
      primals: the tuple of primal pytrees.
      names: the primal leaves' names.
      out: ``jax.eval_shape(f, *primals)``.
      rule: the rule under test, ``rule(primals, cotangent)``.
      what: how to name the rule in the report.
      reference: the plain implementation, or None.
      opts: the validated ``CheckOptions``.
      cache_key: a hashable identity of f, the rule, the reference and the shapes: the compiled
        programs are kept under it for the next check of the same (None: not kept).
      keep: per primal leaf a flat bool of the entries compared (``exclude=``), or None (all).

    Returns:
      The ``GradientReport``.

    >>> rule = lambda p, c: (2 * p[0] * c,)
    >>> x = (jnp.ones(2),)
    >>> from jaxnn.check.options import CheckOptions
    >>> opts = CheckOptions(methods=("finite_difference",), jit=False)
    >>> compare_rule("check_vjp", jnp.square, x, ["primals[0]"], jax.eval_shape(jnp.square, *x), rule, "vjp",
    ...     None, opts).passed
    True
    """
    methods, eps, thresholds, seed, n_worst, n_cot, max_entries, n_directions, jit, cot_mode = opts
    dtype = dtype_name(jnp.result_type(*jax.tree.leaves(primals)))
    partner = partner_dtype(dtype)
    low = dtype if partner == "float64" else "float32"
    defaults = {
        "reference": AUTODIFF_THRESHOLDS.get(dtype, 1e-5),
        "finite_difference": FD_THRESHOLD,
        "jvp": JVP_THRESHOLD,
    }
    thr = check_thresholds(thresholds, methods, defaults)
    maybe_jit = jitter(jit, cache_key)
    rng = np.random.default_rng(seed)
    out_leaves, out_def = jax.tree.flatten(out)
    scalar = n_cot == 1 and len(out_leaves) == 1 and out_leaves[0].shape == ()
    outputs = None
    if cot_mode == "basis":  # one-hot on every output entry: each ⟨c, f⟩ is one output entry
        cots, outputs = [], []
        for o, (name, s) in enumerate(zip(leaf_names(out, "out"), out_leaves)):
            for e in np.ndindex(*s.shape):
                cots.append([np.zeros(t.shape) for t in out_leaves])
                cots[-1][o][e] = 1.0
                outputs.append(name + (f"[{', '.join(map(str, e))}]" if e else ""))
        outputs = tuple(outputs)
    elif scalar:
        cots = [[np.ones(())]]
    elif len(out_leaves) == 1:
        cots = [[rng.standard_normal(out_leaves[0].shape)] for _ in range(n_cot)]
    else:
        # several outputs: n_cot random cotangents on each output leaf alone (zero on the others), so
        # a wrong term is located to its output as well as to the input entry; a scalar output
        # needs one cotangent, 1 (any other is proportional), and then its entries are its gradient
        out_names = leaf_names(out, "out")
        cots, outputs = [], []
        for o, name in enumerate(out_names):
            scalar_out = out_leaves[o].shape == ()
            for _ in range(1 if scalar_out else n_cot):
                cots.append(
                    [
                        (np.ones(()) if scalar_out else rng.standard_normal(s.shape))
                        if i == o
                        else np.zeros(s.shape)
                        for i, s in enumerate(out_leaves)
                    ]
                )
                outputs.append(name)
        outputs = tuple(outputs)
    K = len(cots)

    sides = {}
    # a float64 check measures its rounding where it happens (the scatter of the reference and of
    # φ in float64) instead of extrapolating a float32 recomputation: one program fewer
    for dt in (dtype,) if dtype == "float64" else (dtype, partner):
        # the caller's own precision rules for the native run; float64 needs x64 on
        with enable_x64(True) if "float64" in (dt, dtype) else contextlib.nullcontext():
            p = primals if dt == dtype else _cast(primals, dt)
            u = unit_roundoff(dtype if dt == dtype else dt)
            # never the rule in float32 for a float64 check: see _rule_rounding
            with_rule = rule if dt in (dtype, "float64") else None
            # a float32 recomputation's own scatter is never used (only float64's and the native one)
            scatter = dt == dtype or dt == "float64"
            # φ's own scatter (δφ) rides along in the float64 program: one compilation fewer
            entry = _side(
                f,
                with_rule,
                reference,
                p,
                cots,
                out_def,
                u,
                maybe_jit,
                f"side-{dt}",
                scatter,
                dt == "float64",
            )
            y = entry["f"]
            if dt == dtype and not all(np.all(np.isfinite(v)) for v in y):
                bad = next(n for n, v in zip(leaf_names(out, "out"), y) if not np.all(np.isfinite(v)))
                raise ValueError(
                    f"{who}: f(*primals) is not finite in {bad}: a gradient there means nothing."
                )
            sides[dt] = entry
    r_ref = _rounding(sides, "ref", dtype, partner) if reference is not None else None
    r_rule = _rule_rounding(sides[dtype]["rule"], sides["float64"]["rule"], r_ref, dtype)
    g64 = sides["float64"]["rule"]
    Cm = cotangent_matrix(cots)  # (K, outputs)
    flat_out = lambda y: np.concatenate([np.ravel(v) for v in y])  # noqa: E731
    phi64 = Cm @ flat_out(sides["float64"]["f"])
    phi_low = Cm @ flat_out(sides[low]["f"]) if low in sides else phi64
    phi_abs = np.abs(Cm) @ np.abs(flat_out(sides["float64"]["f"]))
    delta_phi = np.maximum(phi_rounding(phi64, phi_low, phi_abs, low), sides["float64"]["phi_scatter"])
    shapes = [tuple(np.shape(x)) for x in jax.tree.leaves(primals)]
    prob = vjp_problem(f, reference, primals, names, cots, out_def, g64, r_rule, r_ref, delta_phi, maybe_jit)
    # several output leaves, each probed by cotangents of its own: a verdict per output too
    prob = prob._replace(
        outputs=outputs, keep=keep, output_verdicts=cot_mode == "random" and outputs is not None
    )
    results = []
    for method in methods:
        if method == "reference":
            noise = [a + b for a, b in zip(per_leaf(r_rule, K, 0), per_leaf(r_ref, K, 0))]
            strategy = (
                f"jax.vjp(reference) in {dtype}, {K} cotangent(s); noise: both sides' rounding, from "
                f"their recomputation in {partner}"
            )
            results.append(
                reference_method(
                    "reference",
                    dtype,
                    prob.leaves,
                    K,
                    per_leaf(sides[dtype]["rule"], K),
                    per_leaf(sides[dtype]["ref"], K),
                    noise,
                    thr[method],
                    strategy,
                    n_worst,
                    outputs=outputs,
                    keep=keep,
                    output_verdicts=prob.output_verdicts,
                )
            )
        elif method == "finite_difference":
            results.append(
                finite_difference_method(
                    prob,
                    eps,
                    thr[method],
                    rng,
                    max_entries=max_entries,
                    n_directions=n_directions,
                    n_worst=n_worst,
                )
            )
        else:
            strategy = (
                f"jax.jvp(reference) along {n_directions} random unit directions v per leaf: ⟨c, J v⟩ vs "
                "⟨rule(c), v⟩, float64; noise: ||rounding|| of both sides"
            )
            results.append(
                jvp_method(
                    prob, thr[method], rng, n_directions=n_directions, n_worst=n_worst, strategy=strategy
                )
            )
    fname = getattr(f, "__name__", type(f).__name__)
    leaves_text = ", ".join(f"{n} {s}" for n, s in zip(names[:6], shapes[:6])) + (
        ", ..." if len(names) > 6 else ""
    )
    per_out = ""
    if cot_mode == "basis":
        per_out = " (one per output entry: the whole Jacobian)"
    elif outputs is not None:
        per_out = f" (on each of {len(out_leaves)} outputs alone: {n_cot} random, 1 for a scalar output)"
    subject = f"f = {fname}({leaves_text}), rule under test: {what}, {K} cotangent(s){per_out}"
    return GradientReport(subject, None, dtype, eps, float(phi64[0]), tuple(results), who)


def _rule_rounding(g_native, g64, r_ref, dtype):
    """[k][leaf] -> (r_native, r_64): the rule's rounding, from quantities the rule cannot inflate.

    The rule under test is never recomputed in another precision to estimate
    its rounding: a bug confined to one branch of a ``where`` (a float32
    recomputation may take another branch) would show up as "rounding" and
    widen the very bound that should catch it. The rule computes the same math
    as the reference, so its rounding is taken as the reference's measured
    rounding, plus the rounding of the rule's own output (one unit in the last
    place of |g|, the only part of the estimate that depends on the rule, by
    at most the bug's relative size).
    """
    u, out = unit_roundoff(dtype), []
    for k, (gk, g64k) in enumerate(zip(g_native, g64)):
        row = []
        for i, (a, b) in enumerate(zip(gk, g64k)):
            ref_nat, ref64 = r_ref[k][i] if r_ref is not None else (0.0, 0.0)
            row.append((ref_nat + u * np.abs(a), ref64 + U64 * np.abs(b)))
        out.append(row)
    return out


def _side(f, rule, reference, p, cots, out_def, u, maybe_jit, name, scatter=True, phi_scatter=False):
    """The rule's and the reference's results for every cotangent, and the reference's scatter, in ONE call.

    One (compiled) program per precision instead of one per quantity: compiling is
    most of what a small check costs. Returns ``{"rule", "ref", "ref_scatter"}``
    as [k][leaf] float64 NumPy (the keys whose function is given).
    """
    leaves, treedef = jax.tree.flatten(p)
    dts = [a.dtype for a in leaves]
    sizes = [int(np.size(a)) for a in leaves]
    xdt = jnp.result_type(*dts)
    # host-side: an eager JAX op here would compile once per new shape
    xs, ts = scatter_points(np.concatenate([np.asarray(a, np.float64).ravel() for a in leaves]), u)
    # each cotangent in the dtype the function's output has at p (closed-over constants may widen it)
    f_dts = [s.dtype for s in jax.tree.leaves(jax.eval_shape(f, *p))]
    r_dts = None
    if reference is not None:
        r_dts = [s.dtype for s in jax.tree.leaves(jax.eval_shape(reference, *p))]
    C = [np.stack([ck[i] for ck in cots]) for i in range(len(f_dts))]  # leaf i: (K, *shape), float64

    def cot(c, dts_out):
        return jax.tree.unflatten(out_def, [ci.astype(d) for ci, d in zip(c, dts_out)])

    def unflat(flat):
        parts = np.split(np.arange(flat.shape[0]), np.cumsum(sizes)[:-1])
        q = [flat[ix].reshape(np.shape(a)).astype(d) for ix, a, d in zip(parts, leaves, dts)]
        return jax.tree.unflatten(treedef, q)

    def run(p, C, xs):
        out = {"f": f(*p)}
        if rule is not None:
            out["rule"] = jax.vmap(lambda c: tuple(rule(p, cot(c, f_dts))))(C)
        if reference is not None:
            ref_rule = lambda q, c: jax.vjp(reference, *q)[1](cot(c, r_dts))  # noqa: E731

            def flat_ref(xf, c):
                g = ref_rule(unflat(xf), c)
                return jnp.concatenate([jnp.ravel(o).astype(xdt) for o in jax.tree.leaves(tuple(g))])

            if scatter:
                # the last row of xs is the point itself: the reference at p and its scatter in ONE
                # batched evaluation (the reference's graph is traced and compiled once, not twice)
                out["ref_all"] = jax.vmap(lambda c: jax.vmap(lambda xf: flat_ref(xf, c))(xs))(C)
            else:
                out["ref"] = jax.vmap(lambda c: ref_rule(p, c))(C)
        if phi_scatter:  # (points, K): ⟨c_k, f⟩ at each scatter point
            Cm = jnp.concatenate([jnp.reshape(c, (c.shape[0], -1)) for c in C], axis=1)  # (K, outputs)

            def phi_at(xf):
                y = jax.tree.leaves(f(*unflat(xf)))
                return Cm @ jnp.concatenate([jnp.ravel(v) for v in y]).astype(Cm.dtype)

            out["phi_scatter"] = jax.vmap(phi_at)(xs[:-1])
        return out

    x_row = np.concatenate([np.asarray(a).astype(xdt).ravel() for a in leaves])[None]
    res = maybe_jit(run, name)(p, C, np.concatenate([np.asarray(xs).astype(xdt), x_row]))
    K = len(cots)
    entry = {"f": _host(res["f"])}
    for key in ("rule", "ref"):
        if key in res:
            stacked = [np.asarray(a, np.float64) for a in jax.tree.leaves(res[key])]
            entry[key] = [[a[k] for a in stacked] for k in range(K)]
    if "phi_scatter" in res:
        entry["phi_scatter"] = scatter_residual(np.asarray(res["phi_scatter"], np.float64), ts)
    if "ref_all" in res:
        vals = np.asarray(res["ref_all"], np.float64)  # (K, points + 1, n)
        cuts = np.cumsum(sizes)[:-1]
        shaped = lambda flat: [a.reshape(np.shape(b)) for a, b in zip(np.split(flat, cuts), leaves)]  # noqa: E731
        entry["ref"] = [shaped(vals[k, -1]) for k in range(K)]
        entry["ref_scatter"] = [shaped(scatter_residual(vals[k, :-1], ts)) for k in range(K)]
    return entry


def _rounding(sides, key, dtype, partner):
    """[k][leaf] -> (r_native, r_64): the larger of the two-precision gap and the measured scatter."""
    out = []
    other = sides.get(partner, sides[dtype])  # a float64 check: its own scatter only
    for k, (ka, kb) in enumerate(zip(sides[dtype][key], other[key])):
        row = []
        for i, (a, b) in enumerate(zip(ka, kb)):
            r_nat, r64 = rounding_estimate(a, b, dtype) if partner in sides else (0.0, 0.0)
            s_nat = sides[dtype][key + "_scatter"][k][i]
            s64 = s_nat if partner == "float32" else sides[partner][key + "_scatter"][k][i]
            row.append((np.maximum(r_nat, s_nat), np.maximum(r64, s64)))
        out.append(row)
    return out
