"""Optimizers: the formulas' gradient descent (§5) as an optax transformation, and named ones.

Every training entry point works with an ``optax.GradientTransformation``;
``as_optimizer`` turns what a user passes (None, a name, a float learning rate
or a transformation) into one, once, at the entry point. jaxnn's grads have
the params' structure, so ``optimizer.update(grads, state, params)`` takes
them unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax

from jaxnn.core.deprecation import deprecated
from jaxnn.core.update import descent, gradient_descent
from jaxnn.core.validate import check_learning_rate

Array = jax.Array


def constant_gradient_descent(learning_rate: float) -> optax.GradientTransformation:
    """Deprecated: formulas §5 with a fixed α and an empty state ``()``.

    A float learning rate now means ``gradient_descent(α)`` (α in the state) everywhere; this
    alias stays for one release, with a ``DeprecationWarning``. Its update is ``descent``.

    Args:
      learning_rate: α, a finite number > 0.

    Returns:
      The transformation.

    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", DeprecationWarning)
    ...     tx = constant_gradient_descent(0.5)
    >>> updates, state = tx.update([jnp.ones(2)], tx.init([jnp.ones(2)]))
    >>> updates[0].tolist(), state
    ([-0.5, -0.5], ())
    """
    deprecated("constant_gradient_descent", "gradient_descent (jaxnn.gradient_descent)")
    check_learning_rate(learning_rate)
    return optax.GradientTransformation(
        lambda params: (), lambda grads, state, params=None: (descent(grads, learning_rate), state))


# Named optimizers: factory of the learning rate, and its default rate.
OPTIMIZERS: dict[str, tuple[Callable, float]] = {
    "gd": (gradient_descent, 0.1),
    "sgd": (lambda learning_rate: optax.sgd(learning_rate), 0.1),
    "momentum": (lambda learning_rate: optax.sgd(learning_rate, momentum=0.9), 0.05),
    "adam": (lambda learning_rate: optax.adam(learning_rate), 1e-3),
    "adamw": (lambda learning_rate: optax.adamw(learning_rate, weight_decay=1e-4), 1e-3),
    "rmsprop": (lambda learning_rate: optax.rmsprop(learning_rate), 1e-3),
}


def _factory(name: str) -> Callable[[Any], optax.GradientTransformation]:
    """lr -> transformation whose state carries lr (so it may be traced / differ per member)."""
    factory = OPTIMIZERS[name][0]
    return factory if name == "gd" else optax.inject_hyperparams(factory)


@functools.cache
def named_optimizer(name: str) -> optax.GradientTransformation:
    """The transformation for a name in ``OPTIMIZERS``, with its rate in the state.

    One cached object per name: its update reads α from the state, so every
    rate shares it, and a compiled program keyed on it is reused across calls.

    Args:
      name: a key of ``OPTIMIZERS``.

    >>> named_optimizer("adam") is named_optimizer("adam")
    True
    """
    return _factory(name)(OPTIMIZERS[name][1])


def named_init(name: str, params, learning_rate):
    """The state of named optimizer ``name`` for params, with α = learning_rate (may be traced).

    Args:
      name: a key of ``OPTIMIZERS``.
      params: the params pytree.
      learning_rate: α, a scalar.

    >>> named_init("gd", [jnp.ones(2)], 0.5)
    GDState(learning_rate=Array(0.5, dtype=float32))
    """
    return _factory(name)(learning_rate).init(params)


def as_optimizer(optimizer) -> optax.GradientTransformation:
    """None / a name in ``OPTIMIZERS`` / a float α / an optax transformation -> the transformation.

    Args:
      optimizer: None (formulas §5 gradient descent, α from the state), a name,
        a float learning rate (``gradient_descent(α)``), or any
        ``optax.GradientTransformation`` (returned as is).

    Returns:
      The transformation.

    >>> type(as_optimizer("adam")).__name__
    'GradientTransformationExtraArgs'
    """
    if optimizer is None:
        return named_optimizer("gd")
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer = {optimizer!r}; valid names: {', '.join(OPTIMIZERS)} "
                             "(or pass an optax.GradientTransformation).")
        return named_optimizer(optimizer)
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer
    if isinstance(optimizer, (int, float, np.floating, np.integer)) and not isinstance(optimizer, bool):
        check_learning_rate(optimizer)
        return gradient_descent(float(optimizer))
    raise ValueError(f"optimizer must be None, a name ({', '.join(OPTIMIZERS)}), a learning rate "
                     f"or an optax.GradientTransformation, got {type(optimizer).__name__}.")
