"""Training: ``fit``, ensembles, metrics and history (formulas §4-§5, driven over epochs).

The pieces, lowest first:

* ``_train_step``: one update on one batch, ``X: (n_x, b)``, ``Y: (n_L, b)``:
  gradients (hand-derived, formulas §4, or ``jax.grad``) then an optimizer update
  (formulas §5 gradient descent by default, or any optax transformation).
  It is small and pure on purpose: a sharding constraint or a dtype cast goes
  here.
* an epoch: the m columns shuffled with the state's key, cut into
  ``floor(m/B)`` full batches that ``jax.lax.scan`` runs, then ONE more step on
  the ``m mod B`` leftover columns. Every example counts exactly once per
  epoch, and the last, partial batch's gradient is that of its own real
  examples (the core's 1/m with m = its size) - no padding, no dropped data.
  One or several epochs are ONE compiled program (data on device), compiled
  once per (shapes, settings) and reused across epochs and calls.
* ``train_epochs(state, net, data, ...)``: runs epochs from a ``TrainState``
  (so a checkpoint can resume bit for bit); ``fit`` and ``fit_ensemble`` wrap it.

Non-finite cost, gradient or updated parameter stops training with a
``DivergenceError`` naming the epoch and the parameter; the state (and params)
of the last finite step ride on the exception.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnn.backward import backward
from jaxnn.forward import cost_from_cache, forward
from jaxnn.initializers import init_params
from jaxnn.losses import FUSED
from jaxnn.network import Network, check_params, check_X, check_Y
from jaxnn.parallel import _axis, n_devices
from jaxnn.precision import cast_floating
from jaxnn.updates import GRAD_FUNCTIONS

Array = jax.Array

# How many times the epoch program has been traced (i.e. compiled). Diagnostics only:
# tests read it to check that one compilation serves every epoch.
TRACE_COUNT = {"epochs": 0}


class TrainState(NamedTuple):
    """Everything a resumed run needs; leaves get a leading (E,) axis in an ensemble.

    params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``; opt_state: the optimizer's
    state (for the named optimizers it holds the learning rate); step: int32 (),
    updates applied; key: PRNG key, split once per epoch (shuffle, dropout);
    epoch: int32 (), epochs completed.
    """

    params: list
    opt_state: Any
    step: Array
    key: Array
    epoch: Array


class GDState(NamedTuple):
    learning_rate: Array  # α of formulas §5, float (); kept in the state so ensembles can vary it


def gradient_descent(learning_rate: float = 0.1) -> optax.GradientTransformation:
    """The formulas §5 update W := W - α dW, b := b - α db as an optax transformation.

    α lives in the state (``GDState``), so it can be a traced per-member value.
    ``optax.apply_updates`` then computes p + (-α g), bit for bit ``sgd_update``.
    params and grads: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``, same structure.

    >>> tx = gradient_descent(0.5)
    >>> params = [{"W": jnp.ones((3, 2)), "b": jnp.zeros((3, 1))}]
    >>> grads = [{"W": jnp.ones((3, 2)), "b": jnp.ones((3, 1))}]
    >>> updates, _ = tx.update(grads, tx.init(params))
    >>> new = optax.apply_updates(params, updates)
    >>> float(new[0]["W"][0, 0]), float(new[0]["b"][0, 0])
    (0.5, -0.5)
    """

    def init(params):
        return GDState(jnp.asarray(learning_rate, optax.tree.dtype(params, "highest")))

    def update(grads, state, params=None):
        del params
        return jax.tree.map(lambda g: -state.learning_rate.astype(g.dtype) * g, grads), state

    return optax.GradientTransformation(init, update)


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
def _named_tx(name: str) -> optax.GradientTransformation:
    # Its update reads α from the state, so one cached object serves every rate,
    # and the compiled epoch (keyed on it) is reused across fit calls.
    return _factory(name)(OPTIMIZERS[name][1])


def resolve_optimizer(optimizer) -> optax.GradientTransformation:
    """None / a name in ``OPTIMIZERS`` / an optax transformation -> the transformation."""
    if optimizer is None:
        return _named_tx("gd")
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer = {optimizer!r}; valid names: {', '.join(OPTIMIZERS)} "
                             "(or pass an optax.GradientTransformation).")
        return _named_tx(optimizer)
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer
    raise ValueError(f"optimizer must be None, a name ({', '.join(OPTIMIZERS)}) or an "
                     f"optax.GradientTransformation, got {type(optimizer).__name__}.")


# --- metrics ------------------------------------------------------------------------------


def is_classifier(net: Network) -> bool:
    """Softmax output, or sigmoid + BCE: scored by accuracy; anything else by R² and RMSE."""
    out = net.layer_activations[-1].name
    return out == "softmax" or (out == "sigmoid" and net.loss_fn.name == "bce")


def metric_names(net: Network) -> tuple[str, ...]:
    """The metrics ``evaluate`` reports for ``net`` besides the cost.

    ``("accuracy",)`` for a classifier (softmax output, or sigmoid + BCE, where
    Y: (n_L, m) holds one-hot or 0/1 columns); ``("r2", "rmse")`` otherwise.

    >>> metric_names(Network((2, 3, 1), ("tanh", "sigmoid"), "bce"))
    ('accuracy',)
    >>> metric_names(Network((2, 3, 1), ("tanh", "identity"), "mse"))
    ('r2', 'rmse')
    """
    return ("accuracy",) if is_classifier(net) else ("r2", "rmse")


def evaluate(params: list[dict], X: Array, Y: Array, net: Network) -> dict[str, Array]:
    """Cost and metrics without dropout or L2 (formulas §1, §3). X: (n_x, m); Y: (n_L, m).

    Returns ``{"cost", "accuracy"}`` for classifiers (argmax of softmax columns;
    sigmoid outputs thresholded at 0.5, per unit) or ``{"cost", "r2", "rmse"}``
    (R² = 1 - SS_res/SS_tot per output unit, averaged; RMSE in Y's units).
    params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``; every value is a scalar ().

    With all weights and biases 0, A^[L] = σ(0) = 1/2 and the BCE is log 2:

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jax.tree.map(jnp.zeros_like, init_params(jax.random.key(0), net))
    >>> out = evaluate(params, jnp.ones((2, 4)), jnp.ones((1, 4)), net)
    >>> sorted(out), round(float(out["cost"]), 4)
    (['accuracy', 'cost'], 0.6931)
    """
    AL, cache = forward(params, X, net)
    out = {"cost": cost_from_cache(params, cache, Y, net)}
    if is_classifier(net):
        if net.layer_activations[-1].name == "softmax":
            hit = jnp.argmax(AL, axis=0) == jnp.argmax(Y, axis=0)
        else:
            hit = (AL > 0.5) == (Y > 0.5)
        out["accuracy"] = jnp.mean(hit.astype(AL.dtype))
    else:
        sq = (Y - AL) ** 2
        ss_tot = jnp.sum((Y - jnp.mean(Y, axis=1, keepdims=True)) ** 2, axis=1)
        out["r2"] = jnp.mean(1 - jnp.sum(sq, axis=1) / ss_tot)
        out["rmse"] = jnp.sqrt(jnp.mean(sq))
    return out


# --- the compiled epochs ------------------------------------------------------------------


class _Spec(NamedTuple):
    """The static settings of the epoch program; one compilation per distinct value."""

    net: Network
    tx: optax.GradientTransformation
    grad: str
    batch_size: int  # B, at most m
    keep_prob: float
    l2_on: bool
    n_epochs: int  # epochs per call
    eval_train: bool
    ensemble: bool
    mesh: Any = None  # a 1-D jax.sharding.Mesh, or None for one device
    shard: str = "batch"  # with a mesh: split the "batch" columns or the "ensemble" axis
    compute_dtype: str | None = None  # e.g. "bfloat16": forward/backward dtype (params stay)


def _per_example_loss(cache, Y, net: Network) -> Array:
    """Each example's loss (m,), as ``cost_from_cache`` computes it (from Z^[L] when fused)."""
    fused = FUSED.get((net.layer_activations[-1].name, net.loss_fn.name))
    last = cache[-1]
    return fused.from_logits(last["Z"], Y) if fused else net.loss_fn.forward(last["A"], Y)


def _masked_value_and_grad(params, X, Y, w, net, grad, **kwargs):
    """``(J, grads)`` over the real columns of a padded batch: w (b,) is 1 real / 0 padding.

    The cost is that of the r = Σw real examples, (1/r) Σ_real L^(i) + λ/(2r) Σ||W||².
    Manual path: the padded columns get targets at which dZ^[L] is exactly 0
    (Y := A^[L], or Y := 0 for softmax + cross-entropy, whose dZ^[L] = A^[L] Σ_k y_k - y),
    so the delta recursion gives them zero dZ in every layer and they add
    nothing to any dW, db (formulas §4); the core's 1/b is then rescaled to 1/r.
    """
    l2 = kwargs.pop("l2")
    real, r = w[None, :] > 0, jnp.sum(w)

    def masked_cost(params, cache):
        J = jnp.sum(w * _per_example_loss(cache, Y, net)) / r
        if _l2_on(l2):
            J = J + (l2 / (2 * r)) * sum(jnp.sum(p["W"] ** 2) for p in params)
        return J

    if grad == "autodiff":
        return jax.value_and_grad(lambda p: masked_cost(p, forward(p, X, net, **kwargs)[1]))(params)
    AL, cache = forward(params, X, net, **kwargs)
    fill = jnp.zeros_like(Y) if net.loss_fn.name == "cross_entropy" else AL
    grads = backward(params, cache, jnp.where(real, Y, fill), net, l2=l2)
    scale = (X.shape[1] / r).astype(X.dtype)
    return masked_cost(params, cache), jax.tree.map(lambda g: g * scale, grads)


def _l2_on(l2) -> bool:
    return not (isinstance(l2, numbers.Real) and l2 == 0)


def _train_step(params, opt_state, X, Y, w, key, l2, spec: _Spec):
    """One update on one batch (formulas §4, then §5 or optax). X: (n_x, b); Y: (n_L, b).

    w: None, or (b,) weights 1 (real) / 0 (padding) for the epoch's last batch.
    Returns ``(params, opt_state, J, bad)``: J is the cost before the update;
    bad is -1, or the index of the first non-finite quantity in
    [J, gradient leaves..., updated param leaves...] (see ``_describe_bad``).
    params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``; key: a PRNG key (dropout
    only); spec: the epoch program's static settings (``_Spec``).

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> spec = _Spec(net, gradient_descent(0.5), "manual", batch_size=4, keep_prob=1.0,
    ...              l2_on=False, n_epochs=1, eval_train=False, ensemble=False)
    >>> params = init_params(jax.random.key(0), net)
    >>> X, Y = jnp.ones((2, 4)), jnp.ones((1, 4))
    >>> params, opt_state, J, bad = _train_step(params, spec.tx.init(params), X, Y, None, None, 0.0, spec)
    >>> J.shape, int(bad)
    ((), -1)
    """
    p = params
    if spec.compute_dtype is not None:  # mixed precision: compute in bf16, keep params in f32
        dt = jnp.dtype(spec.compute_dtype)
        p, X, Y, w, l2 = cast_floating((params, X, Y, w, l2), dt)
    kwargs = {"l2": l2 if spec.l2_on else 0.0}
    if spec.keep_prob < 1.0:
        kwargs.update(key=key, keep_prob=spec.keep_prob)
    if w is None:
        J, grads = GRAD_FUNCTIONS[spec.grad](p, X, Y, spec.net, **kwargs)
    else:
        J, grads = _masked_value_and_grad(p, X, Y, w, spec.net, spec.grad, **kwargs)
    if spec.compute_dtype is not None:
        J = J.astype(jax.tree.leaves(params)[0].dtype)
        grads = jax.tree.map(lambda g, q: g.astype(q.dtype), grads, params)
    updates, opt_state = spec.tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    # x * 0 is 0 for finite x and NaN otherwise: one scalar per leaf, cheap to compile.
    probe = [J * 0] + [jnp.sum(t * 0) for t in (*jax.tree.leaves(grads), *jax.tree.leaves(params))]
    flags = ~jnp.isfinite(jnp.stack(probe))
    bad = jnp.where(jnp.any(flags), jnp.argmax(flags), -1).astype(jnp.int32)
    return params, opt_state, J, bad


def _one_epoch(state: TrainState, bad, X, Y, l2, val, spec: _Spec):
    """One pass over the m columns of X: (n_x, m). bad >= 0 freezes the state.

    m = n_full B + rest. With rest > 0 the scan runs n_full + 1 batches of B;
    the last holds the rest real columns padded with B - rest copies of others,
    which weigh 0 (``_masked_value_and_grad``): every example counts once.
    """
    m, B = X.shape[1], spec.batch_size
    n_full, rest = divmod(m, B)
    key, k_perm, k_drop = jax.random.split(state.key, 3)

    def body(carry, xs):
        params, opt_state, step, bad, total = carry
        i, cols, w = xs
        Xb, Yb = (X, Y) if cols is None else (jnp.take(X, cols, axis=1), jnp.take(Y, cols, axis=1))
        if spec.mesh is not None and spec.shard == "batch":
            # Data parallel: each device takes B/D of the batch's columns; the params are
            # replicated, so XLA all-reduces the partial sums of dW, db (formulas §4c).
            Xb, Yb = _split_columns((Xb, Yb), spec.mesh)
            w = None if w is None else _split_columns(w, spec.mesh, vector=True)
        new_p, new_o, J, code = _train_step(params, opt_state, Xb, Yb, w,
                                           jax.random.fold_in(k_drop, i), l2, spec)
        ok = (bad < 0) & (code < 0)
        # Freeze at the last finite step: the failing update is never applied.
        keep = functools.partial(jax.tree.map, lambda n, o: jnp.where(ok, n, o))
        real = Xb.shape[1] if w is None else jnp.sum(w)
        return (keep(new_p, params), keep(new_o, opt_state), step + ok.astype(step.dtype),
                jnp.where(bad < 0, code, bad), total + J * real), None

    carry = (state.params, state.opt_state, state.step, bad, jnp.zeros((), X.dtype))
    if B == m:  # full batch, the GD: the order is irrelevant, skip the shuffle
        carry, _ = body(carry, (0, None, None))
    else:
        perm = jax.random.permutation(k_perm, m)
        n = n_full + (rest > 0)
        cols = jnp.resize(perm, n * B).reshape(n, B)  # pads by repeating (weight 0)
        w = None if rest == 0 else (jnp.arange(n * B) < m).astype(X.dtype).reshape(n, B)
        carry, _ = jax.lax.scan(body, carry, (jnp.arange(n), cols, w))
    params, opt_state, step, bad, total = carry
    fine = bad < 0
    # The key always advances: a frozen (diverged) state is for inspection, not for resuming.
    state = TrainState(params, opt_state, step, key, state.epoch + fine.astype(state.epoch.dtype))
    out = {"cost": jnp.where(fine, total / m, jnp.nan)}
    if spec.eval_train:
        out.update({f"train_{k}": v for k, v in evaluate(params, X, Y, spec.net).items()})
    if val is not None:
        out.update({f"val_{k}": v for k, v in evaluate(params, *val, spec.net).items()})
    return state, bad, out


def _epochs_one(state, bad, X, Y, l2, val, spec):
    def body(carry, _):
        state, bad, out = _one_epoch(*carry, X, Y, l2, val, spec)
        return (state, bad), out

    (state, bad), outs = jax.lax.scan(body, (state, bad), None, length=spec.n_epochs)
    return state, bad, outs


@functools.partial(jax.jit, static_argnames=("spec",), donate_argnums=(0,))
def _run_epochs(state, bad, X, Y, l2, val, spec: _Spec):
    TRACE_COUNT["epochs"] += 1  # runs only while tracing
    if spec.ensemble:  # members on a leading axis; the data are shared
        return jax.vmap(_epochs_one, in_axes=(0, 0, None, None, 0, None, None))(
            state, bad, X, Y, l2, val, spec)
    return _epochs_one(state, bad, X, Y, l2, val, spec)


def _split_columns(tree, mesh, vector=False):
    spec = jax.sharding.PartitionSpec(_axis(mesh)) if vector else \
        jax.sharding.PartitionSpec(None, _axis(mesh))
    sharding = jax.sharding.NamedSharding(mesh, spec)
    return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, sharding), tree)


