"""Training entry points: ``fit``, ``fit_ensemble`` and ``train_epochs`` (formulas §4-§5 over epochs).

They check every argument and the data first (``jaxnn.core.validate``), place
state and data (one device, or a mesh: ``jaxnn.devices.place``), then run the
compiled epochs of ``jaxnn.train.epoch``: one or several epochs per compiled call,
one host sync per call. The pieces live in their own modules of ``jaxnn.train``:
the state (``state``), optimizers (``optimizers``), the step (``step``), metrics
(``metrics``), divergence (``divergence``) and history files (``history``).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.core.network import Network, check_params, check_X, check_Y
from jaxnn.core.validate import check_l2, check_positive_int
from jaxnn.core.validate_data import as_data
from jaxnn.devices.mesh import n_devices
from jaxnn.devices.place import Placement, place_constant, place_replicated, place_training
from jaxnn.devices.processes import check_same_across_processes, peer_loss_as_error, to_local
from jaxnn.train.divergence import DivergenceError, replay_epoch
from jaxnn.train.epoch import EpochSpec, epoch_order, epoch_orders, run_epochs
from jaxnn.train.free_memory import one_reading
from jaxnn.train.memory import check_step_fits, out_of_memory_as_error
from jaxnn.train.state import StateSeed, TrainState, seed_state
from jaxnn.train.step import settings

Array = jax.Array

_key_data = jax.jit(jax.random.key_data)  # a compiled call: cheaper than the eager op
EVAL_TRAIN = {True: "running", False: "off", "running": "running", "full": "full", "off": "off"}


def _xy(data, dtype, net, what="data"):
    """(X, Y) or a datasets.Dataset (its training split) -> checked device arrays."""
    if hasattr(data, "X_train") and hasattr(data, "Y_train"):
        data = (data.X_train, data.Y_train)
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"{what} must be a pair (X, Y) with X: (n_x, m) and Y: (n_L, m), or a "
                         f"jaxnn.datasets.Dataset; got {type(data).__name__}.")
    X, Y = (as_data(f"{what}: {n}", a, dtype) for n, a in zip("XY", data))
    check_X(X, net)
    check_Y(Y, X, net)
    return X, Y


def _show_progress(progress) -> bool:
    if progress is not None:
        return bool(progress)
    if jax.process_index() != 0:
        return False
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell" or sys.stderr.isatty()


def _check_state(state, net: Network, tx, ensemble: bool) -> None:
    if isinstance(state, StateSeed):  # fit's: its opt_state will be built by this optimizer
        check_params(jax.tree.map(lambda x: x[0], state.params) if ensemble else state.params, net)
        return
    if not isinstance(state, TrainState):
        raise ValueError(f"state must be a jaxnn.TrainState (from init_state), got "
                         f"{type(state).__name__}.")
    deleted = [x for x in jax.tree.leaves(state) if isinstance(x, jax.Array) and x.is_deleted()]
    if deleted:
        raise ValueError("this TrainState was consumed by an earlier train_epochs call (its buffers "
                         "were donated to the compiled epochs): use the state that call returned.")
    check_params(jax.tree.map(lambda x: x[0], state.params) if ensemble else state.params, net)
    expected = _expected_opt_state(tx, jax.tree.structure(state.params))
    if expected != jax.tree.structure(state.opt_state):
        raise ValueError("state.opt_state does not match the optimizer: build the state with "
                         "init_state(..., optimizer=<the same optimizer>).")


@functools.lru_cache(maxsize=64)
def _expected_opt_state(tx, params_structure):
    """The optimizer state's tree structure, traced once per (optimizer, params structure).

    The structure does not depend on leaf shapes, nor on the (E,) axis of an ensemble.
    """
    zeros = jax.tree.unflatten(params_structure,
                               [jax.ShapeDtypeStruct((1, 1), jnp.float32)] * params_structure.num_leaves)
    return jax.tree.structure(jax.eval_shape(tx.init, zeros))


def train_epochs(state: TrainState, net: Network, data, *, epochs: int, optimizer=None,
                 batch_size: int | None = None, grad: str = "manual", l2=0.0,
                 keep_prob: float = 1.0, validation=None, progress: bool | None = None,
                 eval_train: bool | str = True, epochs_per_call: int | None = None,
                 callback: Callable[[TrainState, dict], None] | None = None,
                 mesh=None, shard: str | None = None, compute_dtype=None,
                 local_data: bool = False):
    """Run ``epochs`` more epochs (formulas §4-§5 on each batch) from ``state``.

    Restarting from a saved state reproduces uninterrupted training bit for
    bit: epoch e's data order and dropout masks come from ``(state.key, e)``.
    The state passed in is donated to the compiled program: use the returned one.

    Compilation: one program runs ``epochs_per_call`` epochs (default: all of
    them in one call, or 1 per call with a progress bar or callback). The
    number of epochs in a call is part of the program, so ``epochs=20`` then
    ``epochs=40`` compile twice; ``epochs_per_call=1`` reuses one program for
    every epoch count. A new learning rate (named optimizers), seed, l2 > 0 or
    data of the same shape never recompiles.

    Data parallel (``mesh``, a 1-D ``jax.sharding.Mesh`` from ``make_mesh``):
    ``shard="batch"`` (the default for one model) splits each batch's B
    columns over the D devices and replicates the params and optimizer state;
    ``shard="ensemble"`` (the default for an ensemble) gives each device E/D
    whole models. The data set is replicated on every device. B must be
    divisible by D; a full batch or the last partial batch is padded up to a
    multiple of D with columns of weight 0, which do not change the gradient.

    Args:
      state: a ``TrainState`` (``init_state``); leaves with a leading (E,) axis
        for an ensemble. (``fit`` passes a ``StateSeed``: the first compiled call
        builds the state.)
      net: the ``Network``.
      data: (X: (n_x, m), Y: (n_L, m)) or a ``datasets.Dataset`` (its training split).
      epochs: how many epochs to run.
      optimizer: the optimizer the state was made with (None, a name or an optax transformation).
      batch_size: None for full batch, else B columns per update (the last
        partial batch is one more step on its own m mod B columns).
      grad: "manual" (formulas §4) or "autodiff" (``jax.grad``).
      l2: weight decay λ (λ/(2m) Σ ||W||² in J); (E,) for an ensemble.
      keep_prob: inverted dropout on hidden layers (1.0 = off; off at evaluation).
      validation: (X_val, Y_val) or a Dataset (its test split), scored after each epoch.
      progress: a tqdm bar over epochs; default on only in a terminal or notebook, on process 0.
      eval_train: True / "running": train metrics as running averages over the
        epoch's batches (free); "full": the whole training set re-evaluated
        after each epoch (no dropout); False / "off": none.
      epochs_per_call: epochs per compiled call.
      callback: ``callback(state, history)`` after each compiled call (e.g. to
        checkpoint); it must not keep ``state``, whose buffers the next call donates.
      mesh: a 1-D device mesh for data-parallel training, or None.
      shard: "batch" or "ensemble" (with a mesh).
      compute_dtype: e.g. ``jnp.bfloat16``: forward and backward in that dtype,
        params, optimizer state, update and evaluation in the params' dtype.
      local_data: with a mesh over several processes, each process passes only
        ITS OWN columns (the same number on every process; the global data set
        is their concatenation in process order). Each device then keeps its
        m/D columns and every batch takes B/D columns from each device: the data
        are shuffled within each device's block (from ``(key, epoch, device)``),
        never across devices, so the batches differ from a run on the full data
        (which draws each batch from all m columns); every example still counts
        once per epoch. Divergence is reported by epoch, without the replay.

    Returns:
      ``(state, history)``; history's arrays are (epochs,), or (E, epochs).

    Raises:
      DivergenceError: a NaN/inf cost, gradient or parameter (single model).

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> state = jaxnn.init_state(jaxnn.init_params(jax.random.key(0), net), jax.random.key(1))
    >>> data = (jnp.ones((2, 4)), jnp.ones((1, 4)))
    >>> state, history = train_epochs(state, net, data, epochs=3, progress=False)
    >>> int(state.epoch), history["epoch"].tolist()
    (3, [1, 2, 3])
    """
    if not isinstance(net, Network):
        raise ValueError(f"net must be a jaxnn.Network, got {type(net).__name__}.")
    seed = state if isinstance(state, StateSeed) else None
    if seed is not None and (mesh is not None or jax.process_count() > 1 or not all(
            isinstance(x, jax.Array) for x in jax.tree.leaves(seed.params))):
        state, seed = seed.build(), None  # placed, compared across processes, converted: a state
    ensemble = isinstance(state, TrainState) and jnp.ndim(state.step) == 1 or (
        seed is not None and seed.ensemble)
    check_positive_int(epochs, "epochs")
    s = settings(net, optimizer, grad=grad, keep_prob=keep_prob, compute_dtype=compute_dtype)
    _check_state(state, net, s.tx, ensemble)
    check_l2(l2, ensemble=ensemble)
    if eval_train not in EVAL_TRAIN:
        raise ValueError(f"eval_train = {eval_train!r}; valid: True/'running', 'full', False/'off'.")
    dtype = jax.tree.leaves(state.params)[0].dtype
    X, Y = _xy(data, dtype, net)
    if validation is not None and hasattr(validation, "X_test"):
        validation = (validation.X_test, validation.Y_test)
    val = None if validation is None else _xy(validation, dtype, net, "validation")
    if local_data and mesh is None:
        raise ValueError("local_data=True splits the data over the devices of a mesh: pass "
                         "mesh=jaxnn.make_mesh() (or local_data=False).")
    m = X.shape[1] * (jax.process_count() if local_data else 1)  # the global m
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")
    show = _show_progress(progress)
    per_call = epochs_per_call or (1 if show or callback else epochs)
    check_positive_int(per_call, "epochs_per_call")
    if seed is not None and per_call < epochs:  # several calls: all in run_epochs' one program
        state, seed = seed.build(), None
    E = np.shape(state.step if seed is None else seed.learning_rate)
    l2 = np.broadcast_to(np.asarray(l2, float), E)
    B = min(batch_size or m, m)
    check_step_fits(state.params, B)  # before allocating: the gradients and a batch's activations
    shard = shard or ("ensemble" if ensemble else "batch")
    D = 1 if mesh is None or shard != "batch" else n_devices(mesh)
    spec = EpochSpec(s, B, 0, EVAL_TRAIN[eval_train], ensemble, bool(np.any(l2 > 0)), mesh, shard,
                     D, bool(local_data))
    frozen = np.zeros(E, bool)
    key_data, epoch0 = jax.device_get((_key_data(state.key), state.epoch)) if seed is None else (
        np.asarray(_key_data(seed.key)), np.zeros(E, np.int32))  # one sync (a seed is at epoch 0)
    if jax.process_count() > 1:  # every process must train on the same data with the same settings
        data_print = {"X shape": X.shape, "Y shape": Y.shape} if local_data else {"X": X, "Y": Y}
        check_same_across_processes(
            {**data_print, "validation": val, "key": key_data, "epoch": epoch0, "l2": l2,
             "params": state.params, "opt_state": state.opt_state, "network": net.describe(),
             "optimizer": s.tx, "grad": grad, "keep_prob": keep_prob,
             "compute_dtype": str(compute_dtype), "batch_size": B, "epochs": epochs,
             "epochs_per_call": per_call, "eval_train": spec.eval_train, "shard": shard,
             "local_data": local_data},
            "the data and settings of train_epochs")
    # frozen and l2 are carried from call to call: device arrays from the start, so every call
    # passes the same kind of argument and hits the same compiled program
    plan = Placement(mesh, shard, B, m, batch_size, ensemble, bool(local_data))
    state, frozen, X, Y, (l2, val) = place_training(plan, state, place_constant(frozen), X, Y,
                                                    (place_constant(l2.astype(dtype)), val))
    history: dict[str, np.ndarray] = {}
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc="epochs", unit="epoch", leave=True)
    first = int(np.max(epoch0)) + 1  # history numbers epochs 1, 2, ...
    done = 0
    try:
        while done < epochs:
            n = min(per_call, epochs - done)
            orders = None if B == m else place_replicated(
                mesh, epoch_orders(key_data, epoch0, done, n, m, D if local_data else 0))
            with peer_loss_as_error(), out_of_memory_as_error():  # one clear error, no hang
                # fit's one call: the seed's state is built inside the program
                built = {} if seed is None else {"seed": seed[:3], "optimizer": seed.optimizer}
                state, frozen, first_bad, outs = run_epochs(
                    None if built else state, frozen, X, Y, orders, l2, val,
                    spec._replace(n_epochs=n), **built)
                seed = None
                outs, first_bad = jax.device_get((outs, first_bad))  # the call's one host sync
            outs = {"epoch": first + done + np.arange(n)} | outs
            if not ensemble and int(first_bad) >= 0:
                outs = {k: v[: int(first_bad)] for k, v in outs.items()}
            for k, v in outs.items():  # (n,) or (E, n): epochs on the last axis
                history[k] = v if k not in history else np.concatenate([history[k], v], -1)
            if not ensemble and int(first_bad) >= 0:
                _raise_diverged(state, int(epoch0) + done + int(first_bad), X, Y, l2,
                                spec, key_data, history, replay=not local_data)
            done += n
            if bar is not None:
                bar.update(n)
                bar.set_postfix(_postfix(history), refresh=False)
            if callback is not None:
                callback(state, history)
    finally:
        if bar is not None:
            bar.close()
    if ensemble:
        history["diverged"] = np.asarray(jax.device_get(frozen))
    return state, history


def _postfix(history) -> dict[str, str]:
    shown = {}
    for k in ("cost", "train_accuracy", "val_cost", "val_accuracy", "val_r2"):
        if k in history:
            shown[k] = f"{float(np.mean(history[k][..., -1])):.4g}"
    return shown


def _raise_diverged(state, e, X, Y, l2, spec, key_data, history, replay=True):
    """Replay epoch e (0-based; its start state came back) and raise with the exact update."""
    state = jax.tree.map(jnp.asarray, jax.device_get(state))  # off the mesh: one device suffices
    last, i, where = state, None, None
    if replay:
        order = None if spec.batch_size >= X.shape[1] else epoch_order(key_data, e, X.shape[1])
        X, Y = (jnp.asarray(jax.device_get(a)) for a in (X, Y))
        last, i, where = replay_epoch(state, X, Y, order, spec.batch_size, jnp.asarray(l2),
                                      spec.step)
    epoch = e + 1
    if i is None:  # the replay's rounding stayed finite: name the epoch only
        where = "a cost or parameter somewhere in this epoch"
    step = int(last.step) + 1
    raise DivergenceError(
        f"training diverged in epoch {epoch} (update {step}): {where} is NaN or inf. "
        "The last finite params are on this exception (.params, .state); try a smaller "
        "learning rate, gradient clipping, or standardised inputs.",
        epoch=epoch, step=step, where=where, state=last, history=history)


def fit(params, net: Network, data, *, epochs: int, key, optimizer=None, learning_rate=None,
        batch_size: int | None = None, grad: str = "manual", l2=0.0, keep_prob: float = 1.0,
        validation=None, progress: bool | None = None, mesh=None, compute_dtype=None,
        **kwargs):
    """Train ``params`` on data = (X: (n_x, m), Y: (n_L, m)) or a ``datasets.Dataset``.

    Args:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]`` (``init_params``); not modified.
      net: the ``Network``.
      data: (X: (n_x, m), Y: (n_L, m)) or a ``datasets.Dataset``.
      epochs: passes over the data.
      key: ``jax.random.key(seed)``: data order and dropout masks.
      optimizer: None / "gd": formulas §5 gradient descent with
        ``learning_rate`` (default 0.1); a name in ``OPTIMIZERS`` ("adam", ...);
        or any ``optax.GradientTransformation`` (hand-derived grads go straight
        into its ``update``).
      learning_rate: α for a named optimizer (None: its default).
      batch_size: None for full batch (formulas §5's GD), else shuffled batches of
        B columns; the last partial batch is one more step on its own m mod B
        examples, so every example counts once per epoch.
      grad: "manual" (the hand-derived backward pass, formulas §4) or "autodiff".
      l2: weight decay λ (λ/(2m) Σ ||W||² in J).
      keep_prob: inverted dropout on hidden layers (off at evaluation).
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
      during the epoch, the objective incl. L2), "train_cost" and
      "train_<metric>" (running averages over the epoch's batches, see
      ``train_epochs``' eval_train), "val_..." to (epochs,) arrays.

    Raises:
      DivergenceError: a NaN/inf cost, gradient or parameter (see its ``.params``).

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jaxnn.init_params(jax.random.key(0), net)
    >>> data = (jnp.ones((2, 4)), jnp.ones((1, 4)))
    >>> params, history = fit(params, net, data, epochs=3, key=jax.random.key(1), progress=False)
    >>> sorted(history), bool(history["cost"][-1] < history["cost"][0])
    (['cost', 'epoch', 'train_accuracy', 'train_cost'], True)
    """
    with one_reading():  # the state's and the step's memory checks: /proc/meminfo read once
        seed = seed_state(params, key, optimizer=optimizer, learning_rate=learning_rate)
        state, history = train_epochs(seed, net, data, epochs=epochs, optimizer=optimizer,
                                      batch_size=batch_size, grad=grad, l2=l2,
                                      keep_prob=keep_prob, validation=validation,
                                      progress=progress, mesh=mesh, compute_dtype=compute_dtype,
                                      **kwargs)
    return _returned(state.params), history


def _returned(params):
    """Params for the caller: across processes, each process's own whole copy (ordinary arrays)."""
    return to_local(params) if jax.process_count() > 1 else params


def fit_ensemble(params, net: Network, data, *, epochs: int, key, optimizer=None,
                 learning_rate=None, l2=0.0, **kwargs):
    """``fit`` for E models at once (formulas §4-§5 per member), vmapped in ONE compiled program.

    A member whose epoch goes NaN/inf is frozen at the params it had at the
    start of that epoch instead of stopping the others: ``history["diverged"]``
    (E,) says which. With ``mesh=``, each device trains E/D whole models
    (``shard="ensemble"``, E a multiple of D), or ``shard="batch"`` splits
    every model's batch columns instead.

    Args:
      params: leaves with a leading (E,) axis (``init_ensemble``): W: (E, n_l, n_{l-1}), b: (E, n_l, 1).
      net: the ``Network``.
      data: (X: (n_x, m), Y: (n_L, m)), shared by all members.
      epochs: passes over the data.
      key: one key (split into E: each member its own data order and dropout) or (E,) keys.
      optimizer: as in ``fit``.
      learning_rate: a scalar or (E,) array (named optimizers).
      l2: a scalar or (E,) array.
      **kwargs: the other arguments of ``train_epochs``.

    Returns:
      ``(params, history)``: history arrays are (E, epochs).

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jaxnn.init_ensemble(jax.random.key(0), net, 2)
    >>> data = (jnp.ones((2, 4)), jnp.ones((1, 4)))
    >>> params, history = fit_ensemble(params, net, data, epochs=3, key=jax.random.key(1),
    ...                                learning_rate=np.array([0.1, 0.5]), progress=False)
    >>> history["cost"].shape, history["diverged"].tolist()
    ((2, 3), [False, False])
    """
    with one_reading():
        seed = seed_state(params, key, optimizer=optimizer, learning_rate=learning_rate,
                          ensemble=True)
        state, history = train_epochs(seed, net, data, epochs=epochs, optimizer=optimizer, l2=l2,
                                      **kwargs)
    return _returned(state.params), history


__all__ = ["fit", "fit_ensemble", "train_epochs"]
