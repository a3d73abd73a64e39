"""Where ``fit`` puts its state and data: one device, or a device mesh over one or many processes.

One place for the mesh checks of a training run (batch size vs device count,
ensemble size vs device count, the sharding mode) and for the placement
itself, through ``jaxnn.distributed.put_global``, so a mesh may span the
devices of several processes (each fills its own).
"""

from __future__ import annotations

import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxnn.devices.global_arrays import put_global, shard_columns_global
from jaxnn.devices.mesh import mesh_axis, n_devices, replicated


def place_replicated(mesh, tree):
    """``tree`` as device arrays: replicated over ``mesh``, or on the default device (mesh None).

    Args:
      mesh: a 1-D mesh, or None (then the tree is returned as it is).
      tree: a pytree of arrays (host or device).

    >>> place_replicated(None, np.ones(2)).shape
    (2,)
    """
    if mesh is None:  # host arrays travel with the compiled call that takes them
        return tree
    return put_global(tree, replicated(mesh))


def place_training(mesh, shard: str, B: int, m: int, batch_size, ensemble: bool, state, arrays,
                   local_data=None):
    """Check the mesh settings of a ``fit`` call and put its state and data where they go.

    With ``shard="batch"`` the state and data are replicated and each batch's
    columns are split inside the program (B must be a multiple of D unless the
    batch is the whole data set, which is padded with weight-0 columns); with
    ``shard="ensemble"`` the state's leading (E,) axis is split over the devices.

    Args:
      mesh: a 1-D mesh, or None (one device: arrays placed as they are).
      shard: "batch" or "ensemble".
      B: the batch size in effect.
      m: the number of examples.
      batch_size: the batch size the user asked for (None: full batch).
      ensemble: the state holds E models.
      state: the ``TrainState``.
      arrays: a tuple of per-member arrays first ((E,) or ()), then data, replicated.
      local_data: None, or (X_p, Y_p): this process's own columns, placed split by
        columns over its devices (``train_epochs(..., local_data=True)``); m is then
        the global count.

    Returns:
      ``(state, arrays)`` placed.

    >>> place_training(None, "batch", 4, 4, None, False, (), (np.ones(2),))[1][0].shape
    (2,)
    """
    if mesh is None:
        return state, place_replicated(None, arrays)
    D = n_devices(mesh)  # also checks that mesh is a 1-D Mesh
    if shard == "ensemble":
        if not ensemble:
            raise ValueError("shard='ensemble' splits the models of an ensemble over the devices: "
                             "use fit_ensemble, or shard='batch' for one model.")
        E = int(np.shape(state.step)[0])
        if E % D:
            raise ValueError(f"shard='ensemble': E = {E} models cannot be split evenly over the "
                             f"{D} devices of the mesh; use a multiple of {D} models, or "
                             "shard='batch'.")
        split = NamedSharding(mesh, P(mesh_axis(mesh)))
        per_member, data = arrays[0], arrays[1:]
        return put_global(state, split), (put_global(per_member, split), *place_replicated(mesh, data))
    if shard != "batch" or (local_data is not None and ensemble):
        if local_data is not None:
            raise ValueError("local_data=True trains one model with shard='batch' (each device "
                             "takes its share of every batch from its own columns).")
        raise ValueError(f"shard = {shard!r}; valid: 'batch' (split the columns of each batch) "
                         "or 'ensemble' (split the models of an ensemble).")
    if B % D and batch_size is not None and batch_size < m:
        lo, hi = B // D * D, -(-B // D) * D
        raise ValueError(
            f"batch_size = {B} is not divisible by the {D} devices of the mesh: use a "
            f"multiple of {D} (e.g. {lo or hi} or {hi}), so each device gets the same "
            "number of columns. (Full-batch training pads and masks by itself.)")
    placed = place_replicated(mesh, arrays)
    if local_data is not None:
        if B % D or m % D:
            raise ValueError(
                f"local_data=True: the global m = {m} columns and the batch size B = {B} must both "
                f"be multiples of the {D} devices (each device holds m/D columns and takes B/D "
                "of them per step); drop or add a few columns on each process.")
        return put_global(state, replicated(mesh)), (placed, shard_columns_global(local_data, mesh,
                                                                             local=True))
    return put_global(state, replicated(mesh)), placed
