"""The one training step (formulas §4 then §5 or optax) and the builders that compile it.

``train_step`` is a pure function: gradients of one batch (hand-derived,
formulas §4, or ``jax.grad``), then an optimizer update. Every way jaxnn trains
runs it: ``make_train_step`` (formulas §5 with a fixed α), ``make_mixed_precision_train_step``
(bfloat16 compute), ``jaxnn.devices.mesh.make_sharded_train_step`` (a device
mesh) and the compiled epochs of ``fit``. An optimizer is always an optax
transformation; a float learning rate becomes formulas §5's gradient descent
(``jaxnn.train.optimizers.as_optimizer``) at the entry point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxnn.core.backward import backward
from jaxnn.core.forward import cost_from_cache, forward
from jaxnn.core.network import Network, check_Y
from jaxnn.core.precision import cast_floating
from jaxnn.core.validate import check_grad_name, check_keep_prob, check_l2
from jaxnn.train.metrics import batch_sums
from jaxnn.train.optimizers import as_optimizer

Array = jax.Array


class StepSettings(NamedTuple):
    """The static settings of ``train_step``; hashable, so a compiled program is keyed on them.

    net: the ``Network``; tx: an ``optax.GradientTransformation``; grad:
    "manual" or "autodiff"; keep_prob: inverted dropout on hidden layers
    (1.0 = off); compute_dtype: None or a dtype name such as "bfloat16" (the
    forward and backward pass run in it, params and optimizer state do not).
    """

    net: Network
    tx: optax.GradientTransformation
    grad: str = "manual"
    keep_prob: float = 1.0
    compute_dtype: str | None = None


def settings(net: Network, optimizer, *, grad: str = "manual", keep_prob: float = 1.0,
             compute_dtype=None) -> StepSettings:
    """Check the arguments of a training step and return its ``StepSettings``.

    Args:
      net: the ``Network``.
      optimizer: None, a name, a float learning rate or an optax transformation
        (``jaxnn.train.optimizers.as_optimizer``).
      grad: "manual" (formulas §4) or "autodiff" (``jax.grad``).
      keep_prob: the probability of keeping a hidden unit, in (0, 1].
      compute_dtype: None (the params' dtype) or a floating dtype such as ``jnp.bfloat16``.

    Returns:
      The settings.

    >>> settings(Network((2, 3, 1), ("tanh", "sigmoid"), "bce"), 0.5).grad
    'manual'
    """
    if not isinstance(net, Network):
        raise ValueError(f"net must be a jaxnn.Network, got {type(net).__name__}.")
    check_grad_name(grad)
    check_keep_prob(keep_prob, need_key=False)
    if compute_dtype is not None:
        dt = jnp.dtype(compute_dtype)
        if not jnp.issubdtype(dt, jnp.floating):
            raise ValueError(f"compute_dtype = {dt} must be a floating dtype such as jnp.bfloat16 "
                             "(or None: compute in the params' dtype).")
        compute_dtype = dt.name
    return StepSettings(net, as_optimizer(optimizer), grad, float(keep_prob), compute_dtype)


class StepOutput(NamedTuple):
    """What ``train_step`` returns: the new params and optimizer state, J before the update,
    the gradients (params' dtype) and the batch's running-metric sums (``metrics.batch_sums``)."""

    params: Any
    opt_state: Any
    J: Array
    grads: Any
    sums: dict


def value_grad_and_cache(params, X, Y, net: Network, *, grad: str = "manual", l2=0.0, key=None,
                         keep_prob: float = 1.0, w=None):
    """``(J, grads, cache)``: the cost, its gradient and the forward pass's cache, in one pass.

    Args:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``.
      X: (n_x, m).
      Y: (n_L, m).
      net: the ``Network``.
      grad: "manual" (``backward``, formulas §4) or "autodiff" (``jax.grad`` of the cost).
      l2: the weight-decay strength λ.
      key: the PRNG key for dropout.
      keep_prob: the probability of keeping a hidden unit.
      w: None, or (m,) per-example weights (``backward``).

    Returns:
      J (), grads (params' structure) and the cache of ``forward``.

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jaxnn.init_params(jax.random.key(0), net)
    >>> J, grads, cache = value_grad_and_cache(params, jnp.ones((2, 4)), jnp.ones((1, 4)), net)
    >>> J.shape, len(cache)
    ((), 2)
    """
    check_Y(Y, X, net)

    def cost_and_cache(p):
        _, cache = forward(p, X, net, key=key, keep_prob=keep_prob)
        return cost_from_cache(p, cache, Y, net, l2=l2, w=w), cache

    if grad == "autodiff":
        (J, cache), grads = jax.value_and_grad(cost_and_cache, has_aux=True)(params)
        return J, grads, cache
    J, cache = cost_and_cache(params)
    return J, backward(params, cache, Y, net, l2=l2, w=w), cache


def train_step(params, opt_state, X, Y, s: StepSettings, *, l2=0.0, key=None, w=None) -> StepOutput:
    """One update on one batch: gradients (formulas §4 or ``jax.grad``), then ``s.tx``.

    Args:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``.
      opt_state: ``s.tx.init(params)``.
      X: (n_x, b).
      Y: (n_L, b).
      s: the ``StepSettings``.
      l2: the weight-decay strength λ (may be traced).
      key: the PRNG key for dropout (when s.keep_prob < 1).
      w: None, or (b,) per-example weights (padding columns weigh 0).

    Returns:
      ``StepOutput``; J is the cost at the params passed in.

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jaxnn.init_params(jax.random.key(0), net)
    >>> s = settings(net, 0.5)
    >>> out = train_step(params, s.tx.init(params), jnp.ones((2, 4)), jnp.ones((1, 4)), s)
    >>> out.J.shape, out.params[0]["W"].shape
    ((), (3, 2))
    """
    p = params
    if s.compute_dtype is not None:  # mixed precision: compute in bf16, keep params in f32
        p, X, Y, w, l2 = cast_floating((params, X, Y, w, l2), jnp.dtype(s.compute_dtype))
    kwargs = {"key": key, "keep_prob": s.keep_prob} if s.keep_prob < 1.0 else {}
    J, grads, cache = value_grad_and_cache(p, X, Y, s.net, grad=s.grad, l2=l2, w=w, **kwargs)
    sums = batch_sums(cache, Y, s.net, w)
    if s.compute_dtype is not None:
        dtype = jax.tree.leaves(params)[0].dtype
        J, sums = J.astype(dtype), jax.tree.map(lambda x: x.astype(dtype), sums)
        grads = jax.tree.map(lambda g, q: g.astype(q.dtype), grads, params)
    updates, opt_state = s.tx.update(grads, opt_state, params)
    return StepOutput(optax.apply_updates(params, updates), opt_state, J, grads, sums)


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
      grad: ``"manual"`` (the hand-derived backward pass) or ``"autodiff"`` (``jax.grad``).
      l2: weight-decay strength λ.
      donate: donate the params buffers to the step (faster for large
        networks; the params passed in must not be used afterwards).

    Returns:
      The compiled step. X: (n_x, m), Y: (n_L, m); J is the cost at the params
      passed in (before the update).

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> step = make_train_step(net, 0.5)
    >>> params, J = step(jaxnn.init_params(jax.random.key(0), net), jnp.ones((2, 4)), jnp.ones((1, 4)))
    >>> J.shape, params[0]["W"].shape
    ((), (3, 2))
    """
    if isinstance(learning_rate, optax.GradientTransformation) or learning_rate is None:
        raise ValueError("make_train_step takes a learning rate α (formulas §5); for an optax "
                         "optimizer use make_mixed_precision_train_step(..., compute_dtype=None) "
                         "or jaxnn.fit.")
    s = settings(net, learning_rate, grad=grad)
    check_l2(l2)

    def step(params, X, Y):
        out = train_step(params, (), X, Y, s, l2=l2)
        return out.params, out.J

    return jax.jit(step, donate_argnums=(0,) if donate else ())


def make_mixed_precision_train_step(
    net: Network,
    optimizer: float | optax.GradientTransformation,
    *,
    compute_dtype=jnp.bfloat16,
    grad: str = "manual",
    l2: float = 0.0,
) -> Callable:
    """A jitted step ``(params, opt_state, X, Y) -> (params, opt_state, J)`` computing in bf16.

    Args:
      net: the ``Network``.
      optimizer: a learning rate α (formulas §5; pass ``opt_state=()``) or an
        ``optax.GradientTransformation`` (``opt_state = optimizer.init(params)``,
        float32 like the params).
      compute_dtype: the dtype of the forward and backward pass (bfloat16; None: the params').
      grad: ``"manual"`` (formulas §4) or ``"autodiff"``.
      l2: weight decay λ.

    Returns:
      The compiled step; X: (n_x, m), Y: (n_L, m); params stay float32, J is
      float32 (computed in bf16).

    >>> net = jaxnn.Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> step = make_mixed_precision_train_step(net, 0.5)
    >>> params = jaxnn.init_params(jax.random.key(0), net)
    >>> params, _, J = step(params, (), jnp.ones((2, 4)), jnp.ones((1, 4)))
    >>> params[0]["W"].dtype, J.dtype
    (dtype('float32'), dtype('float32'))
    """
    s = settings(net, optimizer, grad=grad, compute_dtype=compute_dtype)
    check_l2(l2)

    def step(params, opt_state, X, Y):
        out = train_step(params, opt_state, X, Y, s, l2=l2)
        return out.params, out.opt_state, out.J

    return jax.jit(step)
