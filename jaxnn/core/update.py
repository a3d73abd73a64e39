"""Gradient descent (formulas §5): W := W - α dW, b := b - α db, defined once.

``descent(grads, α)`` is the update -α dW, -α db; ``sgd_update`` adds it to the
params, and ``gradient_descent`` is the same update as an optax transformation
(α kept in its state, so an ensemble can vary it). p + (-α g) is bit for bit
p - α g in IEEE arithmetic (negation is exact), so every path agrees exactly.

For anything beyond the plain update (momentum, Adam, schedules, clipping) use
optax: jaxnn's grads have the params' structure, so
``optimizer.update(grads, state, params)`` takes them unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnn.core.validate import check_learning_rate

Array = jax.Array


def descent(grads, learning_rate):
    """The update of formulas §5, -α dW and -α db, leaf by leaf in each gradient's dtype.

    Args:
      grads: the gradients, any pytree of arrays (``backward``'s structure).
      learning_rate: α, a scalar (may be a traced array).

    Returns:
      A pytree of grads' structure: -α g for each leaf g.

    >>> descent([jnp.ones(2)], 0.5)[0].tolist()
    [-0.5, -0.5]
    """
    return jax.tree.map(lambda g: -jnp.asarray(learning_rate, g.dtype) * g, grads)


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
    updates = descent(jax.tree.map(lambda g, p: jnp.asarray(g, p.dtype), grads, params), learning_rate)
    return jax.tree.map(lambda p, u: p + u, params, updates)


class GDState(NamedTuple):
    """The state of ``gradient_descent``: α lives here so an ensemble can vary it."""

    learning_rate: Array  # α of formulas §5, float ()


def gradient_descent(learning_rate: float = 0.1) -> optax.GradientTransformation:
    """The formulas §5 update W := W - α dW, b := b - α db as an optax transformation.

    α lives in the state (``GDState``), so it can be a traced per-member value.
    ``optax.apply_updates`` then computes p + (-α g) (``descent``), bit for bit ``sgd_update``.

    Args:
      learning_rate: α > 0, the initial value stored in the state.

    Returns:
      The transformation; params and grads ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``.

    >>> tx = gradient_descent(0.5)
    >>> params = [{"W": jnp.ones((3, 2)), "b": jnp.zeros((3, 1))}]
    >>> grads = [{"W": jnp.ones((3, 2)), "b": jnp.ones((3, 1))}]
    >>> updates, _ = tx.update(grads, tx.init(params))
    >>> new = optax.apply_updates(params, updates)
    >>> float(new[0]["W"][0, 0]), float(new[0]["b"][0, 0])
    (0.5, -0.5)
    """

    def init(params):
        dtype = optax.tree.dtype(params, "highest")
        check_learning_rate(learning_rate, dtype=dtype)  # α that rounds to 0 in dtype: refused
        return GDState(jnp.asarray(learning_rate, dtype))

    def update(grads, state, params=None):
        del params
        return descent(grads, state.learning_rate), state

    return optax.GradientTransformation(init, update)


__all__ = ["sgd_update", "descent", "gradient_descent", "GDState"]
