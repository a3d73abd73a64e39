"""``check_vjp`` and ``check_grad``: a hand-written VJP, gradient or custom_vjp rule of ANY JAX function.

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

f must be differentiable at the primals: a finite difference across a kink
(ReLU at 0, abs, max) measures neither one-sided derivative, and unlike
``check_gradients`` (which knows each activation's kinks) this checker
cannot exclude it; check at points away from kinks. Measured sensitivity
(tests/test_check_vjp.py): a custom_vjp rule scaled by 1.001 in float32 fails
every method.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp  # noqa: F401 - the docstring examples use it
import numpy as np

from jaxnn.check.inputs import (
    build_problem,
    cache_key_of,
    check_static_argnums,
    convert_primals,
    exclude_masks,
)
from jaxnn.check.options import (
    CheckOptions,
    check_eps,
    check_methods,
    check_positive_ints,
    first_line,
    full_precision_matmuls,
)
from jaxnn.check.report import GradientReport
from jaxnn.check.vjp_arguments import as_tuple, check_primals, check_rule_output, out_struct
from jaxnn.check.vjp_engine import compare_rule, leaf_names

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
    static_argnums: int | Sequence[int] = (),
    exclude: Callable | None = None,
    cotangents: str = "random",
) -> GradientReport:
    """Check a hand-written VJP (or f's own custom_vjp rule) against references (conventions §3).

    Args:
      f: the function, ``f(*primals)`` -> a pytree of float arrays.
      primals: a tuple of pytrees of float arrays, the point of the check
        (Python floats and ints become arrays of JAX's default float dtype;
        the report says so).
      vjp: the rule under test, ``vjp(primals, cotangent)`` -> a tuple with
        one cotangent per primal (each with that primal's structure, shapes
        and dtypes; None, for a primal or one leaf, means a zero cotangent, as
        in ``jax.custom_vjp``); None checks the rule ``jax.vjp(f)`` runs (f's custom_vjp).
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
      static_argnums: positions of primals that are not differentiated (integers,
        flags): f, reference and the rule still receive them; the rule returns
        one cotangent per primal (anything, e.g. None, at a static position) or
        one per differentiated primal.
      exclude: ``exclude(*primals)`` -> one boolean mask per primal (its structure and
        shapes; None: nothing), True where an entry is left out of every comparison:
        the kinks of f (``lambda x: x == 0`` for ReLU or abs), where no derivative
        exists. The report counts what was left out.
      cotangents: ``"random"`` (``n_cotangents`` seeded normal cotangents; on each output
        alone when f has several) or ``"basis"`` (one cotangent per output entry, one-hot:
        the whole Jacobian row by row, so each ⟨c, f⟩ and its rounding is one output entry's;
        for outputs of up to ``max_entries`` entries).

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
        static_argnums,
        key_fns=(f, vjp, reference),
        exclude=exclude,
        cotangents=cotangents,
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
    static_argnums: int | Sequence[int] = (),
    exclude: Callable | None = None,
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
      static_argnums: positions of primals that are not differentiated, as in ``check_vjp``.
      exclude: entries left out of every comparison (kinks), as in ``check_vjp``.

    Returns:
      A ``GradientReport`` (see ``check_vjp``).

    Raises:
      ValueError: as ``check_vjp``, and f not returning a scalar.

    >>> f = lambda W, x: jnp.sum(jnp.tanh(W @ x))
    >>> grad = lambda W, x: (jnp.outer(1 - jnp.tanh(W @ x) ** 2, x), W.T @ (1 - jnp.tanh(W @ x) ** 2))
    >>> check_grad(f, (jnp.eye(2), jnp.array([0.5, -1.0])), grad=grad, reference=f).passed
    True
    """
    primals = as_tuple(primals, "check_grad")
    static = check_static_argnums(static_argnums, len(primals), "check_grad") if static_argnums != () else ()
    rule = None
    if grad is not None:
        if not callable(grad):
            raise ValueError(f"check_grad: grad = {grad!r} must be a function grad(*primals).")
        diff = [i for i in range(len(primals)) if i not in static]

        def rule(p, c):
            g = grad(*p)
            # one differentiated primal: the bare pytree, as jax.grad(f) returns it, is accepted
            if len(diff) == 1 and jax.tree.structure(g) == jax.tree.structure(p[diff[0]]):
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
        static,
        scalar=True,
        key_fns=(f, grad, reference),
        exclude=exclude,
    )


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
    static_argnums=(),
    scalar=False,
    key_fns=None,
    exclude=None,
    cotangents="random",
):
    primals = as_tuple(primals, who)
    static = check_static_argnums(static_argnums, len(primals), who) if static_argnums != () else ()
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
    own_rule = rule is None
    primals, notes = convert_primals(primals, static)
    cache_key = cache_key_of(who, key_fns or (f, rule, reference), primals, static, n_cot)
    all_primals = primals
    prob = build_problem(who, f, reference, rule, primals, static, leaf_names)
    f, reference, rule, primals, names = prob.f, prob.reference, prob.rule, prob.primals, prob.names
    check_primals(who, primals, names)
    keep, n_left_out = exclude_masks(who, exclude, all_primals, static, names)
    out = out_struct(who, f, primals)
    if scalar:
        leaves = jax.tree.leaves(out)
        if len(leaves) != 1 or tuple(leaves[0].shape) != ():
            raise ValueError(
                f"{who}: f must return one scalar (shape ()), got {jax.tree.map(lambda s: s.shape, out)}; "
                "for a non-scalar f use check_vjp."
            )
    if reference is not None:
        ref_out = out_struct(who + " (reference)", reference, primals)
        if jax.tree.map(lambda s: s.shape, ref_out) != jax.tree.map(lambda s: s.shape, out):
            raise ValueError(
                f"{who}: reference returns {jax.tree.map(lambda s: s.shape, ref_out)} but f returns "
                f"{jax.tree.map(lambda s: s.shape, out)}: the same math must give the same outputs."
            )
    if own_rule:
        what = "jax.vjp(f) (f's own rule)"
        rule = lambda p, c: jax.vjp(f, *p)[1](c)  # noqa: E731
    try:
        rule_struct = jax.eval_shape(rule, primals, out)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{who}: {what} failed: {type(e).__name__}: {first_line(e)}.") from None
    check_rule_output(who, what, rule_struct, primals, names)

    if cotangents not in ("random", "basis"):
        raise ValueError(
            f"{who}: cotangents = {cotangents!r}: choose 'random' or 'basis' (one per output entry)."
        )
    if cotangents == "basis":
        n_out = sum(int(np.prod(s.shape, dtype=np.int64)) for s in jax.tree.leaves(out))
        if n_out > max_entries:
            raise ValueError(
                f"{who}: cotangents='basis' needs one cotangent per output entry, {n_out} here, more than "
                f"max_entries = {max_entries}: use the default random cotangents, or raise max_entries."
            )
    opts = CheckOptions(
        methods, eps, thresholds, seed, n_worst, n_cot, max_entries, n_directions, bool(jit), cotangents
    )
    report = compare_rule(
        who, f, primals, names, out, rule, what, reference, opts, cache_key=cache_key, keep=keep
    )
    notes = (*notes, *prob.notes)
    if n_left_out:
        notes = (*notes, f"{n_left_out} {'entry' if n_left_out == 1 else 'entries'} left out by exclude=")
    if notes:  # what was converted or held static is part of what was checked
        report = dataclasses.replace(report, subject=f"{report.subject}; {'; '.join(notes)}")
    return report
