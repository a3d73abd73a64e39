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

Start-up is bounded too (``jaxnn.devices.startup``): a coordinator port
that another program holds, and a run whose processes have not all joined
within ``startup_timeout_s``, raise one ``ValueError`` that says what to check.

Tested (``tests/test_multiprocess.py``) with 2 processes x 2 forced CPU
devices on one machine, gloo over 127.0.0.1, started by
``scripts/launch_local.py``; not on several hosts, GPUs or TPUs.
"""

from __future__ import annotations

import contextlib
import os
import re

import jax

from jaxnn.devices import startup as startup_module
from jaxnn.devices.fingerprint import raise_if_different
from jaxnn.devices.global_arrays import put_global, replicate_global, shard_columns_global, to_local

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
               shutdown_timeout_s: float | None = None, startup_timeout_s: float = 60,
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

    Start-up is bounded (``jaxnn.devices.startup``): process 0 first checks
    that the coordinator's port is free, and a run that has not started
    after ``startup_timeout_s`` (a process missing, a wrong address) raises
    a ``ValueError`` on each process that waited, saying how many processes
    joined where that is knowable and what to check. The runtime's
    connection attempt cannot be cancelled: after that error, end the process.

    Args:
      coordinator_address: HOST:PORT of process 0 (a free port there), e.g. ``"10.0.0.1:1234"``.
      num_processes: P, the number of processes in the run.
      process_id: this process's id, 0..P-1; process 0 hosts the coordinator.
      heartbeat_timeout_s: seconds of silence after which a process counts as dead (JAX's default: 100).
      shutdown_timeout_s: seconds a finishing process waits at exit for the others (default 300).
      startup_timeout_s: seconds to wait for every process to join (default 60).
      initialization_timeout_s: the former name of ``startup_timeout_s`` (used when that is left at 60).

    Raises:
      ValueError: for a malformed HOST:PORT, process_id outside 0..P-1, some
        but not all of the three settings, a bad timeout, a taken coordinator
        port, a run not started within ``startup_timeout_s``, a second call
        with other settings, or a call after JAX has already started computing.

    >>> import jaxnn.devices.processes as dist
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
    if initialization_timeout_s is not None and startup_timeout_s == 60:
        startup_timeout_s = initialization_timeout_s
    startup = _check_timeout("startup_timeout_s", startup_timeout_s) or 300  # None: JAX's 300 s
    kwargs = {
        "heartbeat_timeout_seconds": _check_timeout("heartbeat_timeout_s", heartbeat_timeout_s),
        "shutdown_timeout_seconds": _check_timeout("shutdown_timeout_s", shutdown_timeout_s),
        # the runtime's own limit ends the process with an abort: ours comes first
        "initialization_timeout": startup + 60,
    }
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
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
        if p == 0 and P > 1:
            bind = os.environ.get("JAX_COORDINATOR_BIND_ADDRESS") or f"[::]:{address.rsplit(':', 1)[1]}"
            startup_module.check_port_free(bind)
    try:
        joined = startup_module.join_within(lambda: jax.distributed.initialize(**kwargs), startup)
    except RuntimeError as e:
        if "before any JAX calls" in str(e):
            raise ValueError(
                "initialize must run before any other JAX call (an array, jax.devices(), a "
                "jitted function ...): call jaxnn.distributed.initialize() first thing in the "
                "program."
            ) from None
        if settings is not None and "Failed to start RPC server" in str(e):  # a port taken since
            startup_module.check_port_free(f"[::]:{settings[0].rsplit(':', 1)[1]}")
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
    if not joined:
        raise ValueError("initialize: " + (
            startup_module.timeout_message(*settings, startup) if settings is not None else
            f"the run that JAX detected did not start within {startup} s: check that every "
            "process was started, or allow more time (startup_timeout_s)."))
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
_STATUS = re.compile(r"(UNKNOWN|UNAVAILABLE|DEADLINE_EXCEEDED|INTERNAL|ABORTED|CANCELLED): ")


def barrier(name: str) -> None:
    """Wait until every process has reached the barrier called ``name`` (no-op in one process).

    Args:
      name: the barrier's name, the same on every process.

    >>> barrier("one process: returns at once")
    """
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        with peer_loss_as_error():
            multihost_utils.sync_global_devices(name)


class PeerLostError(RuntimeError):
    """Another process of the run died, was killed or stopped answering.

    The runtime's exit handler waits for every process of the run (its
    shutdown barrier) and aborts when one is gone: a program that stops on
    this error should print it and leave with ``os._exit(1)`` after flushing
    its output, as ``jaxnn train`` does.
    """


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
    except (jax.errors.JaxRuntimeError, ValueError) as e:
        # a collective of a jitted call may surface as a ValueError holding the runtime's status
        runtime = isinstance(e, jax.errors.JaxRuntimeError) or _STATUS.match(str(e))
        if jax.process_count() == 1 or not runtime or not _PEER_LOST.search(str(e)):
            raise
        first = str(e).strip().splitlines()[0][:300]
        raise PeerLostError(
            f"process {jax.process_index()} of {jax.process_count()}: another process of the "
            f"run died, was killed or stopped answering, so a collective failed ({first}). "
            "See the other processes' output for the cause; this process stops too."
        ) from e


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
    with peer_loss_as_error():
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
