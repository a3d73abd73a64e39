"""``check_vjp`` and ``check_grad``: verify a hand-written VJP, gradient or custom_vjp rule of ANY JAX function.

``f(*primals)`` returns a pytree of float arrays; ``primals`` is a tuple of
pytrees of float arrays (dicts, lists, tuples, NamedTuples). The rule under
test is ``vjp(primals, cotangent) -> one cotangent per primal`` (or, with
``vjp=None``, the rule ``jax.vjp(f)`` runs: f's own ``jax.custom_vjp``). It is
never its own reference. For each of a few seeded random cotangents c (just
c = 1 for a scalar f) it is compared with:

* ``"reference"``: ``jax.vjp(reference)(c)`` of a plain, differentiable
  implementation of the same math, in the primals' dtype;
* ``"finite_difference"`` (always): central differences of ⟨c, f(x)⟩ in
  float64 on upcast copies, every entry of leaves up to ``max_entries``
  entries, ``n_directions`` random unit directions v of larger ones;
* ``"jvp"``: ⟨c, J v⟩ from ``jax.jvp(reference)`` against ⟨vjp(c), v⟩, float64.

Noise bounds as in ``check_gradients`` (conventions §3): each side's
rounding, from its recomputation in the partner precision (float64 for
float32 / bfloat16 primals, float32 scaled by u64/u32 for float64); for
finite differences the ε vs 2ε truncation gap plus δφ/ε. Leaves are named by
pytree path (``primals[0]['W1']``, ``primals[1]``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.check.compare import Block, summarise
from jaxnn.check.options import (
    AUTODIFF_THRESHOLDS,
    FD_THRESHOLD,
    JVP_THRESHOLD,
    check_eps,
    check_methods,
    check_positive_ints,
    check_thresholds,
    dtype_name,
    first_line,
    full_precision_matmuls,
    unit_roundoff,
)
from jaxnn.check.perturb import (
    direction_differences,
    entry_differences,
    fd_noise,
    partner_dtype,
    phi_rounding,
    rounding_estimate,
    scatter_rounding,
    unit_directions,
)
from jaxnn.check.report import GradientReport

VJP_METHODS = ("reference", "finite_difference", "jvp")


@full_precision_matmuls
def check_vjp(
    f: Callable,
    primals: tuple,
    *,
    vjp: Callable | None = None,
    reference: Callable | None = None,
    methods: Sequence[str] | None = None,
    eps: float | None = None,
    thresholds: Mapping[str, float] | None = None,
    seed: int = 0,
    n_worst: int = 5,
    n_cotangents: int = 3,
    max_entries: int = 4096,
    n_directions: int = 4,
    jit: bool = True,
) -> GradientReport:
    """Check a hand-written VJP (or f's own custom_vjp rule) against references (conventions §3).

    Args:
      f: the function, ``f(*primals)`` -> a pytree of float arrays.
      primals: a tuple of pytrees of float arrays, the point of the check.
      vjp: the rule under test, ``vjp(primals, cotangent)`` -> a tuple with
        one cotangent per primal (each with that primal's structure, shapes
        and dtypes); None checks the rule ``jax.vjp(f)`` runs (f's custom_vjp).
      reference: a plain differentiable implementation of the same math
        (compared through ``jax.vjp`` / ``jax.jvp``); never f's own rule.
      methods: any of ``"reference"``, ``"finite_difference"``, ``"jvp"``;
        default: reference and finite differences (finite differences alone
        without ``reference``).
      eps: finite-difference step ε (default 1e-6; float64).
      thresholds: per-method overrides of rtol (reference 1e-5 float32 /
        1e-10 float64, finite_difference 1e-6, jvp 1e-10).
      seed: seed of the cotangents and directions.
      n_worst: how many worst entries each method reports.
      n_cotangents: random cotangents for a non-scalar f (a scalar f uses c = 1).
      max_entries: leaves up to this size are perturbed entry by entry, larger ones along random directions.
      n_directions: random unit directions per large leaf (and per leaf for jvp).
      jit: compile f, the rule and the batched evaluations.

    Returns:
      A ``GradientReport`` with per-leaf errors and noise bounds, the worst
      entries with both values, ``worst_leaf`` and ``raise_if_failed()``.

    Raises:
      ValueError: primals that are not a tuple of float pytrees or hold NaN /
        inf; f failing, returning a non-float or non-finite value; a rule
        returning the wrong structure, shape or dtype (naming the primal leaf
        and both shapes); a bad option.

    >>> @jax.custom_vjp
    ... def square(x):
    ...     return x ** 2
    >>> square.defvjp(lambda x: (x ** 2, x), lambda x, c: (2 * x * c,))
    >>> check_vjp(square, (jnp.arange(1.0, 4.0),), reference=lambda x: x ** 2).passed
    True
    """
    return _run(
        "check_vjp",
        f,
        primals,
        vjp,
        "vjp(primals, cotangent)",
        reference,
        methods,
        eps,
        thresholds,
        seed,
        n_worst,
        n_cotangents,
        max_entries,
        n_directions,
        jit,
    )


@full_precision_matmuls
def check_grad(
    f: Callable,
    primals,
    *,
    grad: Callable | None = None,
    reference: Callable | None = None,
    methods: Sequence[str] | None = None,
    eps: float | None = None,
    thresholds: Mapping[str, float] | None = None,
    seed: int = 0,
    n_worst: int = 5,
    max_entries: int = 4096,
    n_directions: int = 4,
    jit: bool = True,
) -> GradientReport:
    """Check a hand-written gradient of a scalar function (or f's own custom rule) (conventions §3).

    Args:
      f: the scalar function, ``f(*primals)`` -> a float array of shape ().
      primals: a tuple of pytrees of float arrays.
      grad: the gradient under test: ``grad(*primals)`` returns a tuple with
        one entry per primal, as ``jax.grad(f, argnums=tuple(range(len(primals))))``
        would (with one primal the bare pytree is accepted); None checks f's own custom rule.
      reference: a plain differentiable implementation of f.
      methods: as in ``check_vjp``.
      eps: finite-difference step ε (default 1e-6).
      thresholds: per-method overrides of rtol.
      seed: seed of the random directions.
      n_worst: how many worst entries each method reports.
      max_entries: leaves up to this size are perturbed entry by entry.
      n_directions: random unit directions per large leaf (and per leaf for jvp).
      jit: compile f, grad and the batched evaluations.

    Returns:
      A ``GradientReport`` (see ``check_vjp``).

    Raises:
      ValueError: as ``check_vjp``, and f not returning a scalar.

    >>> f = lambda W, x: jnp.sum(jnp.tanh(W @ x))
    >>> grad = lambda W, x: (jnp.outer(1 - jnp.tanh(W @ x) ** 2, x), W.T @ (1 - jnp.tanh(W @ x) ** 2))
    >>> check_grad(f, (jnp.eye(2), jnp.array([0.5, -1.0])), grad=grad, reference=f).passed
    True
    """
    primals = _as_tuple(primals, "check_grad")
    out = _out_struct("check_grad", f, primals)
    leaves = jax.tree.leaves(out)
    if len(leaves) != 1 or tuple(leaves[0].shape) != ():
        raise ValueError(
            f"check_grad: f must return one scalar (shape ()), got {jax.tree.map(lambda s: s.shape, out)}; "
            "for a non-scalar f use check_vjp."
        )
    rule = None
    if grad is not None:
        if not callable(grad):
            raise ValueError(f"check_grad: grad = {grad!r} must be a function grad(*primals).")

        def rule(p, c):
            g = grad(*p)
            # one primal: the bare pytree, as jax.grad(f) returns it, is accepted
            if len(p) == 1 and jax.tree.structure(g) == jax.tree.structure(p[0]):
                g = (g,)
            return tuple(g) if isinstance(g, list | tuple) else g

    return _run(
        "check_grad",
        f,
        primals,
        rule,
        "grad(*primals)",
        reference,
        methods,
        eps,
        thresholds,
        seed,
        n_worst,
        1,
        max_entries,
        n_directions,
        jit,
    )


def _as_tuple(primals, who: str) -> tuple:
    if not isinstance(primals, tuple | list):
        raise ValueError(
            f"{who}: primals must be a tuple of pytrees, the arguments of f(*primals); got "
            f"{type(primals).__name__}. For one array x write (x,)."
        )
    return tuple(primals)


def _names(tree, prefix: str) -> list[str]:
    return [prefix + jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _check_primals(who: str, primals: tuple) -> list[str]:
    names = _names(primals, "primals")
    for name, x in zip(names, jax.tree.leaves(primals)):
        dt = getattr(x, "dtype", None) or np.asarray(x).dtype
        if not jnp.issubdtype(dt, jnp.floating):
            raise ValueError(
                f"{who}: {name} has dtype {dt}; only float arrays have gradients (cast it, or close over "
                "it in f instead of passing it as a primal)."
            )
        a = np.asarray(x, np.float64)
        if not np.all(np.isfinite(a)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
            raise ValueError(
                f"{who}: {name} holds NaN or inf (first at index {bad}: {a[bad]}); a gradient there means "
                "nothing: check at finite primals."
            )
    if not names:
        raise ValueError(f"{who}: primals hold no arrays.")
    return names


def _out_struct(who, f, primals):
    if not callable(f):
        raise ValueError(f"{who}: f = {f!r} must be a function f(*primals).")
    try:
        out = jax.eval_shape(f, *primals)
    except Exception as e:  # noqa: BLE001 - user code: its failure becomes a clear error
        raise ValueError(f"{who}: f(*primals) failed: {type(e).__name__}: {first_line(e)}.") from None
    for name, s in zip(_names(out, "out"), jax.tree.leaves(out)):
        if not jnp.issubdtype(s.dtype, jnp.floating):
            raise ValueError(
                f"{who}: f returned {name} of dtype {s.dtype}; every output must be a float array (an "
                "integer or boolean output has no derivative: leave it out of f)."
            )
    if not jax.tree.leaves(out):
        raise ValueError(f"{who}: f(*primals) returned no arrays.")
    return out


def _check_rule_output(who, what, out, primals, names) -> None:
    """The rule's cotangents must have each primal's structure, shapes and dtypes: no broadcasting."""
    if not isinstance(out, tuple | list) or len(out) != len(primals):
        raise ValueError(
            f"{who}: {what} returned {type(out).__name__} {jax.tree.structure(out)}; expected a tuple with "
            f"one cotangent per primal ({len(primals)} here), each with that primal's structure."
        )
    for i, (o, p) in enumerate(zip(out, primals)):
        if jax.tree.structure(o) != jax.tree.structure(p):
            raise ValueError(
                f"{who}: {what}'s cotangent for primals[{i}] has structure {jax.tree.structure(o)}, "
                f"expected {jax.tree.structure(p)} (that of primals[{i}])."
            )
    for name, o, p in zip(names, jax.tree.leaves(tuple(out)), jax.tree.leaves(primals)):
        want, got = tuple(jnp.shape(p)), tuple(o.shape)
        if got != want:
            raise ValueError(
                f"{who}: {what} returned shape {got} for {name}, whose shape is {want}: a cotangent has "
                "exactly its primal's shape (no broadcasting, which would hide e.g. a missing sum over "
                "columns)."
            )
        if jnp.dtype(o.dtype) != jnp.dtype(p.dtype):
            raise ValueError(
                f"{who}: {what} returned dtype {o.dtype} for {name}, whose dtype is {jnp.dtype(p.dtype)}."
            )


def _cast(tree, dtype):
    return jax.tree.map(lambda x: jnp.asarray(np.asarray(x, np.float64), dtype), tree)


def _host(tree) -> list[np.ndarray]:
    return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


def _run(
    who,
    f,
    primals,
    rule,
    what,
    reference,
    methods,
    eps,
    thresholds,
    seed,
    n_worst,
    n_cot,
    max_entries,
    n_directions,
    jit,
):
    primals = _as_tuple(primals, who)
    eps = 1e-6 if eps is None else check_eps(eps)
    check_positive_ints(
        n_worst=n_worst, n_cotangents=n_cot, max_entries=max_entries, n_directions=n_directions
    )
    if methods is None:
        methods = ("reference", "finite_difference") if reference is not None else ("finite_difference",)
    methods = check_methods(methods, VJP_METHODS)
    if reference is not None and not callable(reference):
        raise ValueError(f"{who}: reference = {reference!r} must be a function reference(*primals).")
    if reference is None and ("reference" in methods or "jvp" in methods):
        raise ValueError(f"{who}: methods {methods} need reference=..., a plain implementation of f.")
    if rule is None and reference is f:
        raise ValueError(
            f"{who}: reference is f itself, whose own rule is under test: pass a plain "
            "implementation without the custom rule."
        )
    if rule is not None and not callable(rule):
        raise ValueError(f"{who}: vjp = {rule!r} must be a function vjp(primals, cotangent).")
    names = _check_primals(who, primals)
    out = _out_struct(who, f, primals)
    if reference is not None:
        ref_out = _out_struct(who + " (reference)", reference, primals)
        if jax.tree.map(lambda s: s.shape, ref_out) != jax.tree.map(lambda s: s.shape, out):
            raise ValueError(
                f"{who}: reference returns {jax.tree.map(lambda s: s.shape, ref_out)} but f returns "
                f"{jax.tree.map(lambda s: s.shape, out)}: the same math must give the same outputs."
            )
    if rule is None:
        what = "jax.vjp(f) (f's own rule)"
        rule = lambda p, c: jax.vjp(f, *p)[1](c)  # noqa: E731
    try:
        rule_struct = jax.eval_shape(rule, primals, out)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{who}: {what} failed: {type(e).__name__}: {first_line(e)}.") from None
    _check_rule_output(who, what, rule_struct, primals, names)

    dtype = dtype_name(jnp.result_type(*jax.tree.leaves(primals)))
    partner = partner_dtype(dtype)
    low = dtype if partner == "float64" else "float32"
    defaults = {
        "reference": AUTODIFF_THRESHOLDS.get(dtype, 1e-5),
        "finite_difference": FD_THRESHOLD,
        "jvp": JVP_THRESHOLD,
    }
    thr = check_thresholds(thresholds, methods, defaults)
    maybe_jit = jax.jit if jit else (lambda g: g)
    rng = np.random.default_rng(seed)
    out_leaves, out_def = jax.tree.flatten(out)
    scalar = n_cot == 1 and len(out_leaves) == 1 and out_leaves[0].shape == ()
    K = 1 if scalar else n_cot
    cots = [[np.ones(()) if scalar else rng.standard_normal(s.shape) for s in out_leaves] for _ in range(K)]

    def vjps(rule_fn, fn, p):
        """Each cotangent's result, as float64 NumPy leaves: [k][leaf]."""
        r = maybe_jit(rule_fn)
        # each cotangent in the dtype fn's output has at p (closed-over constants may widen it)
        dts = [s.dtype for s in jax.tree.leaves(jax.eval_shape(fn, *p))]
        return [
            _host(r(p, jax.tree.unflatten(out_def, [jnp.asarray(c, d) for c, d in zip(ck, dts)])))
            for ck in cots
        ]

    sides = {}
    for dt in (dtype, partner):
        # the caller's own precision rules for the native run; float64 needs x64 on
        with jax.enable_x64(True) if "float64" in (dt, dtype) else contextlib.nullcontext():
            p = primals if dt == dtype else _cast(primals, dt)
            y = _host(maybe_jit(lambda *a: f(*a))(*p))
            if dt == dtype and not all(np.all(np.isfinite(v)) for v in y):
                bad = next(n for n, v in zip(_names(out, "out"), y) if not np.all(np.isfinite(v)))
                raise ValueError(
                    f"{who}: f(*primals) is not finite in {bad}: a gradient there means nothing."
                )
            entry = {"f": y, "rule": vjps(rule, f, p)}
            u = unit_roundoff(dtype if dt == dtype else dt)
            entry["rule_scatter"] = _scatter(rule, f, p, cots, out_def, u, maybe_jit)
            if reference is not None:
                ref_rule = lambda q, c: jax.vjp(reference, *q)[1](c)  # noqa: E731
                entry["ref"] = vjps(ref_rule, reference, p)
                entry["ref_scatter"] = _scatter(ref_rule, reference, p, cots, out_def, u, maybe_jit)
            sides[dt] = entry
    r_rule = _rounding(sides, "rule", dtype, partner)
    r_ref = _rounding(sides, "ref", dtype, partner) if reference is not None else None
    g64 = sides["float64"]["rule"]
    phi = lambda y: np.array([sum(float(np.sum(c * v)) for c, v in zip(ck, y)) for ck in cots])  # noqa: E731
    phi64, phi_low = phi(sides["float64"]["f"]), phi(sides[low]["f"])
    phi_abs = np.array(
        [sum(float(np.sum(np.abs(c * v))) for c, v in zip(ck, sides["float64"]["f"])) for ck in cots]
    )
    delta_phi = phi_rounding(phi64, phi_low, phi_abs, low)
    with jax.enable_x64(True):
        x64, phi_fn, _ = _flat_fn(f, primals, cots, out_def)
        delta_phi = np.maximum(delta_phi, scatter_rounding(maybe_jit(jax.vmap(phi_fn)), x64, 2.0**-53))
    shapes = [tuple(np.shape(x)) for x in jax.tree.leaves(primals)]

    def stack(per_k, i):  # [k][leaf] -> (K, *shape) of leaf i, or the leaf itself for one cotangent
        a = np.stack([per_k[k][i] for k in range(K)])
        return a if K > 1 else a[0]

    results = []
    for method in methods:
        if method == "reference":
            blocks = [
                Block(
                    n,
                    "entry",
                    stack(sides[dtype]["rule"], i),
                    stack(sides[dtype]["ref"], i),
                    _squeeze(np.stack([r_rule[k][i][0] + r_ref[k][i][0] for k in range(K)]), K),
                    np.ones((K, *shapes[i]) if K > 1 else shapes[i], bool),
                    cotangents=K > 1,
                )
                for i, n in enumerate(names)
            ]
            strategy = (
                f"jax.vjp(reference) in {dtype}, {K} cotangent(s); noise: both sides' rounding, from "
                f"their recomputation in {partner}"
            )
            results.append(summarise("reference", dtype, blocks, thr[method], strategy, n_worst))
        elif method == "finite_difference":
            results.append(
                _fd(
                    f,
                    primals,
                    names,
                    shapes,
                    cots,
                    out_def,
                    g64,
                    r_rule,
                    delta_phi,
                    eps,
                    K,
                    thr[method],
                    max_entries,
                    n_directions,
                    rng,
                    n_worst,
                    maybe_jit,
                )
            )
        else:
            results.append(
                _jvp(
                    reference,
                    primals,
                    names,
                    shapes,
                    cots,
                    out_def,
                    g64,
                    r_rule,
                    r_ref,
                    K,
                    thr[method],
                    n_directions,
                    rng,
                    n_worst,
                    maybe_jit,
                )
            )
    fname = getattr(f, "__name__", type(f).__name__)
    leaves_text = ", ".join(f"{n} {s}" for n, s in zip(names[:6], shapes[:6])) + (
        ", ..." if len(names) > 6 else ""
    )
    subject = f"f = {fname}({leaves_text}), rule under test: {what}, {K} cotangent(s)"
    return GradientReport(subject, None, dtype, eps, float(phi64[0]), tuple(results), who)


def _rounding(sides, key, dtype, partner):
    """[k][leaf] -> (r_native, r_64): the larger of the two-precision gap and the measured scatter."""
    out = []
    for k, (ka, kb) in enumerate(zip(sides[dtype][key], sides[partner][key])):
        row = []
        for i, (a, b) in enumerate(zip(ka, kb)):
            r_nat, r64 = rounding_estimate(a, b, dtype)
            s_nat, s_par = sides[dtype][key + "_scatter"][k][i], sides[partner][key + "_scatter"][k][i]
            s64 = s_nat if partner == "float32" else s_par
            row.append((np.maximum(r_nat, s_nat), np.maximum(r64, s64)))
        out.append(row)
    return out


def _scatter(rule, fn, p, cots, out_def, u, maybe_jit):
    """The rule's measured rounding noise (``scatter_rounding``) for each cotangent: [k][leaf]."""
    leaves, treedef = jax.tree.flatten(p)
    dts = [a.dtype for a in leaves]
    sizes = [int(np.size(a)) for a in leaves]
    x = jnp.concatenate([jnp.ravel(a) for a in leaves])
    out_dts = [s.dtype for s in jax.tree.leaves(jax.eval_shape(fn, *p))]

    def flat_rule(flat, c):
        parts = np.split(np.arange(flat.shape[0]), np.cumsum(sizes)[:-1])
        q = [flat[ix].reshape(np.shape(a)).astype(d) for ix, a, d in zip(parts, leaves, dts)]
        out = rule(jax.tree.unflatten(treedef, q), c)
        return jnp.concatenate([jnp.ravel(o).astype(x.dtype) for o in jax.tree.leaves(tuple(out))])

    batched = maybe_jit(jax.vmap(flat_rule, in_axes=(0, None)))
    res = []
    for ck in cots:
        c = jax.tree.unflatten(out_def, [jnp.asarray(v, d) for v, d in zip(ck, out_dts)])
        s = scatter_rounding(batched, x, u, c)
        res.append([a.reshape(np.shape(b)) for a, b in zip(np.split(s, np.cumsum(sizes)[:-1]), leaves)])
    return res


def _squeeze(a, K):
    return a if K > 1 else a[0]


def _flat_fn(fn, primals, cots, out_def):
    """(x, φ): the primals' leaves as one flat float64 vector, and φ(x) = (⟨c_k, fn(x)⟩)_k."""
    leaves, treedef = jax.tree.flatten(
        jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64)), primals)
    )
    sizes = [int(np.size(a)) for a in leaves]
    shapes = [a.shape for a in leaves]
    x = jnp.concatenate([a.ravel() for a in leaves])
    C = [[jnp.asarray(c, jnp.float64) for c in ck] for ck in cots]

    def phi(flat):
        parts, start = [], 0
        for size, shape in zip(sizes, shapes):
            parts.append(flat[start : start + size].reshape(shape))
            start += size
        y = jax.tree.leaves(fn(*jax.tree.unflatten(treedef, parts)))
        return jnp.stack([sum(jnp.sum(c * v) for c, v in zip(ck, y)) for ck in C])

    offsets = np.cumsum([0, *sizes])
    return x, phi, offsets