# --- errors -----------------------------------------------------------------------------


class DivergenceError(FloatingPointError):
    """The cost, a gradient or an updated parameter became NaN/inf.

    Attributes: ``epoch`` (1-based, the failing one), ``step`` (the failing
    update, 1-based), ``where`` (e.g. "the gradient of layer 2 W"), ``state``
    (the ``TrainState`` after the last finite update), ``params`` (its
    params) and ``history`` (the epochs completed before).
    """

    def __init__(self, message, *, epoch, step, where, state, history):
        super().__init__(message)
        self.epoch, self.step, self.where = epoch, step, where
        self.state, self.params, self.history = state, state.params, history


def _leaf_names(params) -> list[str]:
    names = []
    for path, _ in jax.tree_util.tree_leaves_with_path(params):
        if len(path) == 2 and hasattr(path[0], "idx") and hasattr(path[1], "key"):
            names.append(f"layer {path[0].idx + 1} {path[1].key}")
        else:
            names.append(jax.tree_util.keystr(path))
    return names


def _describe_bad(code: int, params) -> str:
    """Decode ``_train_step``'s bad index: 0 is J, then gradient leaves, then updated params."""
    names = _leaf_names(params)
    if code == 0:
        return "the cost J"
    if code <= len(names):
        return f"the gradient of {names[code - 1]}"
    return f"{names[code - 1 - len(names)]} after the update"


