"""The training state: everything a resumed run needs, built by one compiled call.

``TrainState`` holds params, optimizer state, the update counter, the run's
PRNG key and the epoch counter. Epoch e's randomness (data order, dropout)
is derived from ``(key, e)`` alone, so a state saved after any epoch resumes
bit for bit. In an ensemble every leaf has a leading (E,) axis.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.core.initializers import (
    check_init_arguments,
    draw_params,
    init_params,  # noqa: F401 - the doctests use it
)
from jaxnn.core.network import Network
from jaxnn.core.validate import as_key, check_learning_rate, check_positive_int
from jaxnn.train.memory import check_state_fits
from jaxnn.train.optimizers import OPTIMIZERS, as_optimizer, named_init

Array = jax.Array


class TrainState(NamedTuple):
    """Everything a resumed run needs; leaves get a leading (E,) axis in an ensemble.

    Attributes:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``.
      opt_state: the optimizer's state (for the named optimizers it holds the learning rate).
      step: int32 (), updates applied.
      key: the run's PRNG key; epoch e draws its data order (``epoch_order``) and
        dropout masks (``fold_in(key, e)``) from it.
      epoch: int32 (), epochs completed.
    """

    params: list
    opt_state: Any
    step: Array
    key: Array
    epoch: Array


class StateSeed(NamedTuple):
    """A ``TrainState`` not built yet: ``init_state``'s checked arguments (``seed_state``).

    ``fit`` hands it to its first compiled epochs, which build the state inside
    their own program (``state_builder``): one dispatch instead of two.

    Attributes:
      params: the params (jax arrays; never donated).
      key: the typed key ((E,) keys in an ensemble).
      learning_rate: α in the params' dtype, () or (E,) (NumPy).
      optimizer: a name in ``OPTIMIZERS``, or the optax transformation.
      ensemble: the params hold E stacked models.
    """

    params: list
    key: Array
    learning_rate: Array
    optimizer: Any
    ensemble: bool

    def build(self) -> TrainState:
        """The state, in ``init_state``'s one compiled call."""
        return _init_program(self.optimizer, self.ensemble)(self.params, self.key,
                                                            self.learning_rate)


def init_state(params, key, *, optimizer=None, learning_rate=None, ensemble=False) -> TrainState:
    """A fresh ``TrainState`` (step 0, epoch 0) in one compiled call; the params are copied.

    Args:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]`` (each leaf with a leading
        (E,) axis in an ensemble); copied, never donated.
      key: ``jax.random.key(seed)``; in an ensemble one key (split into E) or (E,) keys.
      optimizer: None or "gd" (formulas §5), a name in ``OPTIMIZERS``, or an
        optax transformation (its own rate; then learning_rate must be None).
      learning_rate: α for a named optimizer (default: its rate in ``OPTIMIZERS``);
        an (E,) array in an ensemble.
      ensemble: the params hold E stacked models.

    Returns:
      The state.

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> state = init_state(init_params(jax.random.key(0), net), jax.random.key(1), learning_rate=0.5)
    >>> int(state.step), int(state.epoch), state.opt_state
    (0, 0, GDState(learning_rate=Array(0.5, dtype=float32)))
    """
    return seed_state(params, key, optimizer=optimizer, learning_rate=learning_rate,
                      ensemble=ensemble).build()


