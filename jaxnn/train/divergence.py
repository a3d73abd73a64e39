"""Divergence: the error ``fit`` raises, and the replay that names the failing update.

The epoch program checks finiteness once per epoch (``jaxnn.train.epoch``). When an
epoch goes NaN/inf it hands back that epoch's start state, and ``replay_epoch``
runs the same batches again one step at a time, probing every quantity, to
find the first update whose cost, gradient or new parameter is not finite.
Only a failing run pays for the replay.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.train.step import StepSettings, train_step


class DivergenceError(FloatingPointError):
    """The cost, a gradient or an updated parameter became NaN/inf.

    Attributes: ``epoch`` (1-based, the failing one), ``step`` (the failing
    update, 1-based), ``where`` (e.g. "the gradient of layer 2 W"), ``state``
    (the ``TrainState`` after the last finite update), ``params`` (its
    params) and ``history`` (the epochs completed before).

    Args:
      message: the text.
      epoch: the failing epoch, 1-based.
      step: the failing update, 1-based.
      where: which quantity went non-finite first.
      state: the ``TrainState`` after the last finite update.
      history: the history of the epochs completed before.
    """

    def __init__(self, message, *, epoch, step, where, state, history):
        super().__init__(message)
        self.epoch, self.step, self.where = epoch, step, where
        self.state, self.params, self.history = state, state.params, history


def leaf_names(params) -> list[str]:
    """Readable names of the params' leaves: "layer 2 W" for jaxnn params, else the key path.

    Args:
      params: a params pytree.

    >>> leaf_names([{"W": 1, "b": 2}])
    ['layer 1 W', 'layer 1 b']
    """
    names = []
    for path, _ in jax.tree_util.tree_leaves_with_path(params):
        if len(path) == 2 and hasattr(path[0], "idx") and hasattr(path[1], "key"):
            names.append(f"layer {path[0].idx + 1} {path[1].key}")
        else:
            names.append(jax.tree_util.keystr(path))
    return names


@functools.partial(jax.jit, static_argnames=("s",))
def _probed_step(params, opt_state, Xb, Yb, key, l2, s: StepSettings):
    out = train_step(params, opt_state, Xb, Yb, s, l2=l2, key=key)
    probe = [out.J * 0] + [jnp.sum(t * 0) for t in (*jax.tree.leaves(out.grads),
                                                     *jax.tree.leaves(out.params))]
    flags = ~jnp.isfinite(jnp.stack(probe))
    return out.params, out.opt_state, jnp.where(jnp.any(flags), jnp.argmax(flags), -1)


def replay_epoch(state, X, Y, order, batch_size: int, l2, s: StepSettings):
    """Re-run one epoch step by step from its start state; find the first non-finite update.

    Args:
      state: the ``TrainState`` at the start of the epoch (single model).
      X: (n_x, m).
      Y: (n_L, m).
      order: (m,) column order of the epoch, or None for full batch.
      batch_size: B.
      l2: λ.
      s: the ``StepSettings`` the epoch ran with.

    Returns:
      ``(state, i, where)``: the state after the last finite update, the
      0-based index of the failing update in the epoch (None if the replay
      stayed finite: rounding differed from the compiled epoch) and what went bad.

    >>> from jaxnn.train.step import settings
    >>> net = jaxnn.Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> state = jaxnn.init_state(jaxnn.init_params(jax.random.key(0), net), jax.random.key(1))
    >>> replay_epoch(state, jnp.ones((2, 4)), jnp.ones((1, 4)), None, 4, 0.0, settings(net, None))[1:]
    (None, None)
    """
    m = X.shape[1]
    cols = np.arange(m) if order is None else np.asarray(order)
    batches = [cols] if order is None else [cols[i:i + batch_size] for i in range(0, m, batch_size)]
    k_drop = jax.random.fold_in(state.key, state.epoch)
    params, opt_state = state.params, state.opt_state
    names = leaf_names(params)
    for i, rows in enumerate(batches):
        new_p, new_o, code = _probed_step(params, opt_state, X[:, rows], Y[:, rows],
                                          jax.random.fold_in(k_drop, i), l2, s)
        code = int(code)
        if code >= 0:
            where = ("the cost J" if code == 0 else f"the gradient of {names[code - 1]}"
                     if code <= len(names) else f"{names[code - 1 - len(names)]} after the update")
            return state._replace(params=params, opt_state=opt_state, step=state.step + i), i, where
        params, opt_state = new_p, new_o
    return state, None, None