# --- running epochs from a state ------------------------------------------------------------


def _xy(data, dtype, net, what="data"):
    """(X, Y) or a datasets.Dataset (its training split) -> device arrays, shapes checked."""
    if hasattr(data, "X_train") and hasattr(data, "Y_train"):
        data = (data.X_train, data.Y_train)
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"{what} must be a pair (X, Y) with X: (n_x, m) and Y: (n_L, m), or a "
                         f"jaxnn.datasets.Dataset; got {type(data).__name__}.")
    X, Y = data
    check_X(X, net)
    check_Y(Y, X, net)
    return jnp.asarray(X, dtype), jnp.asarray(Y, dtype)


def _as_key(key):
    """A typed PRNG key (legacy uint32 (2,) keys are wrapped)."""
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if key.dtype == jnp.uint32 and key.shape[-1:] == (2,):
        return jax.random.wrap_key_data(key)
    raise ValueError(f"key must be a jax.random.key(seed), got dtype {key.dtype} shape {key.shape}.")


def _check_positive(value, name, *, integer=False):
    ok = isinstance(value, numbers.Integral) if integer else isinstance(value, numbers.Real)
    if isinstance(value, bool) or not ok or not math.isfinite(value) or value <= 0:
        kind = "an integer" if integer else "a finite number"
        raise ValueError(f"{name} = {value!r} must be {kind} > 0.")