def _fd(
    f,
    primals,
    names,
    shapes,
    cots,
    out_def,
    g64,
    r_rule,
    delta_phi,
    eps,
    K,
    threshold,
    max_entries,
    n_directions,
    rng,
    n_worst,
    maybe_jit,
):
    blocks, by_entry, by_dir = [], [], []
    with jax.enable_x64(True):
        x, phi, off = _flat_fn(f, primals, cots, out_def)
        xh = np.asarray(x)
        run = maybe_jit(jax.vmap(lambda j, s: phi(x.at[j].add(s * eps))))
        run_d = maybe_jit(jax.vmap(lambda d: phi(x + d)))
        small = [i for i, s in enumerate(shapes) if int(np.prod(s)) <= max_entries]
        if small:
            idx = np.concatenate([np.arange(off[i], off[i + 1]) for i in small])
            D1, D2, _ = entry_differences(
                lambda js, ss: (run(js, ss), jnp.zeros(js.shape, bool)), xh, idx, eps
            )
        start = 0
        for i, name in enumerate(names):
            manual = np.stack([g64[k][i].ravel() for k in range(K)])  # (K, n)
            r64 = np.stack([r_rule[k][i][1].ravel() for k in range(K)])
            if i in small:
                n = manual.shape[1]
                d1, d2 = D1[start : start + n].T, D2[start : start + n].T  # (K, n)
                start += n
                noise = fd_noise(d1, d2, delta_phi[:, None], eps, r64)
                shape = (K, *shapes[i]) if K > 1 else shapes[i]
                blocks.append(
                    Block(
                        name,
                        "entry",
                        manual.reshape(shape),
                        d1.reshape(shape),
                        noise.reshape(shape),
                        np.ones(shape, bool),
                        cotangents=K > 1,
                    )
                )
                by_entry.append(name)
            else:
                V = unit_directions(rng, n_directions, (manual.shape[1],))
                full = np.zeros((n_directions, xh.size))
                full[:, off[i] : off[i + 1]] = V
                d1, d2, _ = direction_differences(
                    lambda d: (run_d(d), jnp.zeros(d.shape[0], bool)), full, eps
                )
                d1, d2 = d1.T, d2.T  # (K, n_directions)
                noise = fd_noise(d1, d2, delta_phi[:, None], eps, r64 @ np.abs(V).T)
                sq = (lambda a: a) if K > 1 else (lambda a: a[0])
                blocks.append(
                    Block(
                        name,
                        "direction",
                        sq(manual @ V.T),
                        sq(d1),
                        sq(noise),
                        np.ones(sq(d1).shape, bool),
                        cotangents=K > 1,
                    )
                )
                by_dir.append(name)
    parts = []
    if by_entry:
        parts.append(f"central differences of ⟨c, f⟩ in float64, every entry of {', '.join(by_entry)}")
    if by_dir:
        parts.append(f"{n_directions} random unit directions v in each of {', '.join(by_dir)}")
    parts.append(
        f"noise: |D_2ε - D_ε| + δφ/ε (δφ = {float(np.max(delta_phi)):.1e}) + the float64 rule's rounding"
    )
    return summarise("finite_difference", "float64", blocks, threshold, "; ".join(parts), n_worst)


