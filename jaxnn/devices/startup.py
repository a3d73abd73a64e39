"""Bounded start-up of a multi-process run: a taken port and a missing process as one clear error.

``jax.distributed.initialize`` waits up to its ``initialization_timeout``
(300 s by default) for every process to connect, then ends the process with
a C++ abort; a coordinator port that another program holds gives a raw
"Failed to start RPC server" while the other processes wait. jaxnn's
``initialize`` (``jaxnn.distributed``) instead checks the port first
(``check_port_free``, on process 0), joins in a helper thread
(``join_within``) and, after ``startup_timeout_s``, raises a ``ValueError``
that says how many processes joined, where that is knowable
(``count_joined``), and what to check (``timeout_message``).

The runtime's own connection attempt cannot be cancelled: after a time-out it
goes on in its daemon thread, so the process should end (the ``jaxnn``
command leaves with ``os._exit``, skipping the runtime's shutdown wait).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable


def _host_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host.strip("[]"), int(port)


def check_port_free(bind_address: str) -> None:
    """Raise a ``ValueError`` when the coordinator could not listen on ``bind_address`` (HOST:PORT).

    The coordinator binds all interfaces (``[::]:PORT``, JAX's default) with
    ``SO_REUSEADDR``; so does this test bind, so a port left in TIME_WAIT by
    an earlier run passes while one that a program holds does not.

    Args:
      bind_address: HOST:PORT the coordinator will bind, e.g. ``"[::]:1234"``.

    Raises:
      ValueError: naming the port and what to do (another port, or end the program that holds it).

    >>> with socket.socket() as s:
    ...     s.bind(("127.0.0.1", 0)); s.listen()
    ...     check_port_free(f"[::]:{s.getsockname()[1]}")
    Traceback (most recent call last):
    ...
    ValueError: the coordinator's port ... is taken ...
    """
    host, port = _host_port(bind_address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        probe = socket.socket(family, socket.SOCK_STREAM)
    except OSError:  # no IPv6 on this host: the coordinator falls back to IPv4 too
        host, probe = "0.0.0.0", socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            raise ValueError(
                f"the coordinator's port {port} is taken on this host ({e.strerror or e}): "
                f"another program (or an earlier run still going) holds it. Pick a free port "
                f"in the coordinator address on every process, or end that program."
            ) from None


def count_joined(port: int) -> int | None:
    """How many processes hold a connection to the coordinator on ``port`` of this host.

    Each process's runtime client keeps one TCP connection to the
    coordinator; process 0's host sees them all as ESTABLISHED connections to
    its local ``port`` (in ``/proc/net/tcp`` and ``tcp6``). None where that
    table cannot be read (not Linux).

    Args:
      port: the coordinator's port.

    >>> count_joined(1) in (0, None)  # nothing listens on port 1
    True
    """
    count = 0
    try:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as f:
                for line in f.read().splitlines()[1:]:
                    local, _, state = line.split()[1:4]
                    count += int(local.rsplit(":", 1)[1], 16) == port and state == "01"
    except (OSError, ValueError, IndexError):
        return None
    return count


def answers(address: str, timeout: float = 2.0) -> bool:
    """Whether something accepts TCP connections at HOST:PORT (``address``).

    Args:
      address: HOST:PORT.
      timeout: seconds to wait for the connection.

    >>> answers("127.0.0.1:1")
    False
    """
    host, port = _host_port(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def join_within(connect: Callable[[], None], timeout_s: float) -> bool:
    """Run ``connect()`` in a daemon thread; False if it has not returned after ``timeout_s``.

    An exception of ``connect`` is raised here, in the caller's thread.

    Args:
      connect: the blocking call (``jax.distributed.initialize`` with its arguments).
      timeout_s: seconds to wait.

    >>> join_within(lambda: None, 1.0)
    True
    """
    box: dict = {}

    def run():
        try:
            connect()
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e

    thread = threading.Thread(target=run, name="jaxnn-distributed-startup", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        return False
    if "error" in box:
        raise box["error"]
    return True


def timeout_message(address: str, P: int, p: int, timeout_s: float) -> str:
    """What a process that waited ``timeout_s`` for the run to start says: who joined, what to check.

    Process 0 counts the connections to its coordinator (``count_joined``);
    another process says whether anything answers at the address (``answers``).

    Args:
      address: the coordinator's HOST:PORT.
      P: the number of processes of the run.
      p: this process's id.
      timeout_s: the seconds waited.

    >>> print(timeout_message("127.0.0.1:1", 2, 1, 10))
    process 1 of 2 could not join the run at 127.0.0.1:1 within 10 s: nothing accepts ...
    """
    check = (f"Check that all {P} processes are started, with the same coordinator address "
             f"and process count and the ids 0..{P - 1}, that {address} is process 0's host "
             "and reachable from every host, or allow more time (startup_timeout_s).")
    if p == 0:
        n = count_joined(_host_port(address)[1])
        who = ("not all of them joined" if n is None or n >= P else
               f"{n} of {P} processes joined (this one included)")
        return (f"process 0 of {P} waited {timeout_s:g} s at the coordinator {address} for the "
                f"run to start, and {who}. {check}")
    if answers(address):
        why = (f"something accepts connections there, but the run did not start: not all {P} "
               "processes joined, or the port belongs to another program")
    else:
        why = "nothing accepts connections there: process 0 (the coordinator) is not running"
    return (f"process {p} of {P} could not join the run at {address} within {timeout_s:g} s: "
            f"{why}. {check}")