def init_state(params, key, *, optimizer=None, learning_rate=None, ensemble=False) -> TrainState:
    """A fresh ``TrainState`` (step 0, epoch 0). The params are copied, never donated.

    optimizer: None or "gd" (formulas §5), a name in ``OPTIMIZERS`` (learning_rate
    defaults to its rate), or an optax transformation (its own rate; then
    learning_rate must be None). With ``ensemble=True`` every leaf of params
    has a leading (E,) axis, key is (E,) keys or one key (split), and
    learning_rate may be an (E,) array. params: ``[{"W": (n_l, n_{l-1}), "b":
    (n_l, 1)}]`` (each with a leading (E,) in an ensemble).

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> state = init_state(init_params(jax.random.key(0), net), jax.random.key(1), learning_rate=0.5)
    >>> int(state.step), int(state.epoch), state.opt_state
    (0, 0, GDState(learning_rate=Array(0.5, dtype=float32)))
    """
    tx = resolve_optimizer(optimizer)
    named = optimizer is None or isinstance(optimizer, str)
    if not named and learning_rate is not None:
        raise ValueError("learning_rate is set inside an optax optimizer: pass learning_rate=None "
                         "(or a name such as optimizer='adam' with learning_rate=...).")
    key = _as_key(key)
    dtype = optax.tree.dtype(params, "highest")  # α in the params' precision
    if named:
        name = optimizer or "gd"
        lr = np.asarray(OPTIMIZERS[name][1] if learning_rate is None else learning_rate, float)
        if lr.ndim > int(ensemble) or not np.all(np.isfinite(lr) & (lr > 0)):
            raise ValueError(f"learning_rate = {learning_rate!r} must be a finite number > 0"
                             + (" or an (E,) array of them." if ensemble else "."))
        init = lambda p, rate: _factory(name)(rate).init(p)  # noqa: E731
    else:
        lr, init = np.zeros(()), lambda p, rate: tx.init(p)  # noqa: E731
    if not ensemble:
        # Eager on purpose: a jit of this per-call closure would recompile on every fit.
        state = TrainState(params, init(params, jnp.asarray(lr, dtype)), 0, key, 0)
        return _own_buffers(state)
    E = {int(np.shape(x)[0]) for x in jax.tree.leaves(params)}
    if len(E) != 1:
        raise ValueError(f"ensemble params must share one leading (E,) axis, got sizes {E}.")
    (E,) = E
    keys = jax.random.split(key, E) if key.ndim == 0 else key
    if keys.shape != (E,) or lr.shape not in ((), (E,)):
        raise ValueError(f"ensemble of E = {E}: key must be one key or (E,) keys (got "
                         f"{keys.shape}), learning_rate a scalar or (E,) (got {lr.shape}).")
    opt_state = jax.vmap(init)(params, jnp.broadcast_to(jnp.asarray(lr, dtype), (E,)))
    return _own_buffers(TrainState(params, opt_state, np.zeros(E, np.int32), keys,
                                   np.zeros(E, np.int32)))


