"""Norms and errors over whole pytrees (conventions §3)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

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

    The norm is the 2-norm over all leaves together (``tree_norm``). This is the one
    definition jaxnn uses: pytrees of JAX arrays are compared with ``jax.numpy`` (traceable,
    in float64 when x64 is on, else float32); pytrees of NumPy arrays (the checkers' host
    side) in NumPy float64, so a float64 comparison never rounds through float32. A
    non-finite input gives nan.

    Args:
      g1: a pytree of arrays, e.g. the hand-derived grads.
      g2: a pytree of the same structure, e.g. the autodiff grads.

    Returns:
      A scalar (): 0 means identical, 1 means unrelated (or one of them zero).

    Raises:
      ValueError: if the two pytrees differ in structure.

    >>> relative_error([jnp.ones(3)], [jnp.ones(3)])
    Array(0., dtype=float32)
    >>> float(relative_error([np.ones(3)], [np.zeros(3)]))
    1.0
    """
    if jax.tree.structure(g1) != jax.tree.structure(g2):
        raise ValueError(
            "relative_error: the two pytrees differ in structure: "
            f"{jax.tree.structure(g1)} vs {jax.tree.structure(g2)}."
        )
    leaves = jax.tree.leaves((g1, g2))
    if leaves and all(isinstance(x, (np.ndarray, np.generic)) for x in leaves):
        def norm(tree):
            return np.sqrt(sum(np.sum(np.square(np.asarray(x, np.float64))) for x in
                               jax.tree.leaves(tree)))

        with np.errstate(all="ignore"):
            diff = jax.tree.map(lambda a, b: np.asarray(a, np.float64) - np.asarray(b, np.float64),
                                g1, g2)
            return norm(diff) / np.maximum(norm(g1) + norm(g2), TINY)
    diff = jax.tree.map(lambda a, b: a.astype(_wide(a)) - b.astype(_wide(b)), g1, g2)
    return tree_norm(diff) / jnp.maximum(tree_norm(g1) + tree_norm(g2), TINY)


def _wide(x):
    # float64 when x64 is on (so float64 grads are compared in float64), else float32.
    return jnp.result_type(float)
