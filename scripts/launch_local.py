"""Start P local processes of one command as a multi-process JAX run, on one machine.

    python scripts/launch_local.py -n 2 --devices-per-process 2 -- \\
        jaxnn train --dataset digits --epochs 3
    python scripts/launch_local.py -n 2 -- python my_script.py

Each process gets the environment that ``jaxnn.distributed.initialize()``
reads when called without arguments:

* ``JAXNN_COORDINATOR=127.0.0.1:PORT`` (a free port picked here, or ``--port``),
  ``JAXNN_NUM_PROCESSES=P``, ``JAXNN_PROCESS_ID=i``;
* with ``--devices-per-process K``: ``JAX_PLATFORMS=cpu`` and
  ``XLA_FLAGS=--xla_force_host_platform_device_count=K`` (K CPU devices per
  process, P K in all; other XLA_FLAGS are kept).

The command is the same for every process, so a script calls
``jaxnn.distributed.initialize()`` first thing and needs no flags. Each output
line is prefixed with ``[i]``, the process id. When a process fails, the
others get ``--grace`` seconds to stop by themselves (the survivors of a dead
peer stop within their heartbeat timeout), then all are killed; the same
after ``--timeout`` seconds in all. The exit status is the worst of the
processes that ended by themselves (128+N for one killed by signal N), or
124 on timeout.

On real hosts, do not use this script: run the same command on every host,
with ``JAXNN_COORDINATOR=<host 0>:PORT JAXNN_NUM_PROCESSES=P JAXNN_PROCESS_ID=i``
(or ``jaxnn train --coordinator HOST:PORT --num-processes P --process-id i``).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time

TIMEOUT_STATUS = 124


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def process_env(i: int, n: int, address: str, devices: int | None, base=None) -> dict:
    """The environment of process i of n (see the module docstring)."""
    env = dict(os.environ if base is None else base)
    env.update(JAXNN_COORDINATOR=address, JAXNN_NUM_PROCESSES=str(n), JAXNN_PROCESS_ID=str(i),
               PYTHONUNBUFFERED="1")
    if devices is not None:
        flags = [f for f in env.get("XLA_FLAGS", "").split()
                 if not f.startswith("--xla_force_host_platform_device_count")]
        env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"])
        env["JAX_PLATFORMS"] = "cpu"
    return env


def _pump(i: int, stream, lock: threading.Lock) -> None:
    for line in iter(stream.readline, b""):
        with lock:
            sys.stdout.buffer.write(f"[{i}] ".encode() + line)
            sys.stdout.buffer.flush()
    stream.close()


def _status(code: int) -> int:
    return 128 - code if code < 0 else code


def _kill(procs) -> set[int]:
    """SIGKILL the processes still running (and what they started); returns their indices."""
    killed = set()
    for i, p in enumerate(procs):
        if p.poll() is None:
            killed.add(i)
            try:
                os.killpg(p.pid, signal.SIGKILL)  # its group: also what it started itself
            except ProcessLookupError:
                pass
    return killed


def launch(command, n: int, *, devices: int | None = None, timeout: float | None = None,
           grace: float = 5.0, host: str = "127.0.0.1", port: int | None = None) -> int:
    """Run ``command`` as processes 0..n-1; returns the worst exit status."""
    address = f"{host}:{port or free_port(host)}"
    lock = threading.Lock()
    procs, pumps = [], []
    for i in range(n):
        p = subprocess.Popen(command, env=process_env(i, n, address, devices),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        procs.append(p)
        t = threading.Thread(target=_pump, args=(i, p.stdout, lock), daemon=True)
        t.start()
        pumps.append(t)

    def stop(signum, frame):
        _kill(procs)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    start, first_failure, timed_out = time.monotonic(), None, False
    try:
        while any(p.poll() is None for p in procs):
            now = time.monotonic()
            failed = [i for i, p in enumerate(procs) if p.poll() not in (None, 0)]
            if first_failure is None and failed:
                first_failure = now
                with lock:
                    print(f"[launch] process {failed[0]} failed first (exit status "
                          f"{_status(procs[failed[0]].returncode)}); waiting up to {grace:g} s "
                          "for the others to stop", flush=True)
            if timeout is not None and now - start > timeout:
                timed_out = True
                with lock:
                    print(f"[launch] timeout after {timeout:g} s: killing the processes still "
                          "running", flush=True)
                break
            if first_failure is not None and now - first_failure > grace:
                with lock:
                    print(f"[launch] a process failed; killing the others after {grace:g} s",
                          flush=True)
                break
            time.sleep(0.05)
    finally:
        killed = _kill(procs)
    for p, t in zip(procs, pumps):
        p.wait()
        t.join(timeout=5)
    codes = [_status(p.returncode) for p in procs]
    with lock:
        print(f"[launch] exit status per process: {codes}", flush=True)
    if timed_out:
        return TIMEOUT_STATUS
    # the processes killed here only followed a failure: report the failures themselves
    return max(c for i, c in enumerate(codes) if i not in killed)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Run a command as P local processes of one jax.distributed run.",
        usage="%(prog)s [-n P] [--devices-per-process K] [options] -- command ...")
    parser.add_argument("-n", "--num-processes", type=int, default=2, help="P (default 2)")
    parser.add_argument("--devices-per-process", type=int, default=None, metavar="K",
                        help="K forced CPU devices per process (JAX_PLATFORMS=cpu)")
    parser.add_argument("--timeout", type=float, default=None, metavar="S",
                        help="kill every process after S seconds (exit status 124)")
    parser.add_argument("--grace", type=float, default=5.0, metavar="S",
                        help="after a process fails, seconds before the others are killed")
    parser.add_argument("--port", type=int, default=None, help="coordinator port (default: free)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command: put it after --, e.g. -- python my_script.py")
    if args.num_processes < 1:
        parser.error(f"-n {args.num_processes}: the number of processes must be >= 1")
    if args.devices_per_process is not None and args.devices_per_process < 1:
        parser.error(f"--devices-per-process {args.devices_per_process} must be >= 1")
    if args.port is not None and not 0 < args.port < 65536:
        parser.error(f"--port {args.port} must be in 1..65535")
    return launch(command, args.num_processes, devices=args.devices_per_process,
                  timeout=args.timeout, grace=args.grace, port=args.port)


if __name__ == "__main__":
    sys.exit(main())