def seed_state(params, key, *, optimizer=None, learning_rate=None, ensemble=False) -> StateSeed:
    """Every check of ``init_state`` (memory included), without building the state: a ``StateSeed``.

    Args:
      params: as in ``init_state``.
      key: as in ``init_state``.
      optimizer: as in ``init_state``.
      learning_rate: as in ``init_state``.
      ensemble: as in ``init_state``.

    Returns:
      The seed; ``init_state`` builds it at once, ``fit`` inside its first epochs.

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> seed_state(init_params(jax.random.key(0), net), jax.random.key(1)).optimizer
    'gd'
    """
    named = optimizer is None or isinstance(optimizer, str)
    tx = as_optimizer(optimizer)  # validates a name
    if not named and learning_rate is not None:
        raise ValueError("learning_rate is set inside an optax optimizer: pass learning_rate=None "
                         "(or a name such as optimizer='adam' with learning_rate=...).")
    leaves = jax.tree.leaves(params)
    if not leaves or not all(hasattr(x, "shape") and jnp.issubdtype(x.dtype, jnp.floating)
                             for x in leaves):
        raise ValueError("params must be a pytree of floating-point arrays, e.g. "
                         "jaxnn.init_params(key, net).")
    key = as_key(key)
    dtype = _params_dtype(tuple({x.dtype for x in leaves}))  # α in the params' precision
    lr = np.zeros(())
    if named:
        name = optimizer or "gd"
        lr = OPTIMIZERS[name][1] if learning_rate is None else learning_rate
        check_learning_rate(lr, ensemble=ensemble, dtype=dtype)  # not 0 in the params' dtype
        lr = np.asarray(lr, float)
    check_state_fits(params, tx)  # before allocating: a copy of the params + the optimizer state
    # α on the host, cast as jnp.asarray(lr, dtype) casts it (NumPy); the program takes it there
    if not ensemble:
        return StateSeed(params, key, np.asarray(lr, dtype), name if named else tx, False)
    E = {int(np.shape(x)[0]) if np.ndim(x) else 0 for x in leaves}
    if len(E) != 1 or 0 in E:
        raise ValueError(f"ensemble params must share one leading (E,) axis, got sizes {E}.")
    (E,) = E
    if key.ndim == 0:
        key = jax.random.split(key, E)
    if key.shape != (E,) or lr.shape not in ((), (E,)):
        raise ValueError(f"ensemble of E = {E}: key must be one key or (E,) keys (got "
                         f"{key.shape}), learning_rate a scalar or (E,) (got {lr.shape}).")
    lr = np.array(np.broadcast_to(lr, (E,)), dtype)
    return StateSeed(params, key, lr, name if named else tx, True)


@functools.lru_cache(maxsize=64)
def _params_dtype(dtypes: tuple) -> np.dtype:
    return np.dtype(jnp.result_type(*dtypes))


def state_builder(optimizer, ensemble: bool):
    """``(params, key, learning_rate) -> TrainState`` for a name or an optax optimizer, traceable.

    Every leaf of the state is a new buffer (the params and key copied), so the
    epoch program may donate it; vmapped over the models of an ensemble.

    Args:
      optimizer: a name in ``OPTIMIZERS`` (its state holds α), or an optax transformation.
      ensemble: the params hold E stacked models.

    >>> state_builder("gd", False)([jnp.ones(2)], jax.random.key(0), jnp.float32(0.5)).step
    Array(0, dtype=int32)
    """
    if isinstance(optimizer, str):
        init = functools.partial(named_init, optimizer)
    else:
        init = lambda p, rate: optimizer.init(p)  # noqa: E731

    def one(params, key, lr):
        params = jax.tree.map(jnp.copy, params)
        zero = jnp.zeros((), jnp.int32)
        return TrainState(params, init(params, lr), zero, jnp.copy(key), zero)

    return jax.vmap(one) if ensemble else one


@functools.lru_cache(maxsize=64)
def _init_program(optimizer, ensemble: bool):
    """One compiled init per (optimizer, ensemble): a state whose buffers are all new.

    The epoch program donates the state, so no leaf may share a buffer with the
    caller's params or key; a jitted copy makes them in one dispatch.
    """
    return jax.jit(state_builder(optimizer, ensemble))


def init_ensemble(key, net: Network, n: int, init: str = "he", dtype=jnp.float32):
    """n independent ``init_params`` stacked on a leading axis: W: (n, n_l, n_{l-1}).

    Args:
      key: ``jax.random.key(seed)``, split into n.
      net: the ``Network``.
      n: the number of models E.
      init: the initialiser name, as in ``init_params``.
      dtype: the params' dtype.

    Returns:
      params with b: (n, n_l, 1); member i is ``init_params`` with the i-th of n keys.

    >>> params = init_ensemble(jax.random.key(0), Network((2, 3, 1), ("tanh", "sigmoid"), "bce"), 2)
    >>> [(p["W"].shape, p["b"].shape) for p in params]
    [((2, 3, 2), (2, 3, 1)), ((2, 1, 3), (2, 1, 1))]
    """
    check_positive_int(n, "n")
    check_init_arguments(net, init, dtype, "init_ensemble")
    return draw_params(jax.random.split(as_key(key), n), net, init, dtype)
