"""Gradient descent (formulas §5): W := W - α dW, b := b - α db.

The compiled training steps built on it are in ``jaxnn.step``.

For anything beyond the plain update (momentum, Adam, schedules,
clipping) use optax: jaxnn's grads have the params' structure, so
``optimizer.update(grads, state, params)`` takes them unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.core.validate import check_learning_rate

Array = jax.Array


def sgd_update(params: list[dict], grads: list[dict], learning_rate: float | Array) -> list[dict]:
    """One gradient-descent step: W := W - α dW, b := b - α db (formulas §5).

    Args:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``.
      grads: a pytree of exactly the structure and shapes of params (from ``backward``).
      learning_rate: α > 0, finite; a scalar (may be a traced array).

    Returns:
      The new params (a new pytree; nothing is modified in place).

    >>> params = [{"W": jnp.ones((3, 2)), "b": jnp.zeros((3, 1))}]
    >>> grads = [{"W": jnp.ones((3, 2)), "b": jnp.ones((3, 1))}]
    >>> new = sgd_update(params, grads, 0.5)
    >>> float(new[0]["W"][0, 0]), float(new[0]["b"][0, 0])
    (0.5, -0.5)
    """
    check_learning_rate(learning_rate)
    if jax.tree.structure(params) != jax.tree.structure(grads):
        raise ValueError(
            "sgd_update: grads must have exactly the structure of params, got "
            f"{jax.tree.structure(grads)} vs {jax.tree.structure(params)}."
        )
    for (path, p), g in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(grads)):
        if np.shape(p) != np.shape(g):
            raise ValueError(
                f"sgd_update: {jax.tree_util.keystr(path)} has shape {np.shape(p)} but its "
                f"gradient has shape {np.shape(g)}."
            )
    return jax.tree.map(lambda p, g: p - jnp.asarray(learning_rate, p.dtype) * g, params, grads)
