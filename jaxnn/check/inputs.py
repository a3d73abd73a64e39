"""What a user passes to ``check_vjp`` / ``check_grad``, made into one problem over float arrays.

* Python floats and ints among the primals become float arrays of JAX's
  default float dtype (float32, or float64 under x64); NumPy float64 arrays
  become float32 while x64 is off, as JAX would compute them; the report says so.
* ``static_argnums``: primals that are not differentiated (integers,
  configuration). f, the reference and the rule still receive them; the
  check runs over the others, whose leaves keep their names
  (``primals[2]['W']``). The rule may return one entry per primal (anything,
  e.g. None, at a static position) or one per differentiated primal.
* ``None`` from an explicit rule means a zero cotangent (as ``jax.custom_vjp``
  allows), for a whole primal or for one leaf of it.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class DifferentiatedProblem(NamedTuple):
    """The problem over the differentiated primals only (the engine's ``Problem`` is built from it).

    Attributes:
      f: ``f(*diff)`` with the static primals put back in place.
      reference: the same for the reference (or None).
      rule: ``rule(diff, c)`` -> one cotangent per differentiated primal, Nones as zeros (or None).
      primals: the differentiated primals, converted.
      names: their leaves' names, by position among all primals.
      notes: what was converted or held static, for the report.
    """

    f: object
    reference: object
    rule: object
    primals: tuple
    names: list
    notes: tuple


def check_static_argnums(static_argnums, n: int, who: str) -> tuple[int, ...]:
    """The static positions as a sorted tuple of ints in [0, n) (negative ones counted from the end).

    Args:
      static_argnums: an int or a sequence of ints.
      n: the number of primals.
      who: the checker's name, for messages.

    >>> check_static_argnums(-1, 3, "check_vjp")
    (2,)
    """
    if isinstance(static_argnums, numbers.Integral) and not isinstance(static_argnums, bool):
        static_argnums = (static_argnums,)
    try:
        items = tuple(static_argnums)
    except TypeError:
        items = (static_argnums,)
    out = set()
    for i in items:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not -n <= i < n:
            raise ValueError(
                f"{who}: static_argnums = {static_argnums!r}: each must be an integer position among the "
                f"{n} primals (0..{n - 1}, or negative from the end)."
            )
        out.add(int(i) % n)
    if len(out) == n:
        raise ValueError(f"{who}: static_argnums = {static_argnums!r} holds every primal: nothing to check.")
    return tuple(sorted(out))


def convert_primals(primals: tuple, static: tuple[int, ...]) -> tuple[tuple, tuple[str, ...]]:
    """Python floats / ints among the differentiated primals as float arrays, and a note for each.

    NumPy float arrays JAX cannot hold as they are (float64 while x64 is off) become
    JAX's float dtype, with a note, as JAX itself would compute them.

    Args:
      primals: the tuple of primals.
      static: the positions not differentiated (left as they are).

    >>> p, notes = convert_primals((2.0, jnp.ones(2)), ())
    >>> p[0].dtype, notes
    (dtype('float32'), ('primals[0]: Python float 2.0 -> float32',))
    """
    dtype = jnp.result_type(float)
    notes = []

    def conv(prefix, path, x):
        name = prefix + jax.tree_util.keystr(path)
        if isinstance(x, numbers.Real) and not isinstance(x, bool | np.ndarray | np.generic | jax.Array):
            notes.append(f"{name}: Python {type(x).__name__} {x!r} -> {jnp.dtype(dtype).name}")
            return jnp.asarray(float(x), dtype)
        if isinstance(x, np.ndarray | np.generic) and jnp.issubdtype(x.dtype, jnp.floating):
            held = jax.dtypes.canonicalize_dtype(x.dtype)
            if held != x.dtype:  # float64 NumPy data while x64 is off: JAX computes in float32
                notes.append(f"{name}: NumPy {x.dtype} -> {held.name} (x64 is off; "
                             "jax.enable_x64(True) checks in float64)")
                return jnp.asarray(x, held)
        return x

    out = [p if i in static else _convert_tree(conv, i, p) for i, p in enumerate(primals)]
    return tuple(out), tuple(notes)


def _convert_tree(conv, i, p):
    return jax.tree_util.tree_map_with_path(lambda q, x: conv(f"primals[{i}]", q, x), p)


def build_problem(who, f, reference, rule, primals, static, names_of) -> DifferentiatedProblem:
    """The check over the differentiated primals (see the module docstring).

    Args:
      who: the checker's name, for messages.
      f: the function of all primals.
      reference: the plain implementation (or None).
      rule: ``rule(primals, c)`` over all primals (or None: f's own rule).
      primals: all primals, converted.
      static: the static positions.
      names_of: ``names_of(tree, prefix)``: leaf names of a pytree.

    >>> prob = build_problem("check_vjp", lambda x, k: x * k, None, None, (jnp.ones(2), 3), (1,),
    ...     lambda t, p: [p])
    >>> prob.names, float(prob.f(jnp.ones(2))[0])
    (['primals[0]'], 3.0)
    """
    n = len(primals)
    diff = [i for i in range(n) if i not in static]

    def merge(dp):
        full = list(primals)
        for i, x in zip(diff, dp):
            full[i] = x
        return full

    def lift(fn):
        if fn is None:
            return None

        def over_differentiated(*dp):
            return fn(*merge(dp))

        # the report names f by its own name ("sin"), not this wrapper's
        over_differentiated.__name__ = getattr(fn, "__name__", type(fn).__name__)
        return over_differentiated

    dprimals = tuple(primals[i] for i in diff)
    wrapped_rule = None
    if rule is not None:

        def wrapped_rule(dp, c):
            out = rule(tuple(merge(dp)), c)
            if isinstance(out, tuple | list) and len(out) == n and len(diff) < n:
                out = [out[i] for i in diff]
            return zeros_for_none(out, dp)

    names = [name for i in diff for name in names_of(primals[i], f"primals[{i}]")]
    notes = []
    if static:
        notes.append(f"static (not differentiated): {', '.join(f'primals[{i}]' for i in static)}")
    return DifferentiatedProblem(lift(f), lift(reference), wrapped_rule, dprimals, names, tuple(notes))


def zeros_for_none(out, primals):
    """A rule's output with each None (a whole primal's cotangent or one leaf's) replaced by zeros.

    Anything else is returned as it is (a wrong structure is reported by the caller).

    Args:
      out: the rule's output, one cotangent per primal.
      primals: the primals.

    >>> zeros_for_none((None, jnp.ones(1)), (jnp.ones(2), jnp.ones(1)))[0].tolist()
    [0.0, 0.0]
    """
    if not isinstance(out, tuple | list) or len(out) != len(primals):
        return out
    fixed = []
    for o, p in zip(out, primals):
        if o is None:
            fixed.append(jax.tree.map(jnp.zeros_like, p))
            continue
        leaves_p, treedef = jax.tree.flatten(p)
        try:
            leaves_o = treedef.flatten_up_to(o)
        except (ValueError, TypeError):
            fixed.append(o)
            continue
        if any(x is None for x in leaves_o):
            leaves_o = [jnp.zeros_like(a) if x is None else x for x, a in zip(leaves_o, leaves_p)]
            o = jax.tree.unflatten(treedef, leaves_o)
        fixed.append(o)
    return tuple(fixed)


def cache_key_of(who, fns, primals, static, n_cot):
    """What the compiled programs of a check depend on: the user's functions, static values, shapes.

    None when something is not hashable (then nothing is kept).

    Args:
      who: the checker's name.
      fns: the user's f, rule (or None) and reference (or None), as passed.
      primals: all primals, converted.
      static: the static positions.
      n_cot: the number of random cotangents.

    >>> cache_key_of("check_vjp", (abs, None, None), ([1],), (0,), 1) is None  # a list is not hashable
    True
    """
    shapes = tuple(
        (i, tuple(np.shape(x)), str(np.asarray(x).dtype) if not hasattr(x, "dtype") else str(x.dtype))
        for i, p in enumerate(primals)
        if i not in static
        for x in jax.tree.leaves(p)
    )
    structure = tuple(jax.tree.structure(p) for i, p in enumerate(primals) if i not in static)
    key = (
        who,
        *fns,
        tuple((i, primals[i]) for i in static),
        structure,
        shapes,
        n_cot,
        bool(jax.config.jax_enable_x64),
    )
    try:
        hash(key)
    except TypeError:
        return None
    return key


def exclude_masks(who: str, exclude, primals: tuple, static, names: list[str]):
    """``(keep, n_left_out)``: per differentiated leaf a flat (size,) bool of compared entries.

    ``exclude(*primals)`` returns one mask per primal (a tuple, like a rule's
    cotangents; with one primal its bare mask is accepted), each a pytree of
    boolean arrays of its primal's structure and shapes, True where the entry
    is left out of every comparison (a kink of f: ReLU at 0, abs, max); None
    for a primal or a leaf leaves nothing out there.

    Args:
      who: the checker's name, for messages.
      exclude: the predicate, or None (keep is None).
      primals: all primals, converted.
      static: the static positions (their masks are ignored).
      names: the differentiated leaves' names.

    >>> keep, n = exclude_masks("check_vjp", lambda x: x == 0, (np.array([0.0, 1.0]),), (), ["primals[0]"])
    >>> keep[0].tolist(), n
    ([False, True], 1)
    """
    if exclude is None:
        return None, 0
    if not callable(exclude):
        raise ValueError(
            f"{who}: exclude = {exclude!r} must be a function exclude(*primals) returning, per primal, "
            "boolean masks (True: leave that entry out), e.g. lambda x: x == 0 for a kink at 0."
        )
    try:
        out = exclude(*primals)
    except Exception as e:  # noqa: BLE001 - user code: its failure becomes a clear error
        raise ValueError(f"{who}: exclude(*primals) failed: {type(e).__name__}: {e}.") from None
    diff = [i for i in range(len(primals)) if i not in static]
    if len(diff) == 1 and not (isinstance(out, tuple | list) and len(out) == len(primals)):
        out = tuple(out if i == diff[0] else None for i in range(len(primals)))
    if not isinstance(out, tuple | list) or len(out) != len(primals):
        raise ValueError(
            f"{who}: exclude returned {type(out).__name__}; expected a tuple with one mask per primal "
            f"({len(primals)} here; None where nothing is left out)."
        )
    keep, n_out = [], 0
    for i in diff:
        p, o = primals[i], out[i]
        leaves = jax.tree.leaves(p)
        masks = [None] * len(leaves) if o is None else jax.tree.leaves(o, is_leaf=lambda t: t is None)
        if len(masks) != len(leaves):
            raise ValueError(
                f"{who}: exclude's mask for primals[{i}] has {len(masks)} leaves, primals[{i}] has "
                f"{len(leaves)}: return a mask with its structure (None for a leaf with nothing left out)."
            )
        for x, m in zip(leaves, masks):
            name = names[len(keep)]
            if m is None:
                keep.append(np.ones(int(np.size(x)), bool))
                continue
            m = np.asarray(m)
            if m.dtype != bool or m.shape != np.shape(x):
                raise ValueError(
                    f"{who}: exclude returned a {m.dtype} mask of shape {m.shape} for {name}, whose shape "
                    f"is {np.shape(x)}: return a boolean array of exactly that shape (True: left out)."
                )
            keep.append(~m.ravel())
            n_out += int(m.sum())
    return keep, n_out
