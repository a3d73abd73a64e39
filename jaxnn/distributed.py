"""Training across several JAX processes (hosts) with ``jax.distributed``.

Every process runs the same program. A global ``jax.Array`` on a mesh over
``jax.devices()`` (the devices of ALL processes) is assembled from what each
process puts on its own devices; XLA inserts the collectives (gloo on CPU).
jaxnn starts the runtime (``initialize``), builds those arrays
(``replicate_global``, ``shard_columns_global``), checks that the processes
agree (``check_same_across_processes``) and hands results back as ordinary
arrays (``to_local``). Process 0 prints and writes files
(``is_main_process``). All of it works in one process too.

A process that dies: the survivors stop by themselves, with the runtime's
error, within ``heartbeat_timeout_s`` of its last heartbeat ("Terminating
process because the JAX distributed service detected fatal errors. This most
likely indicates that another task died"), or sooner, with a gloo error, when
a collective's connection to the dead process closes (``peer_loss_as_error``
turns that one into a ``PeerLostError``). No process waits forever.

Tested (``tests/test_multiprocess.py``) with 2 processes x 2 forced CPU
devices on one machine, gloo over 127.0.0.1, started by
``scripts/launch_local.py``; not on several hosts, GPUs or TPUs.
"""

from __future__ import annotations

import contextlib
import os
import re

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxnn._fingerprint import host_value, is_key, raise_if_different

# The environment that scripts/launch_local.py sets and initialize() reads.
ENV_COORDINATOR = "JAXNN_COORDINATOR"
ENV_NUM_PROCESSES = "JAXNN_NUM_PROCESSES"
ENV_PROCESS_ID = "JAXNN_PROCESS_ID"

_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+):(\d{1,5})$")


def _check_address(address) -> str:
    """Return ``address`` if it is HOST:PORT (an IPv6 host in brackets), else raise."""
    match = _HOST_PORT.match(address) if isinstance(address, str) else None
    if match is None or not 0 < int(match.group(2)) < 65536:
        raise ValueError(
            f"coordinator_address = {address!r} must be HOST:PORT with a port in 1..65535, "
            "e.g. '10.0.0.1:1234' (process 0's address, a port free there), or "
            "'[::1]:1234' for IPv6."
        )
    return address


def _as_int(value, source: str) -> int:
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ValueError(f"{source} = {value!r} must be an integer.") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{source} = {value!r} must be an integer.")
    return value


def _settings_from(coordinator_address, num_processes, process_id):
    """The three settings from the arguments, else from the JAXNN_* environment."""
    given = (coordinator_address, num_processes, process_id)
    source = ("coordinator_address", "num_processes", "process_id")
    if all(v is None for v in given):
        env = tuple(os.environ.get(k) for k in (ENV_COORDINATOR, ENV_NUM_PROCESSES,
                                                 ENV_PROCESS_ID))
        if all(v is None for v in env):
            return None  # nothing given: JAX's own cluster detection
        given = env
        source = (ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID)
    missing = [s for s, v in zip(source, given) if v is None]
    if missing:
        raise ValueError(
            f"initialize: {', '.join(missing)} not given while "
            f"{', '.join(s for s, v in zip(source, given) if v is not None)} is: pass all three "
            "(coordinator_address='HOST:PORT', num_processes=P, process_id=0..P-1), or none of "
            "them to let JAX detect the cluster (Cloud TPU, SLURM, Open MPI)."
        )
    address = _check_address(given[0])
    P = _as_int(given[1], source[1])
    p = _as_int(given[2], source[2])
    if P < 1:
        raise ValueError(f"{source[1]} = {P} must be >= 1.")
    if not 0 <= p < P:
        raise ValueError(f"{source[2]} = {p} must be in 0..{P - 1} (one distinct id per process, "
                         f"{source[1]} = {P}).")
    return address, P, p