def _own_buffers(state: TrainState) -> TrainState:
    # The state is donated to the epoch program, so each leaf needs a buffer of its own
    # (never the caller's params or key, never one shared by two leaves).
    return jax.tree.map(lambda x: jnp.array(x, dtype=jnp.int32 if isinstance(x, int) else None),
                        state)


def _show_progress(progress) -> bool:
    if progress is not None:
        return bool(progress)
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell" or sys.stderr.isatty()


def train_epochs(state: TrainState, net: Network, data, *, epochs: int, optimizer=None,
                 batch_size: int | None = None, grad: str = "manual", l2=0.0,
                 keep_prob: float = 1.0, validation=None, progress: bool | None = None,
                 eval_train: bool = True, epochs_per_call: int | None = None,
                 callback: Callable[[TrainState, dict], None] | None = None,
                 mesh=None, shard: str | None = None, compute_dtype=None):
    """Run ``epochs`` more epochs (formulas §4-§5 on each batch) from ``state``; returns ``(state, history)``.

    The same arguments as ``fit`` (``optimizer`` must be the one the state was
    made with). Restarting from a saved state reproduces uninterrupted training
    bit for bit: the data order and dropout masks come from ``state.key``.
    ``callback(state, history)`` runs after each compiled call (e.g. to save a
    checkpoint); it must not keep ``state``, whose buffers the next call reuses.

    Compilation: one program runs ``epochs_per_call`` epochs (default: all of
    them in one call, or 1 per call with a progress bar or callback). The
    number of epochs in a call is part of the program, so ``fit(epochs=20)``
    then ``fit(epochs=40)`` compile twice; pass ``epochs_per_call=1`` (or any
    fixed divisor) to reuse one program for every epoch count, at the price of
    one dispatch per call. A new learning rate (named optimizers), seed, l2 > 0
    or data of the same shape never recompiles.

    Data parallel (``mesh``, a 1-D ``jax.sharding.Mesh`` from ``make_mesh``):
    ``shard="batch"`` (the default for one model) splits each batch's B
    columns over the D devices and replicates the params and optimizer state;
    ``shard="ensemble"`` (the default for an ensemble) gives each device E/D
    whole models. The data set itself is replicated on every device (a batch is
    gathered from it by the shuffle). B must be divisible by D; full-batch
    training pads m up to a multiple of D with columns of weight 0, which do not
    change the gradient.

    Mixed precision (``compute_dtype``, e.g. ``jnp.bfloat16``): the forward and
    backward passes run in that dtype; params, optimizer state, the update and
    the evaluation stay in the params' dtype.

    data: (X: (n_x, m), Y: (n_L, m)) or a ``datasets.Dataset``; the history's
    arrays are (epochs,), or (E, epochs) for an ensemble.

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> state = init_state(init_params(jax.random.key(0), net), jax.random.key(1))
    >>> data = (jnp.ones((2, 4)), jnp.ones((1, 4)))
    >>> state, history = train_epochs(state, net, data, epochs=3, progress=False)
    >>> int(state.epoch), history["epoch"].tolist()
    (3, [1, 2, 3])
    """
    check_params(jax.tree.map(lambda x: x[0], state.params) if jnp.ndim(state.step)
                 else state.params, net)
    ensemble = jnp.ndim(state.step) == 1
    _check_positive(epochs, "epochs", integer=True)
    if grad not in GRAD_FUNCTIONS:
        raise ValueError(f"grad = {grad!r}; valid: {', '.join(GRAD_FUNCTIONS)}.")
    if not (isinstance(keep_prob, numbers.Real) and 0 < keep_prob <= 1):
        raise ValueError(f"keep_prob = {keep_prob!r} must be in (0, 1] (1 turns dropout off).")
    l2 = np.asarray(l2, float)
    if l2.ndim > int(ensemble) or not np.all(np.isfinite(l2) & (l2 >= 0)):
        raise ValueError(f"l2 = {l2.tolist()!r} must be finite and >= 0 (scalar, or (E,) for "
                         "an ensemble).")
    tx = resolve_optimizer(optimizer)
    expected = jax.eval_shape(lambda p: jax.vmap(tx.init)(p) if ensemble else tx.init(p),
                              state.params)
    if jax.tree.structure(expected) != jax.tree.structure(state.opt_state):
        raise ValueError("state.opt_state does not match the optimizer: build the state with "
                         "init_state(..., optimizer=<the same optimizer>).")
    dtype = jax.tree.leaves(state.params)[0].dtype
    X, Y = _xy(data, dtype, net)
    val = None if validation is None else _xy(
        (validation.X_test, validation.Y_test) if hasattr(validation, "X_test") else validation,
        dtype, net, "validation")
    m = X.shape[1]
    if batch_size is not None:
        _check_positive(batch_size, "batch_size", integer=True)
    show = _show_progress(progress)
    per_call = epochs_per_call or (1 if show or callback else epochs)
    _check_positive(per_call, "epochs_per_call", integer=True)
    E = np.shape(state.step)
    l2 = jnp.asarray(np.broadcast_to(l2, E), dtype)
    bad = jnp.full(E, -1, jnp.int32)
    B = min(batch_size or m, m)
    if compute_dtype is not None:
        compute_dtype = jnp.dtype(compute_dtype)
        if not jnp.issubdtype(compute_dtype, jnp.floating):
            raise ValueError(f"compute_dtype = {compute_dtype} must be a floating dtype such as "
                             "jnp.bfloat16 (or None: compute in the params' dtype).")
        compute_dtype = None if compute_dtype == dtype else compute_dtype.name
    shard = shard or ("ensemble" if ensemble else "batch")
    if mesh is not None:
        B, (state, bad, X, Y, val) = _place_on_mesh(mesh, shard, B, m, batch_size, ensemble,
                                                    (state, bad, X, Y, val))
    spec = _Spec(net, tx, grad, B, float(keep_prob), bool(np.any(l2 > 0)), 0, eval_train,
                 ensemble, mesh, shard, compute_dtype)
    history: dict[str, np.ndarray] = {}
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc="epochs", unit="epoch", leave=True)
    first = int(np.max(jax.device_get(state.epoch))) + 1  # history numbers epochs 1, 2, ...
    done = 0
    try:
        while done < epochs:
            n = min(per_call, epochs - done)
            state, bad, outs = _run_epochs(state, bad, X, Y, l2, val, spec._replace(n_epochs=n))
            outs, bad_host = jax.device_get((outs, bad))
            outs = {"epoch": first + done + np.arange(n)} | outs
            for k, v in outs.items():  # (n,) or (E, n): epochs on the last axis
                history[k] = v if k not in history else np.concatenate([history[k], v], -1)
            done += n
            if np.any(bad_host >= 0) and not ensemble:
                _raise_diverged(int(bad_host), state, history, net)
            if bar is not None:
                bar.update(n)
                bar.set_postfix(_postfix(history), refresh=False)
            if callback is not None:
                callback(state, history)
    finally:
        if bar is not None:
            bar.close()
    if ensemble:
        history["diverged"] = np.asarray(bad_host) >= 0
    return state, history


