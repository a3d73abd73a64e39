"""The one training step (formulas §4 then §5 or optax) and the one builder that compiles it.

``train_step`` is a pure function: gradients of one batch (hand-derived,
formulas §4, or ``jax.grad``), then an optimizer update. Every way jaxnn trains
runs it: ``make_train_step`` (one device or a mesh, any optimizer, optional
bfloat16 compute, optional ensemble) and the compiled epochs of ``fit``. An
optimizer is always an optax transformation; a float learning rate becomes
formulas §5's ``gradient_descent`` (``jaxnn.train.optimizers.as_optimizer``) at
the entry point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxnn.core.backward import backward
from jaxnn.core.forward import cost_from_cache, forward
from jaxnn.core.network import Network, check_Y
from jaxnn.core.precision import with_compute_dtype
from jaxnn.core.validate import check_grad_name, check_keep_prob, check_l2, check_learning_rate
from jaxnn.core.validate_data import as_batch
from jaxnn.devices.mesh import batch_sharding, mesh_axis, n_devices, replicated, shard_batch
from jaxnn.train.metrics import batch_sums
from jaxnn.train.optimizers import OPTIMIZERS, as_optimizer

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
    kwargs = {"key": key, "keep_prob": s.keep_prob} if s.keep_prob < 1.0 else {}

    def value_grads_and_sums(p, X, Y, w, l2):
        J, grads, cache = value_grad_and_cache(p, X, Y, s.net, grad=s.grad, l2=l2, w=w, **kwargs)
        return J, grads, batch_sums(cache, Y, s.net, w)

    if s.compute_dtype is not None:  # mixed precision: compute in bf16, keep params in f32
        value_grads_and_sums = with_compute_dtype(value_grads_and_sums, s.compute_dtype)
    J, grads, sums = value_grads_and_sums(params, X, Y, w, l2)
    updates, opt_state = s.tx.update(grads, opt_state, params)
    return StepOutput(optax.apply_updates(params, updates), opt_state, J, grads, sums)


class TrainStep(NamedTuple):
    """A compiled training step as a pair of functions, like an optax transformation.

    Calling the ``TrainStep`` itself runs ``stateless``: ``params, J = train(params, X, Y)``.

    Attributes:
      init: ``params -> (params, opt_state)``, both placed on the mesh when there is one
        (replicated, or split along the ensemble axis).
      step: ``(params, opt_state, X, Y, w=None) -> (params, opt_state, J)``; X: (n_x, m),
        Y: (n_L, m) (on a mesh: as from ``shard_batch``, or ``shard_padded_batch`` with its
        mask w: (m,)); J is the cost before the update ((E,) for an ensemble).
      stateless: ``(params, X, Y) -> (params, J)``, formulas §5 with a fixed α: set when the
        optimizer was a learning rate (its state is only α), else None.
    """

    init: Callable[[Any], tuple[Any, Any]]
    step: Callable[..., tuple[Any, Any, Array]]
    stateless: Callable[..., tuple[Any, Array]] | None = None

    def __call__(self, params, X, Y):
        """``(params, X, Y) -> (new_params, J)``: the formulas §5 step (a learning-rate optimizer)."""
        if self.stateless is None:
            raise ValueError(
                "this step's optimizer carries state (an optax transformation or an ensemble): "
                "call params, opt_state = train.init(params) once, then "
                "params, opt_state, J = train.step(params, opt_state, X, Y).")
        return self.stateless(params, X, Y)


def _shardings(mesh, ensemble: bool):
    """(state, data, mask, J) shardings of the step on a mesh: replicated params and split
    columns, or (ensemble) params split along E and replicated data."""
    axis = mesh_axis(mesh)
    rep, split = replicated(mesh), NamedSharding(mesh, P(axis))
    if ensemble:
        return split, rep, rep, split
    return rep, batch_sharding(mesh), split, rep


def make_train_step(
    net: Network,
    optimizer=None,
    *,
    learning_rate=None,
    grad: str = "manual",
    l2: float = 0.0,
    compute_dtype=None,
    mesh=None,
    ensemble: bool = False,
    donate: bool = False,
) -> TrainStep:
    """THE training-step builder: formulas §4 gradients, then §5 or an optax update, compiled.

    One device or a device mesh, any optimizer, optional bfloat16 compute, optionally an
    ensemble of stacked models: every combination runs the same ``train_step``.

    Args:
      net: the ``Network``.
      optimizer: a learning rate α (formulas §5's ``gradient_descent``), a name in
        ``OPTIMIZERS`` or an ``optax.GradientTransformation``.
      learning_rate: α, the same as passing a float as ``optimizer`` (the formulas §5
        signature ``make_train_step(net, learning_rate)``); give one of the two.
      grad: ``"manual"`` (the hand-derived backward pass) or ``"autodiff"`` (``jax.grad``).
      l2: weight-decay strength λ.
      compute_dtype: None (the params' dtype) or e.g. ``jnp.bfloat16``: the forward and
        backward pass in that dtype, params and optimizer state in theirs.
      mesh: None (one device) or a 1-D mesh (``make_mesh``): the batch's columns split over
        its devices, params replicated; XLA inserts the all-reduce of the gradient.
      ensemble: params (and opt_state) carry a leading (E,) axis of stacked models
        (``jax.vmap``); on a mesh they are split over the devices (E divisible by D) and X, Y
        replicated.
      donate: donate the params (and optimizer state) buffers to the step (faster for large
        networks; the arrays passed in must not be used afterwards).

    Returns:
      ``TrainStep(init, step, stateless)``; call it as ``params, J = train(params, X, Y)``
      when the optimizer is a learning rate.

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> step = make_train_step(net, 0.5)
    >>> params, J = step(jaxnn.init_params(jax.random.key(0), net), jnp.ones((2, 4)), jnp.ones((1, 4)))
    >>> J.shape, params[0]["W"].shape
    ((), (3, 2))
    >>> mesh = jaxnn.make_mesh()
    >>> train = make_train_step(net, optax.adam(1e-3), mesh=mesh)
    >>> params, opt_state = train.init(params)
    >>> D = len(jax.devices())
    >>> X, Y = jaxnn.shard_batch(jnp.ones((2, 4 * D)), jnp.ones((1, 4 * D)), mesh)
    >>> params, opt_state, J = train.step(params, opt_state, X, Y)
    >>> J.shape
    ()
    """
    if learning_rate is not None:
        if optimizer is not None:
            raise ValueError("make_train_step: give optimizer or learning_rate, not both "
                             f"(got optimizer={optimizer!r}, learning_rate={learning_rate!r}).")
        check_learning_rate(learning_rate)
        optimizer = learning_rate
    if optimizer is None:
        raise ValueError("make_train_step needs an optimizer: a learning rate α (formulas §5), "
                         f"a name ({', '.join(OPTIMIZERS)}) or an optax.GradientTransformation.")
    s = settings(net, optimizer, grad=grad, compute_dtype=compute_dtype)
    check_l2(l2)
    if not isinstance(ensemble, bool):
        raise ValueError(f"ensemble must be True or False, got {ensemble!r}.")

    def one(params, opt_state, X, Y, w):
        out = train_step(params, opt_state, X, Y, s, l2=l2, w=w)
        return out.params, out.opt_state, out.J

    if ensemble:
        one = jax.vmap(one, in_axes=(0, 0, None, None, None))
    if mesh is None:
        shard = {"plain": {}, "masked": {}, "stateless": {}}
    else:
        state, data, mask, J_out = _shardings(mesh, ensemble)
        shard = {"plain": dict(in_shardings=(state, state, data, data),
                               out_shardings=(state, state, J_out)),
                 "masked": dict(in_shardings=(state, state, data, data, mask),
                                out_shardings=(state, state, J_out)),
                 "stateless": dict(in_shardings=(state, data, data), out_shardings=(state, J_out))}
    donated = (0, 1) if donate else ()
    plain_jit = jax.jit(lambda p, o, X, Y: one(p, o, X, Y, None), donate_argnums=donated,
                        **shard["plain"])
    masked_jit = jax.jit(one, donate_argnums=donated, **shard["masked"])

    def check_columns(X, Y):
        if mesh is not None and not ensemble and np.shape(X)[1] % n_devices(mesh):
            shard_batch(X, Y, mesh)  # raises the explanatory ValueError

    def init(params):
        if ensemble:
            E = {int(np.shape(x)[0]) for x in jax.tree.leaves(params)}
            D = 1 if mesh is None else n_devices(mesh)
            if len(E) != 1 or next(iter(E)) % D:
                raise ValueError(
                    f"ensemble=True: every params leaf needs the same leading (E,) axis with E "
                    f"divisible by the {D} devices; got leading sizes {sorted(E)}."
                )
            opt_state = jax.vmap(s.tx.init)(params)
        else:
            opt_state = s.tx.init(params)
        if mesh is None:
            return params, opt_state
        return jax.device_put(params, state), jax.device_put(opt_state, state)

    def step(params, opt_state, X, Y, w=None):
        X, Y = as_batch(X, Y, net, params)  # on the host: lists converted, X named before Y
        if w is None:
            check_columns(X, Y)
            return plain_jit(params, opt_state, X, Y)
        return masked_jit(params, opt_state, X, Y, w)

    step.lower = lambda *args: (masked_jit if len(args) == 5 else plain_jit).lower(*args)
    stateless = None
    if _is_learning_rate(optimizer) and not ensemble:
        def classic(params, X, Y):
            p, _, J = one(params, s.tx.init(params), X, Y, None)
            return p, J

        classic_jit = jax.jit(classic, donate_argnums=(0,) if donate else (), **shard["stateless"])

        def stateless(params, X, Y):
            X, Y = as_batch(X, Y, net, params)
            check_columns(X, Y)
            return classic_jit(params, X, Y)

    return TrainStep(init, step, stateless)


def _is_learning_rate(optimizer) -> bool:
    return (isinstance(optimizer, (int, float, np.integer, np.floating))
            and not isinstance(optimizer, bool))


__all__ = ["StepOutput", "StepSettings", "TrainStep", "make_train_step", "settings", "train_step",
           "value_grad_and_cache"]
