"""The compiled epochs of ``fit``: ``train_step`` over shuffled batches, inside one program.

One call of ``run_epochs`` runs ``spec.n_epochs`` epochs as ONE compiled
program with the data on the device, compiled once per (shapes, settings)
and reused across epochs and calls. Epoch e of m columns with batch size B:

* the order: ``epoch_order(key, e, m)``, a permutation drawn on the host from
  ``(key, e)`` alone (O(m), no device sort), so a resumed run sees the same
  batches; full-batch training (B = m) keeps the data as it is;
* ``floor(m/B)`` full batches run in a ``jax.lax.scan``, then the ``m mod B``
  leftover columns take ONE more step of their own size: every example counts
  exactly once per epoch. On one device no step carries a mask; on a mesh of D
  devices a batch whose size is not a multiple of D is padded with weight-0
  columns (the one masked path, ``w`` of ``backward``);
* one model: the epoch's ``floor(m/B)`` full batches are gathered in ONE take
  of columns per epoch, X_e: (n_x, floor(m/B), B), and step i slices its
  X_b: (n_x, B) out of it (a gather per step, of rows of X^T, cost the small
  net ~15% of its step time). An ensemble keeps a gather of rows of the
  example-major X^T per step: a shuffled copy per member would hold E copies
  of the data;
* divergence costs nothing per step: the epoch checks once that its summed cost
  and its params are finite. If not, the epoch's start state is returned (one
  select per leaf per epoch), and ``jaxnn.train.divergence`` replays that epoch step
  by step to name the update and the quantity that went bad;
* running train metrics come from the forward passes the epoch already ran
  (``metrics.batch_sums``); a full evaluation only with ``eval_train="full"``.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.train.metrics import evaluate, finish_sums, zero_sums
from jaxnn.train.state import TrainState, state_builder
from jaxnn.train.step import StepSettings, train_step

Array = jax.Array


class EpochSpec(NamedTuple):
    """The static settings of the epoch program; one compilation per distinct value.

    step: the ``StepSettings``; batch_size: B (at most m; m for full batch);
    n_epochs: epochs per call; eval_train: "running", "full" or "off";
    ensemble: leaves carry a leading (E,) axis; l2_on: add the L2 term;
    mesh / shard: a 1-D device mesh and "batch" or "ensemble" (None: one
    device); devices: D, the number of devices a batch's columns are split over
    (1: one device): with shard="batch" each batch is padded to a multiple of D
    with columns of weight 0, and with ``local`` each device visits its own m/D rows.
    """

    step: StepSettings
    batch_size: int
    n_epochs: int = 1
    eval_train: str = "running"
    ensemble: bool = False
    l2_on: bool = False
    mesh: Any = None
    shard: str = "batch"
    devices: int = 1
    local: bool = False  # each device trains on its own block of the rows (``local_orders``)


def epoch_order(key_data, epoch: int, m: int) -> np.ndarray:
    """The order of the m columns in epoch ``epoch`` (0-based): a permutation, int32 (m,).

    Drawn by NumPy from ``(key_data, epoch)`` alone (O(m)), so the same run key
    gives the same batches whether a run is resumed or not.

    Args:
      key_data: ``jax.random.key_data(state.key)``, uint32 (2,) for the default PRNG.
      epoch: the number of epochs completed before this one.
      m: the number of columns.

    Returns:
      (m,) int32.

    >>> order = epoch_order(np.array([0, 7], np.uint32), 0, 5)
    >>> sorted(order.tolist())
    [0, 1, 2, 3, 4]
    """
    seed = [int(x) for x in np.ravel(key_data)] + [int(epoch)]
    return np.random.default_rng(seed).permutation(m).astype(np.int32)


def local_orders(key_data, epoch: int, m: int, D: int) -> np.ndarray:
    """Column orders of a local-data epoch: each of D devices permutes its own block of m/D.

    Block d of the result is a permutation of 0..m/D-1 drawn from
    ``(key_data, epoch, d)``: the rows device d holds, in the order it visits them.

    Args:
      key_data: ``jax.random.key_data(state.key)``.
      epoch: the number of epochs completed before this one.
      m: the global number of columns (a multiple of D).
      D: the number of devices.

    Returns:
      (m,) int32, local indices.

    >>> local_orders(np.array([0, 7], np.uint32), 0, 6, 2).reshape(2, 3).max(axis=1).tolist()
    [2, 2]
    """
    seed = [int(x) for x in np.ravel(key_data)] + [int(epoch)]
    return np.concatenate([np.random.default_rng(seed + [d]).permutation(m // D)
                           for d in range(D)]).astype(np.int32)


def epoch_orders(key_data, epoch0, done: int, n: int, m: int, local_D: int = 0) -> np.ndarray:
    """The column orders of a call's n epochs after ``epoch0 + done``: (n, m), or (E, n, m).

    ``epoch_order`` of each epoch (``local_orders`` with ``local_D`` devices of
    local data); one row per member of an ensemble (key_data (E, 2), epoch0 (E,)).

    Args:
      key_data: ``jax.random.key_data(state.key)``, on the host.
      epoch0: the state's epoch counter, () or (E,), on the host.
      done: epochs this run already did.
      n: epochs in this call.
      m: the number of columns.
      local_D: 0, or the number of devices each holding its own m/D columns.

    Returns:
      int32 (n, m), or (E, n, m).

    >>> epoch_orders(np.array([0, 7], np.uint32), np.int32(0), 0, 2, 5).shape
    (2, 5)
    """
    key_data, epoch0 = np.asarray(key_data), np.asarray(epoch0)
    if epoch0.ndim == 0:
        if local_D:
            return np.stack([local_orders(key_data, int(epoch0) + done + j, m, local_D)
                             for j in range(n)])
        return np.stack([epoch_order(key_data, int(epoch0) + done + j, m) for j in range(n)])
    return np.stack([epoch_orders(k, e, done, n, m) for k, e in zip(key_data, epoch0)])


def _rows(Xr, rows):
    # The rows of a permutation: in bounds and distinct, so no clamping or NaN fill is needed.
    return Xr.at[rows].get(mode="promise_in_bounds", unique_indices=True)


def _columns(A, cols):
    # The columns of a permutation: in bounds and distinct, as in _rows.
    return A.at[:, cols].get(mode="promise_in_bounds", unique_indices=True)


def _local_batch(Xr, Yr, rows, spec: EpochSpec):
    """Each device gathers its share of the batch from its OWN rows (no data crosses devices).

    Xr: (m, n_x) split by rows over the mesh; rows: (D, b) local indices, split by
    device. Returns X_b (n_x, D b), Y_b, split by columns, as ``_batch`` does.
    """
    axis = spec.mesh.axis_names[0]
    P = jax.sharding.PartitionSpec

    def gather(xr, yr, idx):  # one device: its (m/D, n) rows and its (1, b) indices
        return _rows(xr, idx[0]).T, _rows(yr, idx[0]).T

    return (*jax.shard_map(gather, mesh=spec.mesh, in_specs=(P(axis, None), P(axis, None), P(axis)),
                           out_specs=(P(None, axis), P(None, axis)))(Xr, Yr, rows), None)


def _constrain(x, mesh, spec):
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*spec))
    return jax.lax.with_sharding_constraint(x, sharding)


def _batch(Xb, Yb, spec: EpochSpec):
    """A gathered batch X_b (n_x, b), Y_b (n_L, b) for the step: (X_b, Y_b, w or None).

    On a mesh of D devices with shard="batch", padded to a multiple of D with copies of its
    first column that weigh 0 (w), and split by columns over the devices.
    """
    b = Xb.shape[1]
    w = None
    pad = -b % spec.devices
    if pad:  # data parallel: each device gets b/D columns; the padding weighs 0
        Xb, Yb = (jnp.concatenate([A, A[:, :1].repeat(pad, axis=1)], axis=1) for A in (Xb, Yb))
        w = (jnp.arange(b + pad) < b).astype(Xb.dtype)
    if spec.mesh is not None and spec.shard == "batch":
        # Each device takes B/D of the batch's columns; the params are replicated, so XLA
        # all-reduces the partial sums of dW, db (formulas §4c).
        axis = spec.mesh.axis_names[0]
        Xb, Yb = _constrain(Xb, spec.mesh, (None, axis)), _constrain(Yb, spec.mesh, (None, axis))
        w = None if w is None else _constrain(w, spec.mesh, (axis,))
    return Xb, Yb, w


def _one_epoch(state: TrainState, frozen, X, Y, Xr, Yr, order, l2, val, spec: EpochSpec):
    """One pass over the m columns; returns (state, frozen, went_bad, outputs).

    Xr, Yr: X^T, Y^T (example-major) for the per-step row gathers of an ensemble or local
    data, else None.
    """
    m, B = X.shape[1], spec.batch_size
    n_full, rest = divmod(m, B)
    k_drop = jax.random.fold_in(state.key, state.epoch)
    l2 = l2 if spec.l2_on else 0.0

    def step(carry, i, Xb, Yb, w):
        params, opt_state, total, sums = carry
        out = train_step(params, opt_state, Xb, Yb, spec.step, l2=l2, w=w,
                         key=jax.random.fold_in(k_drop, i))
        real = Xb.shape[1] if w is None else jnp.sum(w)
        sums = jax.tree.map(jnp.add, sums, out.sums)
        return out.params, out.opt_state, total + out.J * real, sums

    zero = jnp.zeros((), X.dtype)
    carry = (state.params, state.opt_state, zero, zero_sums(spec.step.net, X.dtype))
    if order is None:  # full batch (formulas §5's gradient descent): the order is irrelevant
        # one device (or local data): the data as they are; a mesh pads and splits the columns
        whole = spec.local or spec.mesh is None
        carry = step(carry, 0, *((X, Y, None) if whole else _batch(X, Y, spec)))
    elif spec.local:  # each device visits its own m/D rows, B/D of them per step
        D = spec.devices
        b, per_device = B // D, order.reshape(D, m // D)
        n_full, rest = divmod(m // D, b)

        def body(carry, i):
            rows = jax.lax.dynamic_slice_in_dim(per_device, i * b, b, axis=1)
            return step(carry, i, *_local_batch(Xr, Yr, rows, spec)), None

        carry, _ = jax.lax.scan(body, carry, jnp.arange(n_full))
        if rest:
            carry = step(carry, n_full, *_local_batch(Xr, Yr, per_device[:, n_full * b:], spec))
    elif spec.ensemble:  # a gather of rows per step (see the module docstring)
        full = order[: n_full * B].reshape(n_full, B)

        def body(carry, xs):
            i, rows = xs
            return step(carry, i, *_batch(_rows(Xr, rows).T, _rows(Yr, rows).T, spec)), None

        carry, _ = jax.lax.scan(body, carry, (jnp.arange(n_full), full))
        if rest:
            rows = order[n_full * B:]
            carry = step(carry, n_full, *_batch(_rows(Xr, rows).T, _rows(Yr, rows).T, spec))
    else:  # one take of the epoch's full batches, (n, n_full, B); step i slices batch i
        Xe, Ye = (_columns(A, order[: n_full * B]).reshape(A.shape[0], n_full, B) for A in (X, Y))

        def body(carry, i):
            Xb, Yb = (jax.lax.dynamic_index_in_dim(A, i, axis=1, keepdims=False) for A in (Xe, Ye))
            return step(carry, i, *_batch(Xb, Yb, spec)), None

        carry, _ = jax.lax.scan(body, carry, jnp.arange(n_full))
        if rest:
            cols = order[n_full * B:]
            carry = step(carry, n_full, *_batch(_columns(X, cols), _columns(Y, cols), spec))
    params, opt_state, total, sums = carry
    # One check per epoch on values the epoch has anyway: x * 0 is 0 for finite x, NaN otherwise.
    probe = total * 0 + sum(jnp.sum(p * 0) for p in jax.tree.leaves(params))
    bad = ~jnp.isfinite(probe) & ~frozen
    keep = ~bad & ~frozen
    # A bad epoch hands back its start state, from which the replay finds the failing update.
    select = functools.partial(jax.tree.map, lambda new, old: jnp.where(keep, new, old))
    steps = 1 if order is None else n_full + (rest > 0)
    new = TrainState(select(params, state.params), select(opt_state, state.opt_state),
                     state.step + keep.astype(state.step.dtype) * steps, state.key,
                     state.epoch + keep.astype(state.epoch.dtype))
    out = {"cost": jnp.where(keep, total / m, jnp.nan)}
    if spec.eval_train == "running":
        out.update({k: jnp.where(keep, v, jnp.nan) for k, v in finish_sums(sums, Y, spec.step.net).items()})
    elif spec.eval_train == "full":
        out.update({f"train_{k}": v for k, v in evaluate(new.params, X, Y, spec.step.net).items()})
    if val is not None:
        out.update({f"val_{k}": v for k, v in evaluate(new.params, *val, spec.step.net).items()})
    return new, frozen | bad, bad, out


def _epochs(state, frozen, X, Y, orders, l2, val, spec: EpochSpec):
    # example-major once per call where a batch is a gather of rows (ensemble, local data)
    Xr, Yr = (X.T, Y.T) if spec.ensemble or spec.local else (None, None)

    def body(carry, order):
        state, frozen, first_bad, e = carry
        state, frozen, bad, out = _one_epoch(state, frozen, X, Y, Xr, Yr, order, l2, val, spec)
        first_bad = jnp.where((first_bad < 0) & bad, e, first_bad)
        return (state, frozen, first_bad, e + 1), out

    carry = (state, frozen, jnp.int32(-1), jnp.int32(0))
    (state, frozen, first_bad, _), outs = jax.lax.scan(body, carry, orders, length=spec.n_epochs)
    return state, frozen, first_bad, outs


@functools.partial(jax.jit, static_argnames=("spec", "optimizer"), donate_argnums=(0,))
def run_epochs(state: TrainState | None, frozen, X, Y, orders, l2, val, spec: EpochSpec,
               seed=None, optimizer=None):
    """Run ``spec.n_epochs`` epochs from ``state`` in one compiled program.

    Args:
      state: the ``TrainState`` (donated: use the returned one), or None with ``seed``.
      frozen: bool () (or (E,)): members that diverged earlier and stay as they are.
      X: (n_x, m), in the params' dtype.
      Y: (n_L, m).
      orders: (n_epochs, m) int32 column orders (``epoch_order``), (E, n_epochs, m)
        in an ensemble, or None for full batch.
      l2: λ, () or (E,).
      val: None or (X_val, Y_val).
      spec: the ``EpochSpec``.
      seed: None, or ``(params, key, learning_rate)`` of a ``StateSeed``: the state
        is built inside this program (``state_builder``), so ``fit``'s first call
        is one dispatch instead of ``init_state``'s and this one; never donated.
      optimizer: with ``seed``, the seed's optimizer (a name or an optax transformation).

    Returns:
      ``(state, frozen, first_bad, outputs)``: first_bad is -1 or the index in
      this call of the first epoch that went non-finite (whose start state is
      returned); outputs map names to (n_epochs,) arrays ((E, n_epochs)).

    >>> from jaxnn.train.step import settings
    >>> net = jaxnn.Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> state = jaxnn.init_state(jaxnn.init_params(jax.random.key(0), net), jax.random.key(1))
    >>> spec = EpochSpec(settings(net, None), batch_size=4, n_epochs=2)
    >>> out = run_epochs(state, False, jnp.ones((2, 4)), jnp.ones((1, 4)), None, 0.0, None, spec)
    >>> int(out[0].epoch), int(out[2]), out[3]["cost"].shape
    (2, -1, (2,))
    """
    if seed is not None:
        state = state_builder(optimizer, spec.ensemble)(*seed)
    if spec.ensemble:  # members on a leading axis; the data are shared
        out = jax.vmap(_epochs, in_axes=(0, 0, None, None, None if orders is None else 0, 0,
                                         None, None))(state, frozen, X, Y, orders, l2, val, spec)
    else:
        out = _epochs(state, frozen, X, Y, orders, l2, val, spec)
    if spec.mesh is not None:  # the history and flags whole on every device (and process)
        state, *rest = out
        out = (state, *jax.tree.map(lambda x: _constrain(x, spec.mesh, ()), rest))
    return out