def _place_on_mesh(mesh, shard, B, m, batch_size, ensemble, arrays):
    """Check the mesh settings; put the state and data where ``shard`` says. Returns (B, arrays)."""
    D = n_devices(mesh)  # also checks that mesh is a 1-D Mesh
    state, bad, X, Y, val = arrays
    rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    if shard == "ensemble":
        if not ensemble:
            raise ValueError("shard='ensemble' splits the models of an ensemble over the devices: "
                             "use fit_ensemble, or shard='batch' for one model.")
        E = int(np.shape(state.step)[0])
        if E % D:
            raise ValueError(f"shard='ensemble': E = {E} models cannot be split evenly over the "
                             f"{D} devices of the mesh; use a multiple of {D} models, or "
                             "shard='batch'.")
        split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(_axis(mesh)))
        state, bad = jax.device_put((state, bad), split)
    elif shard == "batch":
        if B % D:
            if batch_size is not None and batch_size < m:
                lo, hi = B // D * D, -(-B // D) * D
                raise ValueError(
                    f"batch_size = {B} is not divisible by the {D} devices of the mesh: use a "
                    f"multiple of {D} (e.g. {lo or hi} or {hi}), so each device gets the same "
                    "number of columns. (Full-batch training pads and masks by itself.)")
            B = -(-m // D) * D  # full batch: pad with weight-0 columns (see _one_epoch)
        state, bad = jax.device_put((state, bad), rep)
    else:
        raise ValueError(f"shard = {shard!r}; valid: 'batch' (split the columns of each batch) "
                         "or 'ensemble' (split the models of an ensemble).")
    X, Y, val = jax.device_put((X, Y, val), rep)
    return B, (state, bad, X, Y, val)


def _postfix(history) -> dict[str, str]:
    shown = {}
    for k in ("cost", "train_accuracy", "val_cost", "val_accuracy", "val_r2"):
        if k in history:
            v = history[k][..., -1]
            shown[k] = f"{float(np.mean(v)):.4g}"
    return shown


def _raise_diverged(code, state, history, net):
    last = int(jax.device_get(state.epoch))  # epochs completed before the failure
    keep = {k: v[..., history["epoch"] <= last] for k, v in history.items()}
    where = _describe_bad(code, state.params)
    step = int(jax.device_get(state.step)) + 1
    raise DivergenceError(
        f"training diverged in epoch {last + 1} (update {step}): {where} is NaN or inf. "
        "The last finite params are on this exception (.params, .state); try a smaller "
        "learning rate, gradient clipping, or standardised inputs.",
        epoch=last + 1, step=step, where=where, state=state, history=keep)


# --- the front doors ----------------------------------------------------------------------


def fit(params, net: Network, data, *, epochs: int, key, optimizer=None, learning_rate=None,
        batch_size: int | None = None, grad: str = "manual", l2=0.0, keep_prob: float = 1.0,
        validation=None, progress: bool | None = None, mesh=None, compute_dtype=None,
        **kwargs):
    """Train ``params`` on data = (X: (n_x, m), Y: (n_L, m)) or a ``datasets.Dataset``.

    Args:
      optimizer: None / "gd": formulas §5 gradient descent with
        ``learning_rate`` (default 0.1); a name in ``OPTIMIZERS`` ("adam", ...);
        or any ``optax.GradientTransformation`` (hand-derived grads go straight
        into its ``update``).
      batch_size: None for full batch (the GD), else shuffled batches of
        B columns drawn with ``key``; the last partial batch is one more step
        on its own m mod B examples, so every example counts once per epoch.
      grad: "manual" (the hand-derived backward pass, formulas §4) or "autodiff".
      l2: weight decay λ (λ/(2m) Σ ||W||² in J); keep_prob: inverted dropout
        on hidden layers (off at evaluation).
      validation: (X_val, Y_val) or a Dataset (its test split), scored each epoch.
      progress: tqdm bar over epochs; default on only in a terminal or notebook.
      mesh: a 1-D device mesh (``jaxnn.make_mesh()``): data-parallel training,
        each batch's columns split over the devices, params replicated; B must
        be a multiple of the device count (see ``train_epochs``).
      compute_dtype: e.g. ``jnp.bfloat16``: forward and backward in bf16,
        params and optimizer state in float32 (the usual TPU recipe).
      **kwargs: ``eval_train``, ``epochs_per_call``, ``callback``, ``shard`` of
        ``train_epochs``.

    Returns:
      ``(params, history)``; history maps "epoch", "cost" (mean minibatch cost
      during the epoch, the objective incl. L2), "train_cost" and "train_<metric>"
      (full training set after the epoch, no dropout), "val_..." to (epochs,) arrays.

    Raises:
      DivergenceError: a NaN/inf cost, gradient or parameter (see its ``.params``).

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = init_params(jax.random.key(0), net)
    >>> data = (jnp.ones((2, 4)), jnp.ones((1, 4)))
    >>> params, history = fit(params, net, data, epochs=3, key=jax.random.key(1), progress=False)
    >>> sorted(history), bool(history["cost"][-1] < history["cost"][0])
    (['cost', 'epoch', 'train_accuracy', 'train_cost'], True)
    """
    state = init_state(params, key, optimizer=optimizer, learning_rate=learning_rate)
    state, history = train_epochs(state, net, data, epochs=epochs, optimizer=optimizer,
                                  batch_size=batch_size, grad=grad, l2=l2, keep_prob=keep_prob,
                                  validation=validation, progress=progress, mesh=mesh,
                                  compute_dtype=compute_dtype, **kwargs)
    return state.params, history


def init_ensemble(key, net: Network, n: int, init: str = "he", dtype=jnp.float32):
    """n independent ``init_params`` stacked on a leading axis: W: (n, n_l, n_{l-1}).

    b: (n, n_l, 1); member i is ``init_params`` with the i-th of n keys split from key.

    >>> params = init_ensemble(jax.random.key(0), Network((2, 3, 1), ("tanh", "sigmoid"), "bce"), 2)
    >>> [(p["W"].shape, p["b"].shape) for p in params]
    [((2, 3, 2), (2, 3, 1)), ((2, 1, 3), (2, 1, 1))]
    """
    _check_positive(n, "n", integer=True)
    return jax.vmap(lambda k: init_params(k, net, init, dtype))(jax.random.split(_as_key(key), n))


def fit_ensemble(params, net: Network, data, *, epochs: int, key, optimizer=None,
                 learning_rate=None, l2=0.0, **kwargs):
    """``fit`` for E models at once (formulas §4-§5 per member), vmapped in ONE compiled program.

    params: leaves with a leading (E,) axis (``init_ensemble``); key: one key
    (split into E: each member its own data order and dropout) or (E,) keys;
    learning_rate (named optimizers) and l2: scalars or (E,) arrays. A member
    whose cost goes NaN/inf is frozen at its last finite params instead of
    stopping the others: ``history["diverged"]`` (E,) says which. History
    arrays are (E, epochs). With ``mesh=``, each device trains E/D whole
    models (``shard="ensemble"``, E a multiple of D), or ``shard="batch"``
    splits every model's batch columns instead. data: (X: (n_x, m), Y: (n_L, m)),
    shared by all members; W: (E, n_l, n_{l-1}), b: (E, n_l, 1).

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = init_ensemble(jax.random.key(0), net, 2)
    >>> data = (jnp.ones((2, 4)), jnp.ones((1, 4)))
    >>> params, history = fit_ensemble(params, net, data, epochs=3, key=jax.random.key(1),
    ...                                learning_rate=np.array([0.1, 0.5]), progress=False)
    >>> history["cost"].shape, history["diverged"].tolist()
    ((2, 3), [False, False])
    """
    state = init_state(params, key, optimizer=optimizer, learning_rate=learning_rate,
                       ensemble=True)
    state, history = train_epochs(state, net, data, epochs=epochs, optimizer=optimizer, l2=l2,
                                  **kwargs)
    return state.params, history


def save_history(history: dict, path) -> None:
    """Write history as strict JSON (lists; NaN/inf become null).

    history: ``fit``'s, name -> (epochs,) array ((E, epochs) for an ensemble).

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     save_history({"epoch": np.arange(1, 3), "cost": np.array([0.5, np.inf])}, f"{d}/h.json")
    ...     json.loads(pathlib.Path(d, "h.json").read_text())
    {'epoch': [1, 2], 'cost': [0.5, None]}
    """
    def clean(v):
        a = np.asarray(v)
        if a.dtype.kind == "f":
            return np.where(np.isfinite(a), a, None).tolist()
        return a.tolist()

    with open(path, "w") as f:
        json.dump({k: clean(v) for k, v in history.items()}, f, indent=1)


def load_history(path) -> dict[str, np.ndarray]:
    """Read ``save_history``'s JSON back into arrays (null -> NaN).

    Each array is (epochs,), or (E, epochs) for an ensemble, as it was saved.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     save_history({"epoch": np.arange(1, 3), "cost": np.array([0.5, np.nan])}, f"{d}/h.json")
    ...     load_history(f"{d}/h.json")
    {'epoch': array([1, 2]), 'cost': array([0.5, nan])}
    """
    with open(path) as f:
        raw = json.load(f)
    return {k: np.array(v, dtype=float if k not in ("epoch", "diverged") else None)
            for k, v in raw.items()}
