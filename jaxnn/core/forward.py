"""Forward propagation and the cost (formulas §1, §3).

``forward`` returns A^[L] and a cache: a list with one dict per layer,
``{"A_prev": A^[l-1], "Z": Z^[l], "A": g(Z^[l])}`` (plus ``"D"``, the scaled
dropout mask, on hidden layers when dropout is on). The cache is returned,
never stored: ``backward`` takes it as an argument.

These functions check shapes (at trace time) but not values: like ``jax.numpy``
they propagate NaN and inf. The entry points that own a run (``fit``,
``check_gradients``, the CLI) reject non-finite data before computing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnn.core.activations import Activation
from jaxnn.core.losses import FUSED
from jaxnn.core.network import Network, check_params, check_X, check_Y
from jaxnn.core.validate import as_key, check_keep_prob, check_l2, check_weights, l2_is_off
from jaxnn.core.validate_data import as_array

Array = jax.Array


def linear_forward(W: Array, b: Array, A_prev: Array) -> Array:
    """Z^[l] = W^[l] A^[l-1] + b^[l] (formulas §1a).

    Args:
      W: the weights W^[l], (n_l, n_{l-1}).
      b: the bias b^[l], (n_l, 1), broadcast over the m columns.
      A_prev: the previous layer's activation A^[l-1], (n_{l-1}, m).

    Returns:
      Z: (n_l, m).

    >>> linear_forward(jnp.ones((3, 2)), jnp.zeros((3, 1)), jnp.ones((2, 4))).shape
    (3, 4)
    """
    return W @ A_prev + b


def layer_forward(W: Array, b: Array, A_prev: Array, activation: Activation) -> tuple[Array, Array]:
    """One layer: Z = W A_prev + b, A = g(Z) (formulas §1a-b).

    Args:
      W: the weights W^[l], (n_l, n_{l-1}).
      b: the bias b^[l], (n_l, 1).
      A_prev: the previous layer's activation A^[l-1], (n_{l-1}, m).
      activation: the layer's g, an ``Activation`` (see ``jaxnn.get_activation``).

    Returns:
      ``(Z, A)``: Z^[l] and A^[l] = g(Z^[l]), both (n_l, m).

    >>> relu = jaxnn.get_activation("relu")
    >>> Z, A = layer_forward(jnp.ones((3, 2)), jnp.zeros((3, 1)), -jnp.ones((2, 4)), relu)
    >>> float(Z[0, 0]), float(A[0, 0])
    (-2.0, 0.0)
    """
    Z = linear_forward(W, b, A_prev)
    return Z, activation.forward(Z)


def forward(
    params: list[dict],
    X: Array,
    net: Network,
    *,
    key: jax.Array | None = None,
    keep_prob: float = 1.0,
) -> tuple[Array, list[dict]]:
    """Forward propagation through all L layers (formulas §1).

    Args:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]`` for l = 1..L.
      X: (n_x, m), one column per example (A^[0] = X).
      net: the ``Network``.
      key: PRNG key for inverted dropout (only used when keep_prob < 1).
      keep_prob: probability of keeping each hidden unit; hidden activations
        are multiplied by mask / keep_prob (inverted dropout) so evaluation
        needs no rescaling. The output layer is never dropped.

    Returns:
      ``(AL, cache)``: AL = A^[L] of shape (n_L, m), and the per-layer cache
      ``[{"A_prev", "Z", "A"(, "D")}]`` that ``backward`` needs.

    Raises:
      ValueError: at trace time, if params or X do not match ``net``.

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jaxnn.init_params(jax.random.key(0), net)
    >>> AL, cache = forward(params, jnp.ones((2, 4)), net)
    >>> AL.shape, [c["Z"].shape for c in cache]
    ((1, 4), [(3, 4), (1, 4)])
    """
    check_params(params, net)
    X = as_array("X", X, params)
    check_X(X, net)
    dropout = check_keep_prob(keep_prob, key)
    keys = jax.random.split(as_key(key), net.L) if dropout else [None] * net.L
    A = X
    cache = []
    for l, (p, g) in enumerate(zip(params, net.layer_activations), start=1):
        A_prev = A
        Z, A = layer_forward(p["W"], p["b"], A_prev, g)
        entry = {"A_prev": A_prev, "Z": Z, "A": A}
        if dropout and l < net.L:
            keep = jax.random.bernoulli(keys[l - 1], keep_prob, A.shape)
            # The mask is stored already divided by keep_prob, so backward
            # applies exactly the factor the forward pass applied.
            D = keep.astype(A.dtype) / jnp.asarray(keep_prob, A.dtype)
            entry["D"] = D
            A = A * D
        cache.append(entry)
    return A, cache


def predict(params: list[dict], X: Array, net: Network) -> Array:
    """A^[L] for X, without dropout: the first output of ``forward`` (formulas §1).

    Args:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``.
      X: (n_x, m), one column per example.
      net: the ``Network``.

    Returns:
      A^[L]: (n_L, m).

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jaxnn.init_params(jax.random.key(0), net)
    >>> predict(params, jnp.ones((2, 4)), net).shape
    (1, 4)
    """
    return forward(params, X, net)[0]


def per_example_loss(cache: list[dict], Y: Array, net: Network) -> Array:
    """Each example's loss L^(i), shape (m,), from a forward pass's cache (formulas §3).

    Sigmoid+BCE and softmax+cross-entropy are computed from Z^[L] (softplus /
    log-sum-exp), so they are finite for saturated logits; other losses from A^[L].

    Args:
      cache: the second output of ``forward(params, X, net)``.
      Y: (n_L, m).
      net: the ``Network``.

    Returns:
      (m,): the loss of each column.

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jax.tree.map(jnp.zeros_like, jaxnn.init_params(jax.random.key(0), net))
    >>> per_example_loss(forward(params, jnp.ones((2, 4)), net)[1], jnp.ones((1, 4)), net).shape
    (4,)
    """
    last = cache[-1]
    fused = FUSED.get((net.layer_activations[-1].name, net.loss_fn.name))
    if fused is not None:
        return fused.from_logits(last["Z"], Y)
    return net.loss_fn.forward(last["A"], Y)


def cost_from_cache(params: list[dict], cache: list[dict], Y: Array, net: Network, *, l2=0.0,
                    w: Array | None = None) -> Array:
    """J from a forward pass's cache (formulas §3): the mean of the examples' losses.

    With ``l2`` = λ > 0 the cost adds λ/(2m) Σ_l ||W^[l]||² (biases are not
    decayed). With per-example weights ``w`` the mean is weighted and m becomes
    Σw everywhere: J = Σ_i w_i L^(i) / Σw + λ/(2Σw) Σ_l ||W^[l]||² (formulas §3, §4c);
    w = 1 real / 0 padding gives the cost of the real columns alone.

    Args:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]`` (read only for the L2 term).
      cache: the second output of ``forward(params, X, net)``.
      Y: (n_L, m).
      net: the ``Network``.
      l2: the weight-decay strength λ >= 0 (may be traced).
      w: None, or (m,) weights >= 0 with Σw > 0.

    Returns:
      J: a scalar (), the same value as ``cost(params, X, Y, net, l2=l2, w=w)``.

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jaxnn.init_params(jax.random.key(0), net)
    >>> X, Y = jnp.ones((2, 4)), jnp.ones((1, 4))
    >>> AL, cache = forward(params, X, net)
    >>> bool(cost_from_cache(params, cache, Y, net) == cost(params, X, Y, net))
    True
    """
    check_l2(l2)
    losses = per_example_loss(cache, Y, net)
    if w is None:
        m = Y.shape[1]
        J = jnp.mean(losses)
    else:
        check_weights(w, Y.shape[1])
        w = jnp.asarray(w, losses.dtype)
        m = jnp.sum(w)
        # where(): a padded column's loss may be inf/NaN (e.g. log 0); 0 * inf would leak it
        J = jnp.sum(jnp.where(w > 0, w * losses, 0)) / m
    if not l2_is_off(l2):
        J = J + (l2 / (2 * m)) * sum(jnp.sum(p["W"] ** 2) for p in params)
    return J


def cost(
    params: list[dict],
    X: Array,
    Y: Array,
    net: Network,
    *,
    l2: float | Array = 0.0,
    key: jax.Array | None = None,
    keep_prob: float = 1.0,
    w: Array | None = None,
) -> Array:
    """The scalar cost J(params) (formulas §3): what ``jax.grad`` differentiates.

    Args:
      params: the params pytree ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``.
      X: (n_x, m).
      Y: (n_L, m), one-hot columns for softmax.
      net: the ``Network``.
      l2: weight-decay strength λ (adds λ/(2m) Σ ||W||²); may be a traced array.
      key: PRNG key for dropout, as in ``forward``.
      keep_prob: the probability of keeping a hidden unit, as in ``forward``.
      w: None, or (m,) per-example weights (``cost_from_cache``).

    Returns:
      J: a scalar, (1/m) Σ_i L^(i) (+ the L2 term).

    With all weights and biases 0, A^[L] = σ(0) = 1/2 and the BCE is log 2:

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jax.tree.map(jnp.zeros_like, jaxnn.init_params(jax.random.key(0), net))
    >>> round(float(cost(params, jnp.ones((2, 4)), jnp.ones((1, 4)), net)), 4)
    0.6931
    """
    X, Y = as_array("X", X, params), as_array("Y", Y, params)
    check_Y(Y, X, net)
    AL, cache = forward(params, X, net, key=key, keep_prob=keep_prob)
    return cost_from_cache(params, cache, Y, net, l2=l2, w=w)
