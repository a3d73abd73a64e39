"""What ``check_vjp`` / ``check_grad`` are given, and what f and the rule return, checked first.

Each check raises a one-line ``ValueError`` naming the checker, the primal or
output leaf and the fix, before anything is compiled: primals that are not a
tuple, non-float or non-finite primals, an f that fails or returns a non-float
output, and a rule whose cotangents do not have each primal's structure,
shapes and dtypes exactly (no broadcasting).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.check.options import first_line
from jaxnn.check.vjp_engine import leaf_names


def as_tuple(primals, who: str) -> tuple:
    """``primals`` as a tuple; anything but a tuple or list is a ValueError naming the fix ``(x,)``.

    >>> as_tuple([1.0], "check_vjp")
    (1.0,)
    """
    if not isinstance(primals, tuple | list):
        raise ValueError(
            f"{who}: primals must be a tuple of pytrees, the arguments of f(*primals); got "
            f"{type(primals).__name__}. For one array x write (x,)."
        )
    return tuple(primals)


def check_primals(who: str, primals: tuple, names: list[str]) -> list[str]:
    """Every differentiated leaf is a finite float array, and there is one; else a ValueError naming it."""
    for name, x in zip(names, jax.tree.leaves(primals)):
        dt = getattr(x, "dtype", None) or np.asarray(x).dtype
        if not jnp.issubdtype(dt, jnp.floating):
            raise ValueError(
                f"{who}: {name} has dtype {dt}; only float arrays have gradients (cast it, pass its "
                "position in static_argnums=..., or close over it in f)."
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


def out_struct(who, f, primals):
    """f's output shapes and dtypes (``jax.eval_shape``): float arrays only, else a ValueError naming it."""
    if not callable(f):
        raise ValueError(f"{who}: f = {f!r} must be a function f(*primals).")
    try:
        out = jax.eval_shape(f, *primals)
    except Exception as e:  # noqa: BLE001 - user code: its failure becomes a clear error
        raise ValueError(f"{who}: f(*primals) failed: {type(e).__name__}: {first_line(e)}.") from None
    for name, s in zip(leaf_names(out, "out"), jax.tree.leaves(out)):
        if not jnp.issubdtype(s.dtype, jnp.floating):
            raise ValueError(
                f"{who}: f returned {name} of dtype {s.dtype}; every output must be a float array (an "
                "integer or boolean output has no derivative: leave it out of f)."
            )
    if not jax.tree.leaves(out):
        raise ValueError(f"{who}: f(*primals) returned no arrays.")
    return out


def check_rule_output(who, what, out, primals, names) -> None:
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
                f"columns). Fix: return an array of shape {want} for {name} (sum over the axes that "
                "were broadcast, if that is what is missing)."
            )
        if jnp.dtype(o.dtype) != jnp.dtype(p.dtype):
            raise ValueError(
                f"{who}: {what} returned dtype {o.dtype} for {name}, whose dtype is {jnp.dtype(p.dtype)}."
            )
