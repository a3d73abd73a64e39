"""The hand-derived backward pass: the delta recursion (§4a-c).

In the names, for l = L, ..., 1:

* §4a  dZ^[L] = dL/dA^[L] · g'(Z^[L])  (``output_delta``; A^[L] - Y when fused)
* §4b  dZ^[l] = (W^[l+1])^T dZ^[l+1] · g'(Z^[l])  (``dA_prev`` then ``backward`` of g)
* §4c  dW^[l] = (1/m) dZ^[l] (A^[l-1])^T,  db^[l] = (1/m) Σ_columns dZ^[l]

dZ is the derivative of each example's loss (no 1/m); the 1/m enters once, in
dW and db (conventions §2). With per-example weights w: (m,) (a padded batch,
w = 0 on padding) dZ^[L] is multiplied by w column by column and m becomes Σw:
the gradient of ``cost(..., w=w)`` for ANY loss, with dropout and L2. Every
function here is cross-checked against ``jax.grad`` of ``jaxnn.cost`` in the tests.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnn.core.forward import cost, cost_from_cache, forward
from jaxnn.core.losses import FUSED
from jaxnn.core.network import Network, check_params, check_Y
from jaxnn.core.validate import check_l2, check_weights, l2_is_off
from jaxnn.core.validate_data import as_array

Array = jax.Array


def output_delta(ZL: Array, AL: Array, Y: Array, net: Network, *, fused: bool = True) -> Array:
    """dZ^[L] = δ^[L] (formulas §4a), shape (n_L, m).

    Sigmoid+BCE and softmax+cross-entropy use the fused, stable A^[L] - Y when
    ``fused`` (the default). Otherwise: dA^[L] = dL/dA^[L] from the loss, then
    the output activation's backward (its Jacobian product for softmax).
    ``fused=False`` is the general formula, kept for cross-checks.

    Args:
      ZL: Z^[L], (n_L, m).
      AL: A^[L] = g(Z^[L]), (n_L, m).
      Y: (n_L, m).
      net: the ``Network`` (its output activation and loss).
      fused: use A^[L] - Y for the fused pairings (default True).

    Returns:
      dZ^[L]: (n_L, m), the derivative of each example's loss (no 1/m).

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> ZL, Y = jnp.zeros((1, 4)), jnp.ones((1, 4))
    >>> output_delta(ZL, jax.nn.sigmoid(ZL), Y, net)  # A^[L] - Y
    Array([[-0.5, -0.5, -0.5, -0.5]], dtype=float32)
    """
    g, loss = net.layer_activations[-1], net.loss_fn
    pair = FUSED.get((g.name, loss.name))
    if fused and pair is not None:
        return pair.dZ(ZL, AL, Y)
    dAL = loss.backward(AL, Y)
    return g.backward(dAL, ZL, AL)


def linear_backward(dZ: Array, A_prev: Array, m: int) -> tuple[Array, Array]:
    """dW = (1/m) dZ A_prev^T and db = (1/m) Σ_columns dZ (formulas §4c).

    Args:
      dZ: (n_l, m).
      A_prev: (n_{l-1}, m).
      m: the batch size (or Σw for a weighted batch).

    Returns:
      ``(dW, db)`` of shapes (n_l, n_{l-1}) and (n_l, 1).

    >>> dW, db = linear_backward(jnp.ones((3, 4)), jnp.ones((2, 4)), 4)
    >>> dW.shape, db.shape, float(db[0, 0])
    ((3, 2), (3, 1), 1.0)
    """
    dW = (dZ @ A_prev.T) / m
    db = jnp.sum(dZ, axis=1, keepdims=True) / m
    return dW, db


def backward(params: list[dict], cache: list[dict], Y: Array, net: Network, *, l2=0.0,
             w: Array | None = None) -> list[dict]:
    """Hand-derived gradients of the cost, by the delta recursion (formulas §4).

    Args:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``.
      cache: the second output of ``forward(params, X, net, ...)``.
      Y: (n_L, m).
      net: the ``Network``.
      l2: weight-decay strength λ; adds (λ/m) W^[l] to dW^[l] (not to db).
      w: None, or (m,) per-example weights >= 0: dZ^[L] is scaled by w column
        by column and the 1/m of formulas §4c becomes 1/Σw, so the result is the
        gradient of ``cost(..., w=w)`` (columns of weight 0 contribute nothing).

    Returns:
      grads with exactly the structure of params: ``[{"W": dW, "b": db}]``.

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jaxnn.init_params(jax.random.key(0), net)
    >>> X, Y = jnp.ones((2, 4)), jnp.ones((1, 4))
    >>> AL, cache = forward(params, X, net)
    >>> [g["W"].shape for g in backward(params, cache, Y, net)]
    [(3, 2), (1, 3)]
    """
    check_params(params, net)
    if not isinstance(cache, (list, tuple)) or len(cache) != net.L:
        raise ValueError(
            f"cache must be the list of {net.L} per-layer dicts returned by forward(params, X, net)."
        )
    Y = as_array("Y", Y, params)
    check_Y(Y, cache[0]["A_prev"], net)
    check_l2(l2)
    acts = net.layer_activations
    grads: list[dict] = [{}] * net.L
    last = cache[-1]
    dZ = output_delta(last["Z"], last["A"], Y, net)  # §4a
    if w is None:
        m = Y.shape[1]
    else:
        check_weights(w, Y.shape[1])
        w = jnp.asarray(w, dZ.dtype)
        m = jnp.sum(w)
        # where(): a padded column's dZ may be inf/NaN; 0 * inf would leak it into dW
        dZ = jnp.where(w > 0, dZ * w[None, :], 0)
    for l in range(net.L - 1, -1, -1):  # list index l is the layer l + 1
        dW, db = linear_backward(dZ, cache[l]["A_prev"], m)  # §4c
        W = params[l]["W"]
        if not l2_is_off(l2):
            dW = dW + (l2 / m) * W
        grads[l] = {"W": dW, "b": db}
        if l == 0:
            break  # dA^[0] = dX is never needed: skip its (n_x, m) matmul
        prev = cache[l - 1]
        dA_prev = W.T @ dZ  # §4b
        if "D" in prev:
            dA_prev = dA_prev * prev["D"]  # the same inverted-dropout factor the forward pass applied
        dZ = acts[l - 1].backward(dA_prev, prev["Z"], prev["A"])
    return grads if isinstance(params, list) else type(params)(grads)  # the params' container


def value_and_manual_grad(
    params: list[dict],
    X: Array,
    Y: Array,
    net: Network,
    *,
    l2=0.0,
    key: jax.Array | None = None,
    keep_prob: float = 1.0,
    w: Array | None = None,
) -> tuple[Array, list[dict]]:
    """``(J, grads)`` from one forward pass and the hand-derived ``backward``.

    Same signature and results as ``value_and_autodiff_grad`` (up to rounding):
    ``forward`` (formulas §1), the cost J (§3) and ``backward`` (§4).

    Args:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``.
      X: (n_x, m), one column per example.
      Y: (n_L, m).
      net: the ``Network``.
      l2: weight-decay strength λ >= 0 (as in ``cost``).
      key: PRNG key for inverted dropout (as in ``forward``).
      keep_prob: the probability of keeping a hidden unit (as in ``forward``).
      w: None, or (m,) per-example weights (as in ``backward``).

    Returns:
      ``(J, grads)``: J a scalar (), grads with the structure (and shapes) of params.

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jaxnn.init_params(jax.random.key(0), net)
    >>> J, grads = value_and_manual_grad(params, jnp.ones((2, 4)), jnp.ones((1, 4)), net)
    >>> J.shape, [g["W"].shape for g in grads]
    ((), [(3, 2), (1, 3)])
    """
    X, Y = as_array("X", X, params), as_array("Y", Y, params)
    check_Y(Y, X, net)
    AL, cache = forward(params, X, net, key=key, keep_prob=keep_prob)
    J = cost_from_cache(params, cache, Y, net, l2=l2, w=w)
    return J, backward(params, cache, Y, net, l2=l2, w=w)


def value_and_autodiff_grad(
    params: list[dict],
    X: Array,
    Y: Array,
    net: Network,
    *,
    l2=0.0,
    key: jax.Array | None = None,
    keep_prob: float = 1.0,
    w: Array | None = None,
) -> tuple[Array, list[dict]]:
    """``(J, grads)`` by ``jax.value_and_grad(jaxnn.cost)``.

    The reference the hand-derived pass is checked against (conventions §3).

    Args:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``.
      X: (n_x, m), one column per example.
      Y: (n_L, m).
      net: the ``Network``.
      l2: weight-decay strength λ >= 0 (as in ``cost``).
      key: PRNG key for inverted dropout (as in ``forward``).
      keep_prob: the probability of keeping a hidden unit (as in ``forward``).
      w: None, or (m,) per-example weights (as in ``backward``).

    Returns:
      ``(J, grads)``: J a scalar (), grads with the structure (and shapes) of params.

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jaxnn.init_params(jax.random.key(0), net)
    >>> X, Y = jnp.ones((2, 4)), jnp.ones((1, 4))
    >>> J, grads = jax.jit(value_and_autodiff_grad, static_argnames="net")(params, X, Y, net)
    >>> bool(jaxnn.relative_error(grads, value_and_manual_grad(params, X, Y, net)[1]) < 1e-5)
    True
    """
    return jax.value_and_grad(cost)(params, X, Y, net, l2=l2, key=key, keep_prob=keep_prob, w=w)
