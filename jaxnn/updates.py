"""Gradient descent (formulas §5) and a compiled training step.

For anything beyond the plain update (momentum, Adam, schedules,
clipping) use optax: jaxnn's grads have the params' structure, so
``optimizer.update(grads, state, params)`` takes them unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.backward import value_and_autodiff_grad, value_and_manual_grad
from jaxnn.network import Network

Array = jax.Array

GRAD_FUNCTIONS = {"manual": value_and_manual_grad, "autodiff": value_and_autodiff_grad}


def check_learning_rate(learning_rate) -> None:
    """Raise ``ValueError`` for a learning rate that is not a finite positive number.

    Traced values (inside jit) cannot be inspected and are let through.
    """
    if np.ndim(learning_rate) != 0:
        raise ValueError(f"learning_rate must be a scalar, got shape {np.shape(learning_rate)}.")
    try:
        value = float(learning_rate)
    except jax.errors.ConcretizationTypeError:
        return  # a traced learning rate (e.g. an ensemble of rates under vmap)
    except (TypeError, ValueError):
        raise ValueError(f"learning_rate must be a number, got {learning_rate!r}.") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"learning_rate = {value!r} must be a finite number > 0.")


def sgd_update(params: list[dict], grads: list[dict], learning_rate: float | Array) -> list[dict]:
    """One gradient-descent step: W := W - α dW, b := b - α db (formulas §5).

    Args:
      params, grads: pytrees of the same structure (grads from ``backward``),
        ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``.
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


def make_train_step(
    net: Network,
    learning_rate: float,
    *,
    grad: str = "manual",
    l2: float = 0.0,
    donate: bool = False,
) -> Callable[[list[dict], Array, Array], tuple[list[dict], Array]]:
    """A jit-compiled step ``(params, X, Y) -> (new_params, J)`` (formulas §4 then §5).

    Args:
      net: the ``Network``.
      learning_rate: α, a finite number > 0.
      grad: ``"manual"`` (the hand-derived backward pass) or ``"autodiff"``
        (``jax.grad``), for comparison.
      l2: weight-decay strength λ.
      donate: donate the params buffers to the step (faster for large
        networks; the params passed in must not be used afterwards).

    Returns:
      The compiled step. J is the cost at the params passed in (before the update).

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> step = make_train_step(net, 0.5)
    >>> params, J = step(jaxnn.init_params(jax.random.key(0), net), jnp.ones((2, 4)), jnp.ones((1, 4)))
    >>> J.shape, params[0]["W"].shape
    ((), (3, 2))
    """
    if not isinstance(net, Network):
        raise ValueError(f"make_train_step: net must be a jaxnn.Network, got {type(net).__name__}.")
    check_learning_rate(learning_rate)
    if grad not in GRAD_FUNCTIONS:
        raise ValueError(f"grad = {grad!r}; valid: {', '.join(GRAD_FUNCTIONS)}.")
    value_and_grad = GRAD_FUNCTIONS[grad]

    def step(params, X, Y):
        J, grads = value_and_grad(params, X, Y, net, l2=l2)
        return sgd_update(params, grads, learning_rate), J

    return jax.jit(step, donate_argnums=(0,) if donate else ())
