"""Where ``fit`` puts its state and data: one device, or a device mesh over one or many processes.

One place for the mesh checks of a training run (batch size vs device count,
ensemble size vs device count, the sharding mode) and for the placement
itself, through ``jaxnn.devices.global_arrays.put_global``, so a mesh may span the
devices of several processes (each fills its own).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
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


_CONSTANTS: dict = {}  # (bytes, dtype, shape) -> the device array


def place_constant(a: np.ndarray) -> jax.Array:
    """A small host array on the default device, put there once per value and then shared.

    For arguments that stay the same from call to call (``fit``'s frozen flags
    and λ): one ``device_put`` saved per call. The caller must never donate it.

    Args:
      a: a NumPy array.

    >>> place_constant(np.zeros(2, bool)) is place_constant(np.zeros(2, bool))
    True
    """
    key = (a.tobytes(), a.dtype.str, a.shape)
    x = _CONSTANTS.get(key)
    if x is None or x.is_deleted():
        if len(_CONSTANTS) >= 64:
            _CONSTANTS.clear()
        x = _CONSTANTS[key] = jnp.asarray(a)
    return x


class Placement(NamedTuple):
    """The mesh settings of a ``fit`` call: what ``place_training`` checks and follows.

    mesh: a 1-D mesh, or None (one device: arrays stay as they are).
    shard: "batch" (split each batch's columns) or "ensemble" (split the E models).
    B: the batch size in effect; m: the number of examples (global with local_data).
    batch_size: the batch size the user asked for (None: full batch).
    ensemble: the state holds E models (a leading (E,) axis).
    local_data: each process passed only its own columns of X and Y.
    """

    mesh: Mesh | None
    shard: str = "batch"
    B: int = 0
    m: int = 0
    batch_size: int | None = None
    ensemble: bool = False
    local_data: bool = False


class Placed(NamedTuple):
    """What ``place_training`` returns, in one shape whatever the settings."""

    state: Any
    per_member: Any  # (E,) arrays split with the models, or () arrays
    X: Any  # (n_x, m): replicated, or this process's columns as a global array (local_data)
    Y: Any  # (n_L, m)
    shared: Any  # anything else every device needs (replicated)


def place_training(plan: Placement, state, per_member, X, Y, shared) -> Placed:
    """Check the mesh settings of a ``fit`` call and put its state and data where they go.

    With ``shard="batch"`` the state and data are replicated and each batch's
    columns are split inside the program (B must be a multiple of D unless the
    batch is the whole data set, which is padded with weight-0 columns); with
    ``shard="ensemble"`` the state's leading (E,) axis is split over the devices.
    With ``local_data`` X and Y are this process's own columns, placed split by
    columns over its devices (m is then the global count).

    Args:
      plan: the ``Placement``.
      state: the ``TrainState``.
      per_member: arrays with the models' leading (E,) axis (or scalars for one model).
      X: (n_x, m), or this process's columns with local_data.
      Y: (n_L, m), likewise.
      shared: a pytree every device needs whole (replicated).

    Returns:
      ``Placed(state, per_member, X, Y, shared)``.

    >>> place_training(Placement(None, B=4, m=4), (), (), np.ones((2, 4)), np.ones((1, 4)), ()).X.shape
    (2, 4)
    """
    mesh = plan.mesh
    if mesh is None:
        return Placed(state, per_member, X, Y, shared)
    D = n_devices(mesh)  # also checks that mesh is a 1-D Mesh
    if plan.shard == "ensemble":
        if not plan.ensemble:
            raise ValueError("shard='ensemble' splits the models of an ensemble over the devices: "
                             "use fit_ensemble, or shard='batch' for one model.")
        E = int(np.shape(state.step)[0])
        if E % D:
            raise ValueError(f"shard='ensemble': E = {E} models cannot be split evenly over the "
                             f"{D} devices of the mesh; use a multiple of {D} models, or "
                             "shard='batch'.")
        split = NamedSharding(mesh, P(mesh_axis(mesh)))
        X, Y, shared = place_replicated(mesh, (X, Y, shared))
        return Placed(put_global(state, split), put_global(per_member, split), X, Y, shared)
    if plan.shard != "batch" or (plan.local_data and plan.ensemble):
        if plan.local_data:
            raise ValueError("local_data=True trains one model with shard='batch' (each device "
                             "takes its share of every batch from its own columns).")
        raise ValueError(f"shard = {plan.shard!r}; valid: 'batch' (split the columns of each batch) "
                         "or 'ensemble' (split the models of an ensemble).")
    B, m = plan.B, plan.m
    if B % D and plan.batch_size is not None and plan.batch_size < m:
        lo, hi = B // D * D, -(-B // D) * D
        raise ValueError(
            f"batch_size = {B} is not divisible by the {D} devices of the mesh: use a "
            f"multiple of {D} (e.g. {lo or hi} or {hi}), so each device gets the same "
            "number of columns. (Full-batch training pads and masks by itself.)")
    if plan.local_data:
        if B % D or m % D:
            raise ValueError(
                f"local_data=True: the global m = {m} columns and the batch size B = {B} must both "
                f"be multiples of the {D} devices (each device holds m/D columns and takes B/D "
                "of them per step); drop or add a few columns on each process.")
        X, Y = shard_columns_global((X, Y), mesh, local=True)
    else:
        X, Y = place_replicated(mesh, (X, Y))
    per_member, shared = place_replicated(mesh, (per_member, shared))
    return Placed(put_global(state, replicated(mesh)), per_member, X, Y, shared)


__all__ = ["Placed", "Placement", "place_constant", "place_replicated", "place_training"]
