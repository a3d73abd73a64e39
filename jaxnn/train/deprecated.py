"""Builders kept for one release as thin aliases of ``make_train_step`` (``DeprecationWarning``).

``make_mixed_precision_train_step`` is ``make_train_step(..., compute_dtype=...)`` and
``make_sharded_train_step`` is ``make_train_step(..., mesh=...)``: one builder, one step.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp

from jaxnn.core.deprecation import deprecated
from jaxnn.core.network import Network
from jaxnn.train.step import TrainStep, make_train_step


def make_mixed_precision_train_step(net: Network, optimizer, *, compute_dtype=jnp.bfloat16,
                                    grad: str = "manual", l2: float = 0.0) -> Callable:
    """Deprecated: ``make_train_step(net, optimizer, compute_dtype=...).step``.

    The step is ``(params, opt_state, X, Y) -> (params, opt_state, J)``; for a learning rate,
    ``opt_state=()`` still works (the formulas §5 step, whose state is only α).

    Args:
      net: the ``Network``.
      optimizer: a learning rate α or an ``optax.GradientTransformation``.
      compute_dtype: the dtype of the forward and backward pass (bfloat16).
      grad: ``"manual"`` (formulas §4) or ``"autodiff"``.
      l2: weight decay λ.

    Returns:
      The compiled step.

    >>> import warnings
    >>> net = jaxnn.Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", DeprecationWarning)
    ...     step = make_mixed_precision_train_step(net, 0.5)
    >>> params, _, J = step(jaxnn.init_params(jax.random.key(0), net), (), jnp.ones((2, 4)), jnp.ones((1, 4)))
    >>> J.dtype
    dtype('float32')
    """
    deprecated("make_mixed_precision_train_step", "make_train_step(net, optimizer, compute_dtype=...)")
    train = make_train_step(net, optimizer, compute_dtype=compute_dtype, grad=grad, l2=l2)

    def step(params, opt_state, X, Y):
        if opt_state == () and train.stateless is not None:
            params, J = train(params, X, Y)
            return params, (), J
        return train.step(params, opt_state, X, Y)

    return step


def make_sharded_train_step(net: Network, optimizer, mesh, *, grad: str = "manual", l2: float = 0.0,
                            ensemble: bool = False, compute_dtype=None) -> TrainStep:
    """Deprecated: ``make_train_step(net, optimizer, mesh=mesh, ...)``, the same ``TrainStep``.

    Args:
      net: the ``Network``.
      optimizer: a learning rate α or an ``optax.GradientTransformation``.
      mesh: a 1-D mesh (``make_mesh``).
      grad: ``"manual"`` or ``"autodiff"``.
      l2: weight decay λ.
      ensemble: a leading (E,) axis of stacked models split over the devices.
      compute_dtype: e.g. ``jnp.bfloat16``.

    Returns:
      ``TrainStep(init, step, stateless)``.

    >>> import warnings
    >>> net = jaxnn.Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", DeprecationWarning)
    ...     train = make_sharded_train_step(net, 0.5, jaxnn.make_mesh())
    >>> type(train).__name__
    'TrainStep'
    """
    deprecated("make_sharded_train_step", "make_train_step(net, optimizer, mesh=mesh)")
    return make_train_step(net, optimizer, mesh=mesh, grad=grad, l2=l2, ensemble=ensemble,
                           compute_dtype=compute_dtype)


__all__ = ["make_mixed_precision_train_step", "make_sharded_train_step"]