def _check_timeout(name: str, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 1:
        raise ValueError(f"{name} = {value!r} must be a number of seconds >= 1 (or None for "
                         "JAX's default).")
    return int(value)


def _cpu_may_be_used() -> bool:
    platforms = jax.config.jax_platforms or os.environ.get("JAX_PLATFORMS") or ""
    return not platforms or "cpu" in platforms.split(",")


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, heartbeat_timeout_s: float | None = None,
               shutdown_timeout_s: float | None = None,
               initialization_timeout_s: float | None = None) -> None:
    """Join a run of several processes: ``jax.distributed.initialize``, gloo on CPU.

    After ``heartbeat_timeout_s`` without a heartbeat from a process, the
    others stop with an error that says a task died (see the module
    docstring). Call it first, before any other JAX call, with the same
    ``coordinator_address`` and ``num_processes`` on every process and a
    distinct ``process_id``. With all three None it reads the environment
    variables ``JAXNN_COORDINATOR``, ``JAXNN_NUM_PROCESSES`` and
    ``JAXNN_PROCESS_ID`` (``scripts/launch_local.py`` sets them); when those
    are unset too, JAX detects the cluster (Cloud TPU, SLURM, Open MPI).
    When the CPU platform may be used, it selects gloo CPU collectives
    (``jax_cpu_collectives_implementation``), which CPU devices of several
    processes need to all-reduce. Calling it again with the same settings
    does nothing.

    Args:
      coordinator_address: HOST:PORT of process 0 (a free port there), e.g. ``"10.0.0.1:1234"``.
      num_processes: P, the number of processes in the run.
      process_id: this process's id, 0..P-1; process 0 hosts the coordinator.
      heartbeat_timeout_s: seconds of silence after which a process counts as dead (JAX's default: 100).
      shutdown_timeout_s: seconds a finishing process waits at exit for the others (default 300).
      initialization_timeout_s: seconds to wait for all processes to connect (default 300).

    Raises:
      ValueError: for a malformed HOST:PORT, process_id outside 0..P-1, some
        but not all of the three settings, a bad timeout, a second call with
        other settings, or a call after JAX has already started computing.

    >>> import jaxnn.distributed as dist
    >>> dist.initialize("localhost:port", 2, 0)
    Traceback (most recent call last):
    ...
    ValueError: coordinator_address = 'localhost:port' must be HOST:PORT ...
    >>> dist.initialize("127.0.0.1:1234", 2, 2)
    Traceback (most recent call last):
    ...
    ValueError: process_id = 2 must be in 0..1 ...
    """
    settings = _settings_from(coordinator_address, num_processes, process_id)
    timeouts = {
        "heartbeat_timeout_seconds": _check_timeout("heartbeat_timeout_s", heartbeat_timeout_s),
        "shutdown_timeout_seconds": _check_timeout("shutdown_timeout_s", shutdown_timeout_s),
        "initialization_timeout": _check_timeout("initialization_timeout_s",
                                                 initialization_timeout_s),
    }
    kwargs = {k: v for k, v in timeouts.items() if v is not None}
    if jax.distributed.is_initialized():
        now = (jax.process_count(), jax.process_index())
        if settings is None or tuple(settings[1:]) == now:
            return
        raise ValueError(f"initialize: this process already joined a run as process {now[1]} of "
                         f"{now[0]}; it cannot join another as process {settings[2]} of "
                         f"{settings[1]}.")
    if settings is not None:
        address, P, p = settings
        kwargs.update(coordinator_address=address, num_processes=P, process_id=p)
    try:
        jax.distributed.initialize(**kwargs)
    except RuntimeError as e:
        if "before any JAX calls" in str(e):
            raise ValueError(
                "initialize must run before any other JAX call (an array, jax.devices(), a "
                "jitted function ...): call jaxnn.distributed.initialize() first thing in the "
                "program."
            ) from None
        raise
    except ValueError as e:
        if settings is None:
            raise ValueError(
                f"initialize: no settings given and none detected ({e}). Pass "
                "coordinator_address, num_processes and process_id, set JAXNN_COORDINATOR, "
                "JAXNN_NUM_PROCESSES and JAXNN_PROCESS_ID, or run under Cloud TPU, SLURM or "
                "Open MPI."
            ) from None
        raise
    if _cpu_may_be_used():  # read when the CPU backend starts, i.e. after this call
        jax.config.update("jax_cpu_collectives_implementation", "gloo")


def requested_by_environment() -> bool:
    """Whether the environment names a coordinator: ``JAXNN_COORDINATOR`` or ``JAX_COORDINATOR_ADDRESS``.

    Programs (``jaxnn train``, scripts) call ``initialize()`` when this is
    True, so one command runs alone or, started by
    ``scripts/launch_local.py``, as one of several processes. Cluster
    auto-detection (Cloud TPU, SLURM, Open MPI) is not covered: there, call
    ``initialize()`` unconditionally.

    >>> import os
    >>> names = ("JAXNN_COORDINATOR", "JAX_COORDINATOR_ADDRESS")
    >>> requested_by_environment() == any(os.environ.get(k) for k in names)
    True
    """
    return bool(os.environ.get(ENV_COORDINATOR) or os.environ.get("JAX_COORDINATOR_ADDRESS"))


