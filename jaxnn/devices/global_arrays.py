"""Global arrays over a mesh that may span several processes' devices.

``jax.device_put`` refuses a sharding with devices of other processes; these
functions build the same global arrays from what each process holds (every
process the same full values, or each its own block), and turn fully
replicated global arrays back into ordinary ones. In one process each is the
ordinary transfer. Re-exported by ``jaxnn.distributed``.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxnn.devices.fingerprint import host_value, is_key, raise_if_different
from jaxnn.devices.mesh import mesh_axis


def _global_from_host(x, sharding):
    if getattr(x, "sharding", None) == sharding:
        return x
    if is_key(x):  # typed PRNG keys travel as their uint32 data
        data = _global_from_host(jax.random.key_data(x), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    if sharding.is_fully_addressable:  # one process: the ordinary transfer
        return jax.device_put(x, sharding)
    host = host_value(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def put_global(tree, sharding):
    """``jax.device_put`` onto a sharding whose devices may belong to other processes.

    Every process passes the same full values; each fills its own devices
    with their part (``jax.make_array_from_callback``), where
    ``jax.device_put`` refuses a non-addressable sharding. Any spec works:
    ``P()`` replicates, ``P(None, "batch")`` splits the columns. Leaves already
    on ``sharding`` are returned as they are; typed PRNG keys keep their type.
    In one process it is ``jax.device_put``.

    Args:
      tree: a pytree of arrays (numpy, jax, or fully replicated global arrays), the same on every process.
      sharding: where the leaves go, e.g. ``NamedSharding(mesh, P())`` on a mesh over all processes.

    Returns:
      The tree with every leaf a global ``jax.Array`` on ``sharding``.

    >>> mesh = jaxnn.make_mesh()
    >>> W = put_global(np.ones((3, 2)), NamedSharding(mesh, P()))
    >>> W.sharding.is_fully_replicated
    True
    """
    return jax.tree.map(lambda x: _global_from_host(x, sharding), tree)


def replicate_global(tree, mesh: Mesh):
    """The same host values on every process -> global arrays fully replicated over ``mesh``.

    Every process passes the same ``tree`` (params, optimizer state, a
    ``TrainState``, data to replicate); each process fills its own devices,
    so the mesh may span other processes' devices, where ``jax.device_put``
    refuses. Typed PRNG keys keep their type. In one process this is
    ``jaxnn.replicate``.

    Args:
      tree: a pytree of arrays (numpy, jax, or fully replicated global arrays), the same on every process.
      mesh: a 1-D mesh, e.g. ``jaxnn.make_mesh()`` over the devices of all processes.

    Returns:
      The tree with every leaf a ``jax.Array`` replicated on every device of ``mesh``.

    >>> params = replicate_global([{"W": np.ones((3, 2)), "b": np.zeros((3, 1))}], jaxnn.make_mesh())
    >>> params[0]["W"].sharding.is_fully_replicated, params[0]["W"].shape
    (True, (3, 2))
    """
    mesh_axis(mesh)
    return put_global(tree, NamedSharding(mesh, P()))


def _split_spec(ndim: int, axis: int, name: str) -> P:
    return P(*(name if d == axis else None for d in range(ndim)))


def shard_columns_global(X, mesh: Mesh, *, local: bool = False, axis: int = 1):
    """X: (n_x, m) -> a global array with its m columns split over the devices of ``mesh``.

    ``local=False``: every process passes the same full X (n_x, m) and each
    fills its own devices with their columns. ``local=True``: process p
    passes only its own contiguous block X_p: (n_x, m_p) with the same m_p
    on every process; the global X is their concatenation in process order,
    (n_x, P m_p), block p on process p's devices (``make_mesh`` lists the
    devices process by process). ``axis`` is the split dimension: 1 for the
    columns of (n_x, m), 0 for a leading axis (an example-major (m, n) array,
    a mask w: (m,), or the (E,) axis of an ensemble). A pytree of such arrays
    is split leaf by leaf. With ``local=True`` the block sizes are compared
    across processes first (a collective: every process calls it).

    Args:
      X: (n_x, m) (or a pytree of arrays), the full array, or with ``local=True`` this process's block.
      mesh: a 1-D mesh, e.g. ``jaxnn.make_mesh()`` over the devices of all processes.
      local: whether X is only this process's block of the split axis.
      axis: the dimension of X to split over the devices (1: columns, 0: rows).

    Returns:
      The global array(s), sharded ``P(None, name)`` for ``axis=1`` (``P(name, ...)`` for 0).

    Raises:
      ValueError: when the split dimension is not divisible by the mesh's D
        devices (``local=False``) or by this process's device count (``local=True``).

    >>> X = shard_columns_global(np.ones((2, 4 * jax.device_count())), jaxnn.make_mesh())
    >>> tuple(X.sharding.spec), X.shape[1] == 4 * jax.device_count()
    ((None, 'batch'), True)
    """
    name = mesh_axis(mesh)
    D = int(mesh.shape[name])
    P_procs = len({d.process_index for d in mesh.devices.flat})

    def one(x):
        host = host_value(x)
        if not 0 <= axis < host.ndim:
            raise ValueError(f"shard_columns_global: axis = {axis} is not a dimension of an "
                             f"array of shape {host.shape}.")
        sharding = NamedSharding(mesh, _split_spec(host.ndim, axis, name))
        size = host.shape[axis]
        if not local:
            if size % D:
                raise ValueError(
                    f"shard_columns_global: dimension {axis} has {size} entries, not divisible "
                    f"by the {D} devices of the mesh; use a multiple of {D} (pad with "
                    "jaxnn.pad_batch and a 0/1 mask)."
                )
            return _global_from_host(host, sharding)
        local_D = D // P_procs
        if size % local_D:
            raise ValueError(
                f"shard_columns_global(local=True): this process's block has {size} entries "
                f"along dimension {axis}, not divisible by its {local_D} devices."
            )
        shape = tuple(size * P_procs if d == axis else s for d, s in enumerate(host.shape))
        return jax.make_array_from_process_local_data(sharding, host, shape)

    if local:
        sizes = jax.tree.map(lambda x: np.shape(x)[axis] if np.ndim(x) > axis else -1, X)
        if jax.process_count() > 1:
            raise_if_different({"block sizes": sizes},
                               "block sizes for shard_columns_global(local=True) "
                               "(every process must pass the same number of columns)")
    return jax.tree.map(one, X)


def to_local(tree):
    """Global arrays -> ordinary arrays, whole, on this process's first device.

    A fully replicated leaf (trained params) is this process's own copy: no
    data moves. A leaf split over devices (an ensemble's models split over
    the processes) is gathered first, a collective: then every process must
    call ``to_local`` on the same tree. The result is usable as usual
    (printing, numpy, a jitted function on one device, saving). Leaves that
    are not ``jax.Array`` are returned unchanged.

    Args:
      tree: a pytree of global arrays (e.g. trained params).

    Returns:
      The same tree with whole single-device arrays.

    >>> params = to_local(replicate_global([{"W": np.ones((3, 2))}], jaxnn.make_mesh()))
    >>> len(params[0]["W"].devices())
    1
    """
    def one(x):
        if not isinstance(x, jax.Array) or len(x.devices()) == 1:
            return x
        if is_key(x):
            return jax.random.wrap_key_data(one(jax.random.key_data(x)),
                                            impl=jax.random.key_impl(x))
        if x.is_fully_replicated:
            return x.addressable_shards[0].data
        if x.is_fully_addressable:  # one process: a plain transfer gathers it
            return jax.device_put(x, jax.local_devices()[0])
        return jax.device_put(multihost_utils.process_allgather(x, tiled=True),
                              jax.local_devices()[0])

    from jaxnn.devices.processes import peer_loss_as_error  # processes imports this module

    with peer_loss_as_error():  # a gather from a vanished process: PeerLostError
        return jax.tree.map(one, tree)
