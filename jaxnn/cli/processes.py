"""``jaxnn train`` across processes: start-up from the flags, the same flags everywhere, and
a clean exit past the runtime's shutdown barrier after a lost peer or a start-up timeout.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def join_processes(args) -> None:
    """jaxnn.distributed.initialize from the flags or the environment (before any JAX work)."""
    from jaxnn import distributed

    flags = {"--coordinator": args.coordinator, "--num-processes": args.num_processes,
             "--process-id": args.process_id}
    given = [f for f, v in flags.items() if v is not None]
    if given and len(given) < 3:
        raise ValueError(f"{', '.join(given)} needs {', '.join(f for f in flags if f not in given)} too: "
                         "pass all three, the same --coordinator HOST:PORT and --num-processes "
                         "P on every process, and --process-id 0..P-1.")
    if given and args.process_id >= args.num_processes:
        raise ValueError(f"--process-id {args.process_id}: expected 0..{args.num_processes - 1} "
                         f"(--num-processes {args.num_processes}).")
    if not (given or args.distributed or os.environ.get(distributed.ENV_COORDINATOR)):
        return
    try:
        # 30 s without a heartbeat: a dead process stops the others well before JAX's default 100 s
        distributed.initialize(args.coordinator, args.num_processes, args.process_id,
                               heartbeat_timeout_s=30, startup_timeout_s=args.startup_timeout)
    except ValueError as e:
        line = (f"jaxnn train: error: {'--coordinator' if given else '--distributed'}: "
                + " ".join(str(e).replace("startup_timeout_s", "--startup-timeout").split()))
        import jax

        if jax.distributed.is_initialized():  # timed out: the runtime's exit would wait, abort
            leave(line, 2)
        raise ValueError(line.split(": error: ", 1)[1]) from None


def leave(line: str, status: int) -> None:
    """Print one line and end the process at once, past the runtime's shutdown barrier.

    After a lost peer or a start-up that timed out, JAX's exit handler waits
    for every process of the run and then aborts with a C++ stack trace.
    """
    sys.stdout.flush()
    print(line, file=sys.stderr, flush=True)
    os._exit(status)


def same_flags_everywhere(s: dict, args, out: Path) -> None:
    """Several processes: every setting the same on each, else the same one-line error on all."""
    from jaxnn import distributed

    if distributed.process_count() > 1:
        flags = {f"--{k.replace('_', '-')}": v for k, v in sorted(s.items())}
        flags |= {"--save-every": args.save_every, "--keep": args.keep, "--resume": args.resume,
                  "--overwrite": getattr(args, "overwrite", False), "--out": str(out)}
        distributed.check_same_across_processes(flags, "the flags of jaxnn train")


__all__ = ["join_processes", "leave", "same_flags_everywhere"]