def _jvp(
    reference,
    primals,
    names,
    shapes,
    cots,
    out_def,
    g64,
    r_rule,
    r_ref,
    K,
    threshold,
    n_directions,
    rng,
    n_worst,
    maybe_jit,
):
    strategy = (
        f"jax.jvp(reference) along {n_directions} random unit directions v per leaf: ⟨c, J v⟩ vs "
        "⟨rule(c), v⟩, float64; noise: ||rounding|| of both sides"
    )
    blocks = []
    with jax.enable_x64(True):
        x, phi, off = _flat_fn(reference, primals, cots, out_def)
        try:
            run = maybe_jit(jax.vmap(lambda t: jax.jvp(phi, (x,), (t,))[1]))
            T = np.zeros((n_directions * len(names), x.size))
            Vs = []
            for i in range(len(names)):
                V = unit_directions(rng, n_directions, (int(off[i + 1] - off[i]),))
                T[i * n_directions : (i + 1) * n_directions, off[i] : off[i + 1]] = V
                Vs.append(V)
            ref = np.asarray(run(jnp.asarray(T)), np.float64)  # (rows, K)
        except TypeError as e:  # forward mode refuses custom_vjp functions
            return summarise(
                "jvp",
                "float64",
                [],
                threshold,
                strategy,
                n_worst,
                note=f"skipped: jax.jvp cannot differentiate reference ({first_line(e)}).",
            )
    for i, name in enumerate(names):
        manual = np.stack([g64[k][i].ravel() for k in range(K)]) @ Vs[i].T  # (K, n_directions)
        refi = ref[i * n_directions : (i + 1) * n_directions].T
        bound = np.array([np.linalg.norm(r_rule[k][i][1]) + np.linalg.norm(r_ref[k][i][1]) for k in range(K)])
        noise = np.broadcast_to(bound[:, None], manual.shape)
        sq = (lambda a: a) if K > 1 else (lambda a: a[0])
        blocks.append(
            Block(
                name,
                "direction",
                sq(manual),
                sq(refi),
                sq(noise),
                np.ones(sq(manual).shape, bool),
                cotangents=K > 1,
            )
        )
    return summarise("jvp", "float64", blocks, threshold, strategy, n_worst)
