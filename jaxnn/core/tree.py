"""Norms and errors over whole pytrees (conventions §3)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

TINY = 1e-30


def tree_norm(tree) -> jax.Array:
    """The 2-norm over all leaves together, accumulated in the widest float available.

    Args:
      tree: any pytree of arrays, e.g. params or grads
        ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``.

    Returns:
      A scalar (): sqrt(Σ over every entry of every leaf of x²), the ||·|| of
      conventions §3.

    >>> tree_norm([{"W": jnp.full((2, 2), 2.0), "b": jnp.zeros((2, 1))}])
    Array(4., dtype=float32)
    """
    leaves = jax.tree.leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(_wide(x)))) for x in leaves))


def relative_error(g1, g2) -> jax.Array:
    """Normwise relative error ||g1 - g2|| / max(||g1|| + ||g2||, 1e-30) (conventions §3).

    The norm is the 2-norm over all leaves together (``tree_norm``).

    Args:
      g1: a pytree of arrays, e.g. the hand-derived grads.
      g2: a pytree of the same structure, e.g. the autodiff grads.

    Returns:
      A scalar (): 0 means identical, 1 means unrelated (or one of them zero).

    Raises:
      ValueError: if the two pytrees differ in structure.

    >>> relative_error([jnp.ones(3)], [jnp.ones(3)])
    Array(0., dtype=float32)
    """
    if jax.tree.structure(g1) != jax.tree.structure(g2):
        raise ValueError(
            "relative_error: the two pytrees differ in structure: "
            f"{jax.tree.structure(g1)} vs {jax.tree.structure(g2)}."
        )
    diff = jax.tree.map(lambda a, b: a.astype(_wide(a)) - b.astype(_wide(b)), g1, g2)
    return tree_norm(diff) / jnp.maximum(tree_norm(g1) + tree_norm(g2), TINY)


def _wide(x):
    # float64 when x64 is on (so float64 grads are compared in float64), else float32.
    return jnp.result_type(float)