def process_count() -> int:
    """P, the number of processes in the run (1 without ``initialize``).

    >>> jaxnn.distributed.process_count() >= 1
    True
    """
    return jax.process_count()


def is_main_process() -> bool:
    """True on process 0, the one that prints tables and writes files.

    >>> jaxnn.distributed.is_main_process()  # one process: it is the main one
    True
    """
    return jax.process_index() == 0


# --- a process that dies ----------------------------------------------------------------------

# what the runtime's errors say when a peer process is gone
_PEER_LOST = re.compile(r"gloo|connection (reset|closed|refused)|heartbeat|unavailable|"
                        r"deadline_exceeded|task died", re.I)


def barrier(name: str) -> None:
    """Wait until every process has reached the barrier called ``name`` (no-op in one process).

    Args:
      name: the barrier's name, the same on every process.

    >>> barrier("one process: returns at once")
    """
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


class PeerLostError(RuntimeError):
    """Another process of the run died, was killed or stopped answering."""


@contextlib.contextmanager
def peer_loss_as_error():
    """Turn the runtime's error for a vanished peer process into a ``PeerLostError``.

    Wrap the calls that run collectives (a training epoch). When another
    process dies, the collectives waiting on it fail with a gloo or
    coordination-service error ("Connection reset by peer", "heartbeat
    timeout"); this re-raises it as ``PeerLostError`` with one plain
    sentence. Other errors, and everything in one process, pass unchanged.
    (If the runtime's heartbeat check fires first, it ends the process
    itself, with its own message: see the module docstring.)

    Raises:
      PeerLostError: a collective failed because another process is gone.

    >>> with peer_loss_as_error():
    ...     total = int(jnp.sum(jnp.ones(3)))
    >>> total
    3
    """
    try:
        yield
    except jax.errors.JaxRuntimeError as e:
        if jax.process_count() == 1 or not _PEER_LOST.search(str(e)):
            raise
        first = str(e).strip().splitlines()[0][:300]
        raise PeerLostError(
            f"process {jax.process_index()} of {jax.process_count()}: another process of the "
            f"run died, was killed or stopped answering, so a collective failed ({first}). "
            "See the other processes' output for the cause; this process stops too."
        ) from e


# --- global arrays ---------------------------------------------------------------------------


def _mesh_axis(mesh) -> str:
    if not isinstance(mesh, Mesh) or len(mesh.axis_names) != 1:
        raise ValueError(f"mesh must be a 1-D jax.sharding.Mesh (jaxnn.make_mesh()), got {mesh!r}.")
    return mesh.axis_names[0]


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
    _mesh_axis(mesh)
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
    name = _mesh_axis(mesh)
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
        check_same_across_processes({"block sizes": sizes},
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

    return jax.tree.map(one, tree)


# --- agreement across processes ----------------------------------------------------------------


def check_same_across_processes(name_to_value: dict, what: str) -> None:
    """Raise on every process when the processes pass different data or settings.

    Every value (array, pytree of arrays, or setting) is reduced to a cheap
    fingerprint: for arrays the shape, dtype, the float64 sum and a crc32 of
    the bytes; for other values their ``repr`` (functions by name). The
    fingerprints are gathered across processes (two small collectives) and
    compared; the ``ValueError`` is raised on EVERY process, so none goes on
    into a collective that would wait for the others. Call it before
    training, with the same names on every process. In one process it
    returns at once.

    Args:
      name_to_value: names -> the values that must agree (e.g. ``{"X": X, "Y": Y, "epochs": 3}``).
      what: what the values are, for the message (e.g. ``"fit's data and settings"``).

    Raises:
      ValueError: naming each value that differs and which processes hold which version.

    >>> check_same_across_processes({"X": np.ones((2, 4)), "epochs": 3}, "the data")  # one process
    """
    if not isinstance(name_to_value, dict):
        raise ValueError(f"name_to_value must be a dict of names to values, got "
                         f"{type(name_to_value).__name__}.")
    if jax.process_count() == 1:
        return
    raise_if_different(name_to_value, what)


__all__ = [
    "ENV_COORDINATOR",
    "ENV_NUM_PROCESSES",
    "ENV_PROCESS_ID",
    "PeerLostError",
    "barrier",
    "check_same_across_processes",
    "initialize",
    "is_main_process",
    "peer_loss_as_error",
    "process_count",
    "put_global",
    "replicate_global",
    "requested_by_environment",
    "shard_columns_global",
    "to_local",
]
