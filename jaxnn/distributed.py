"""Training across several JAX processes (hosts) with ``jax.distributed``.

JAX is the distributed engine: every process runs the same program, and a
global ``jax.Array`` on a mesh over ``jax.devices()`` (the devices of ALL
processes) is assembled from the pieces each process holds on its own
devices (``jax.local_devices()``). jaxnn only starts the runtime and builds
those global arrays; XLA inserts the collectives (over gloo on CPU).

The pieces:

* ``initialize(coordinator_address, num_processes, process_id)``: the one
  place that starts ``jax.distributed`` (and selects gloo CPU collectives).
  With no arguments it reads ``JAXNN_COORDINATOR``, ``JAXNN_NUM_PROCESSES``
  and ``JAXNN_PROCESS_ID`` (set by ``scripts/launch_local.py``), else it
  lets JAX detect the cluster (Cloud TPU, SLURM, Open MPI).
* ``is_main_process()``, ``process_count()``: who prints and who writes files.
* ``replicate_global(tree, mesh)``: the same host values on every process ->
  global arrays fully replicated over the mesh (params, optimizer state).
* ``shard_columns_global(X, mesh, local=...)``: X: (n_x, m) -> a global array
  whose m columns are split over the mesh, from the full array on every
  process or from each process's own block of columns.
* ``check_same_across_processes(values, what)``: a cheap fingerprint of data
  and settings compared across processes; a ``ValueError`` on every process
  when they differ, instead of a collective that hangs or mixes data.
* ``to_local(tree)``: fully replicated global arrays -> ordinary arrays on
  this process's first device.

In one process all of these work too (the mesh is then this process's
devices), so code written for several hosts runs unchanged on a laptop.

A process that dies: every process sends heartbeats to the coordinator
(process 0). ``heartbeat_timeout_s`` after the last one, the coordinator
declares the process dead and the runtime stops the others with an error
that names the missing task; a collective waiting on the dead process
fails sooner, when its connection closes. Either way, no process waits
forever.
"""

from __future__ import annotations

import os
import re

import jax

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


def _as_int(name: str, value, source: str) -> int:
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
    P = _as_int("num_processes", given[1], source[1])
    p = _as_int("process_id", given[2], source[2])
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

    Call it first, before any other JAX call, with the same
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
      heartbeat_timeout_s: seconds without heartbeats after which a process counts as dead and the others stop with an error (None: JAX's default, 100 s).
      shutdown_timeout_s: seconds a finishing process waits at exit for the others (None: JAX's default, 300 s).
      initialization_timeout_s: seconds to wait for all processes to connect (None: JAX's default, 300 s).

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
        current = jax.distributed.global_state
        now = (current.coordinator_address, current.num_processes, current.process_id)
        if settings is None or tuple(settings) == now:
            return
        raise ValueError(f"initialize: this process already joined the run {now} "
                         f"(coordinator, processes, id); it cannot join {settings} as well.")
    if _cpu_may_be_used():
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
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


__all__ = [
    "ENV_COORDINATOR",
    "ENV_NUM_PROCESSES",
    "ENV_PROCESS_ID",
    "initialize",
    "is_main_process",
    "process_count",
]
