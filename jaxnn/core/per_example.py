"""Per-example gradients from the hand-derived backward pass (formulas §4).

``per_example_grads`` vmaps ``jaxnn.backward`` over the m columns of X: each
example is a batch of one, so its gradient is that example's loss gradient
(with m = 1 the 1/m is 1). The result has the params' structure with a
leading axis of size m: ``W`` leaves are (m, n_l, n_{l-1}), ``b`` leaves
(m, n_l, 1). Their mean over the leading axis is the batch gradient.

``per_example_grad_norms`` gives the m gradient norms without building that
stack: for a dense layer and one example, dW^[l] = dZ^[l] A^[l-1]^T is an outer
product, so ||dW^[l]||² = ||dZ^[l]||² ||A^[l-1]||², and db^[l] = dZ^[l], so
||db^[l]||² = ||dZ^[l]||². Memory O(m Σ n_l) instead of O(m · #params): what
differentially private SGD (per-example clipping) and data attribution need.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnn.core.backward import backward, value_and_manual_grad
from jaxnn.core.forward import forward
from jaxnn.core.network import Network, check_problem
from jaxnn.core.validate_data import as_array

Array = jax.Array


def per_example_grads(params: list[dict], X: Array, Y: Array, net: Network) -> list[dict]:
    """Gradient of each example's loss L^(i), stacked on a leading axis of size m.

    Computed by ``jax.vmap`` of the hand-derived ``backward`` over the columns
    of X and Y (each column reshaped to (n, 1)).

    Args:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``.
      X: (n_x, m).
      Y: (n_L, m).
      net: the ``Network``.

    Returns:
      ``[{"W": (m, n_l, n_{l-1}), "b": (m, n_l, 1)}]``; entry i is
      ∂L^(i)/∂params, and the mean over i is the batch gradient of ``cost``.

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jaxnn.init_params(jax.random.key(0), net)
    >>> X, Y = jnp.ones((2, 4)), jnp.ones((1, 4))
    >>> per_example_grads(params, X, Y, net)[0]["W"].shape  # (m, n_1, n_x)
    (4, 3, 2)
    """
    X, Y = as_array("per_example_grads: X", X, params), as_array("per_example_grads: Y", Y, params)
    check_problem(params, X, Y, net, "per_example_grads")
    return _grads(params, X, Y, net)


@jax.jit  # one compiled program per shape: eager vmap of the backward pass is slow
def _grads(params, X, Y, net):
    def one(x, y):
        return value_and_manual_grad(params, x[:, None], y[:, None], net)[1]

    return jax.vmap(one, in_axes=(1, 1))(X, Y)


def per_example_grad_norms(params: list[dict], X: Array, Y: Array, net: Network) -> Array:
    """||∂L^(i)/∂params||₂ over all layers, for each example i, shape (m,).

    Uses ||dW^[l]||² = ||dZ^[l]||² ||A^[l-1]||² and ||db^[l]||² = ||dZ^[l]||²
    (one example: dW is an outer product). dZ^[l] is read off the per-example
    ``backward`` (with m = 1, db^[l] = dZ^[l]); the per-example dW it also
    computes is never used, and the compiled function (this is jitted) drops
    it, so no (m, n_l, n_{l-1}) array is ever allocated.

    Args:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``.
      X: (n_x, m).
      Y: (n_L, m).
      net: the ``Network``.

    Returns:
      (m,) norms, in the params' dtype (formulas §4c per example).

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jaxnn.init_params(jax.random.key(0), net)
    >>> X, Y = jnp.ones((2, 4)), jnp.ones((1, 4))
    >>> per_example_grad_norms(params, X, Y, net).shape
    (4,)
    """
    X, Y = as_array("per_example_grad_norms: X", X, params), as_array("per_example_grad_norms: Y", Y, params)
    check_problem(params, X, Y, net, "per_example_grad_norms")
    return _grad_norms(params, X, Y, net)


@jax.jit
def _grad_norms(params, X, Y, net):
    def one(x, y):
        _, cache = forward(params, x[:, None], net)
        grads = backward(params, cache, y[:, None], net)
        sq = 0.0
        for g, c in zip(grads, cache):
            dZ_sq = jnp.sum(jnp.square(g["b"]))  # db^[l] = dZ^[l] when m = 1
            sq = sq + dZ_sq * (jnp.sum(jnp.square(c["A_prev"])) + 1)
        return jnp.sqrt(sq)

    return jax.vmap(one, in_axes=(1, 1))(X, Y)
