"""The hand-derived backward pass as JAX's own gradient of the cost (``jax.custom_vjp``).

``cost_with_manual_vjp(params, X, Y, net)`` returns the same J as ``jaxnn.cost``,
but ``jax.grad`` of it with respect to params runs ``jaxnn.backward`` (the
delta recursion, formulas §4a-c) instead of JAX's reverse mode. So the
hand-derived gradient composes like any JAX function: ``jax.jit``,
``jax.vmap`` (e.g. per-example gradients, ensembles of params), optax
(``optax.value_and_grad``-style training loops), higher-level wrappers.

Which cotangents are hand-derived:

* params: ``jaxnn.backward`` (the point of this module);
* l2: dJ/dλ = Σ_l ||W^[l]||² / (2m), exact;
* X and Y: the backward pass never computes dA^[0] (or a derivative
  with respect to the labels), so these come from ``jax.vjp`` of
  ``jaxnn.cost``: correct, just not hand-derived. They are computed only when
  X or Y is actually being differentiated (``symbolic_zeros``), so
  ``jax.grad`` with respect to params costs one forward and one hand-derived
  backward pass, eager or jitted.

Dropout is not supported here (use ``value_and_manual_grad(..., key=...)``).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax.custom_derivatives import CustomVJPPrimal, SymbolicZero

from jaxnn.core.backward import backward
from jaxnn.core.forward import cost, cost_from_cache, forward
from jaxnn.core.network import Network, check_Y
from jaxnn.core.validate import check_l2

Array = jax.Array


def cost_with_manual_vjp(params: list[dict], X: Array, Y: Array, net: Network, *, l2=0.0) -> Array:
    """J(params) (formulas §3) whose ``jax.grad`` with respect to params is ``jaxnn.backward``.

    Args:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``.
      X: (n_x, m).
      Y: (n_L, m).
      net: the ``Network`` (not differentiable; it holds no arrays).
      l2: weight-decay strength λ >= 0 (a number or a traced scalar).

    Returns:
      The scalar cost, equal to ``jaxnn.cost(params, X, Y, net, l2=l2)``.

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jaxnn.init_params(jax.random.key(0), net)
    >>> X, Y = jnp.ones((2, 4)), jnp.ones((1, 4))
    >>> g = jax.grad(cost_with_manual_vjp)(params, X, Y, net)  # runs jaxnn.backward
    >>> [d["W"].shape for d in g]
    [(3, 2), (1, 3)]
    """
    if not isinstance(net, Network):
        raise ValueError(f"cost_with_manual_vjp: net must be a jaxnn.Network, got {type(net).__name__}.")
    check_l2(l2)
    return _cost(params, X, Y, l2, net)


@partial(jax.custom_vjp, nondiff_argnums=(4,))
def _cost(params, X, Y, l2, net):
    return cost(params, X, Y, net, l2=l2)


def _value(tree):
    return jax.tree.map(lambda p: p.value, tree, is_leaf=lambda p: isinstance(p, CustomVJPPrimal))


def _perturbed(tree) -> bool:
    leaves = jax.tree.leaves(tree, is_leaf=lambda p: isinstance(p, CustomVJPPrimal))
    return any(p.perturbed for p in leaves)


def _fwd(params, X, Y, l2, net):
    need_params, need_X, need_Y, need_l2 = (_perturbed(t) for t in (params, X, Y, l2))
    params, X, Y, l2 = _value(params), _value(X), _value(Y), _value(l2)
    AL, cache = forward(params, X, net)
    check_Y(Y, X, net)
    J = cost_from_cache(params, cache, Y, net, l2=l2)
    # Which cotangents bwd must produce is encoded in the residuals' pytree
    # structure (None or not), which is static: no branching on traced values.
    res = (
        params,
        Y,
        l2,
        cache if need_params else None,
        X if (need_X or need_Y) else None,
        () if need_l2 else None,
    )
    return J, res


def _bwd(net, res, gJ):
    params, Y, l2, cache, X, need_l2 = res
    if isinstance(gJ, SymbolicZero):
        return None, None, None, None
    d_params = d_X = d_Y = d_l2 = None
    if cache is not None:
        grads = backward(params, cache, Y, net, l2=l2)
        d_params = jax.tree.map(lambda g: (gJ * g).astype(g.dtype), grads)
    if X is not None:
        _, vjp = jax.vjp(lambda X, Y: cost(params, X, Y, net, l2=l2), X, Y)
        d_X, d_Y = vjp(gJ)
    if need_l2 is not None:
        m = Y.shape[1]
        d_l2 = gJ * sum(jnp.sum(p["W"] ** 2) for p in params) / (2 * m)
    return d_params, d_X, d_Y, d_l2


_cost.defvjp(_fwd, _bwd, symbolic_zeros=True)
