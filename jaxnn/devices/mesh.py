"""Data-parallel training across devices with ``jax.sharding`` (formulas §4-§5 on many chips).

JAX is the distributed engine: jaxnn only says WHERE arrays live, and XLA's
SPMD partitioner splits the computation and inserts the collectives. With the
batch axis (axis 1, the m columns of X: (n_x, m)) sharded over a 1-D mesh of
D devices and the params replicated, each device runs the forward and
backward pass on its m/D columns; the sums over columns in §4c,
dW = (1/m) dZ A_prev^T and db = (1/m) Σ dZ, become a local partial sum plus
an all-reduce that XLA adds by itself. No ``psum`` is written here.

The pieces:

* ``make_mesh(devices=None, axis_name="batch")``: a 1-D mesh over all devices.
* ``shard_batch(X, Y, mesh)``: X: (n_x, m), Y: (n_L, m) placed with
  ``NamedSharding(mesh, P(None, "batch"))``, m/D columns per device. m must
  be divisible by D, else a ``ValueError`` that points to
  ``shard_padded_batch``.
* ``shard_padded_batch(X, Y, mesh)``: pads the columns with zeros up to a
  multiple of D and returns a 0/1 example mask w: (m_pad,). The weighted cost
  J = Σ_i w_i L^(i) / Σ_i w_i and its gradients (``jaxnn.cost(..., w=w)``,
  ``jaxnn.backward(..., w=w)``) are exactly those of the m real columns: the
  padding changes nothing but the layout.
* ``replicate(tree, mesh)``: every leaf copied to every device (params,
  optimizer state).
The compiled step on a mesh is ``jaxnn.make_train_step(net, optimizer, mesh=mesh)``
(jaxnn.train.step), and ``fit(..., mesh=mesh)`` runs whole epochs on it.

Several hosts (TPU pods, several GPU hosts): the one recipe is ``fit``'s. Every
host runs the same program: ``jaxnn.distributed.initialize()`` first (before any
other JAX call), then ``fit(..., mesh=make_mesh())`` over the devices of all
hosts, each host passing either the whole data set or, with ``local_data=True``,
only its own columns (``jaxnn.distributed.shard_columns_global`` builds the global
arrays). ``host_slice`` and ``shard_host_batch``, an older hand-made recipe, are
deprecated.

Agreement with single-device training: the all-reduce adds the per-device
partial sums in a different order than one device does, so results agree to
float32 reduction-order rounding, not bit for bit (measured in
``tests/test_parallel.py`` on 4 forced CPU devices: normwise relative error
of the final params after 20 steps 3e-8 .. 9e-8, asserted ≤ 1e-6).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxnn.core.deprecation import deprecated

Array = jax.Array


# --- meshes and placement ----------------------------------------------------------------


def make_mesh(devices=None, axis_name: str = "batch") -> Mesh:
    """A 1-D device mesh with one axis, ``axis_name``, over ``devices`` (default: all).

    On TPUs ``jax.make_mesh`` orders the devices along the interconnect ring.
    The axis is ``Auto`` (the partitioner decides the collectives), not
    ``Explicit`` sharding-in-types.

    Args:
      devices: the devices of the mesh (default: ``jax.devices()``, all processes').
      axis_name: the name of the mesh's one axis.

    >>> mesh = make_mesh()
    >>> mesh.shape["batch"] == len(jax.devices())
    True
    """
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("make_mesh: devices is empty; pass None for all devices.")
    axis_type = getattr(jax.sharding, "AxisType", None)
    if axis_type is not None:
        return jax.make_mesh((len(devices),), (axis_name,), axis_types=(axis_type.Auto,),
                             devices=devices)
    return Mesh(np.asarray(devices), (axis_name,))  # older jax: Auto is the only kind


def mesh_axis(mesh: Mesh) -> str:
    """The name of a 1-D mesh's one axis; ValueError for anything else.

    Args:
      mesh: a 1-D ``jax.sharding.Mesh``.

    >>> mesh_axis(make_mesh())
    'batch'
    """
    if not isinstance(mesh, Mesh) or len(mesh.axis_names) != 1:
        raise ValueError(f"mesh must be a 1-D jax.sharding.Mesh (see make_mesh), got {mesh!r}.")
    return mesh.axis_names[0]


def n_devices(mesh: Mesh) -> int:
    """D, the number of devices along the mesh's one axis."""
    return int(mesh.shape[mesh_axis(mesh)])


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """``NamedSharding(mesh, P(None, axis))``: the m columns of (n, m) split over devices.

    The placement of X: (n_x, m) and Y: (n_L, m) in data-parallel training
    (each of the D devices holds m/D columns); ``shard_batch`` applies it.

    Args:
      mesh: a 1-D mesh.

    >>> tuple(batch_sharding(make_mesh()).spec)
    (None, 'batch')
    """
    return NamedSharding(mesh, P(None, mesh_axis(mesh)))


def replicated(mesh: Mesh) -> NamedSharding:
    """``NamedSharding(mesh, P())``: a full copy on every device."""
    return NamedSharding(mesh, P())


def replicate(tree, mesh: Mesh):
    """Every leaf of ``tree`` (params, optimizer state) copied to every device of ``mesh``.

    Args:
      tree: a pytree of arrays.
      mesh: a 1-D mesh.

    >>> params = replicate([{"W": jnp.ones((3, 2)), "b": jnp.zeros((3, 1))}], make_mesh())
    >>> params[0]["W"].sharding.is_fully_replicated
    True
    """
    return jax.device_put(tree, replicated(mesh))


def _check_batch(X, Y, mesh: Mesh) -> int:
    if np.ndim(X) != 2 or np.ndim(Y) != 2 or np.shape(X)[1] != np.shape(Y)[1]:
        raise ValueError(
            f"X and Y must be (n_x, m) and (n_L, m) with the same m (one column per example), "
            f"got {np.shape(X)} and {np.shape(Y)}."
        )
    return n_devices(mesh)


def shard_batch(X, Y, mesh: Mesh) -> tuple[Array, Array]:
    """Place X: (n_x, m) and Y: (n_L, m) with m/D columns on each of the D devices.

    Args:
      X: (n_x, m).
      Y: (n_L, m).
      mesh: a 1-D mesh of D devices.

    Raises:
      ValueError: when m is not divisible by D; ``shard_padded_batch`` pads
        and masks instead, without changing the gradient.

    >>> mesh = make_mesh()
    >>> D = len(jax.devices())
    >>> X, Y = shard_batch(jnp.ones((4, 8 * D)), jnp.ones((1, 8 * D)), mesh)
    >>> tuple(X.sharding.spec)
    (None, 'batch')
    """
    D = _check_batch(X, Y, mesh)
    m = np.shape(X)[1]
    if m % D:
        raise ValueError(
            f"shard_batch: the batch has m = {m} columns, not divisible by the {D} devices of "
            f"the mesh (m mod D = {m % D}). Use a batch size that is a multiple of {D}, or "
            "shard_padded_batch(X, Y, mesh), which pads to a multiple of D and returns a 0/1 "
            "example mask that keeps the gradient exactly that of the m real examples."
        )
    sharding = batch_sharding(mesh)
    return jax.device_put(X, sharding), jax.device_put(Y, sharding)


def pad_batch(X, Y, multiple: int) -> tuple[Array, Array, Array]:
    """Zero-pad the columns of X: (n_x, m), Y: (n_L, m) up to a multiple of ``multiple``.

    Args:
      X: (n_x, m).
      Y: (n_L, m).
      multiple: pad m up to a multiple of this.

    Returns:
      ``(X_pad, Y_pad, w)``: (n_x, m_pad), (n_L, m_pad) and the example mask
      w: (m_pad,), 1 for the m real columns and 0 for the padding.

    >>> X, Y, w = pad_batch(jnp.ones((2, 5)), jnp.ones((1, 5)), 4)
    >>> X.shape, w.tolist()
    ((2, 8), [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    """
    m = np.shape(X)[1]
    m_pad = -(-m // multiple) * multiple
    X, Y = jnp.asarray(X), jnp.asarray(Y)
    w = (jnp.arange(m_pad) < m).astype(X.dtype)
    pad = ((0, 0), (0, m_pad - m))
    return jnp.pad(X, pad), jnp.pad(Y, pad), w


def shard_padded_batch(X, Y, mesh: Mesh) -> tuple[Array, Array, Array]:
    """``pad_batch`` to a multiple of D, then place columns (and w) across the devices.

    Pass the returned w to the step of ``make_sharded_train_step``: the
    padded columns get weight 0, so J and the gradients are those of the m
    real examples (up to float32 summation order).

    >>> X, Y, w = shard_padded_batch(jnp.ones((4, 5)), jnp.ones((1, 5)), make_mesh())
    >>> int(w.sum())
    5
    """
    D = _check_batch(X, Y, mesh)
    X, Y, w = pad_batch(X, Y, D)
    sharding = batch_sharding(mesh)
    w_sharding = NamedSharding(mesh, P(mesh_axis(mesh)))
    return jax.device_put(X, sharding), jax.device_put(Y, sharding), jax.device_put(w, w_sharding)


# --- multi-host --------------------------------------------------------------------------------


def host_slice(m_global: int, process_index: int, process_count: int) -> slice:
    """The columns of a global batch of m_global examples that one host loads.

    Host p of P gets the contiguous block ``[p m/P, (p+1) m/P)``: with the
    mesh over ``jax.devices()`` (ordered host by host), exactly the columns its
    own devices hold under ``P(None, "batch")``.

    Raises:
      ValueError: for a bad index/count, or m_global not divisible by P.

    Deprecated: the one multi-host recipe is ``fit(..., mesh=make_mesh(), local_data=True)``
    after ``jaxnn.distributed.initialize`` (each process passes only its own columns).

    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", DeprecationWarning)
    ...     host_slice(8, 1, 4)
    slice(2, 4, None)
    """
    deprecated("host_slice", "fit(..., mesh=make_mesh(), local_data=True) after jaxnn.distributed.initialize")
    for name, v in (("m_global", m_global), ("process_count", process_count)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise ValueError(f"host_slice: {name} = {v!r} must be a positive integer.")
    if isinstance(process_index, bool) or not isinstance(process_index, (int, np.integer)) \
            or not 0 <= process_index < process_count:
        raise ValueError(
            f"host_slice: process_index = {process_index!r} must be in 0..{process_count - 1} "
            "(jax.process_index())."
        )
    if m_global % process_count:
        raise ValueError(
            f"host_slice: the global batch m = {m_global} is not divisible by the "
            f"{process_count} hosts; use a global batch that is a multiple of the total device "
            "count (jax.device_count())."
        )
    per_host = m_global // process_count
    return slice(process_index * per_host, (process_index + 1) * per_host)


def shard_host_batch(X_local, Y_local, mesh: Mesh) -> tuple[Array, Array]:
    """Global (n_x, m) / (n_L, m) arrays from this host's columns (see ``host_slice``).

    X_local: (n_x, m/P), Y_local: (n_L, m/P) on each of the P hosts. On one
    host this is ``shard_batch``. Deprecated: use ``fit(..., local_data=True)``, or
    ``jaxnn.distributed.shard_columns_global`` for a global array of this process's columns.
    """
    deprecated("shard_host_batch", "fit(..., local_data=True) or jaxnn.distributed.shard_columns_global")
    D = _check_batch(X_local, Y_local, mesh)
    m_local = np.shape(X_local)[1]
    P_hosts = jax.process_count()
    m = m_local * P_hosts
    if m % D:
        raise ValueError(
            f"shard_host_batch: the global batch m = {m} ({m_local} per host x {P_hosts} hosts) "
            f"is not divisible by the {D} devices; pick a multiple of {D}."
        )
    sharding = batch_sharding(mesh)
    make = jax.make_array_from_process_local_data
    return (make(sharding, np.asarray(X_local), (np.shape(X_local)[0], m)),
            make(sharding, np.asarray(Y_local), (np.shape(Y_local)[0], m)))


__all__ = [
    "batch_sharding",
    "host_slice",
    "make_mesh",
    "mesh_axis",
    "n_devices",
    "pad_batch",
    "replicate",
    "replicated",
    "shard_batch",
    "shard_host_batch",
    "shard_padded_batch",
]
