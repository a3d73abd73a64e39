"""``jaxnn train``'s run folder: what --out, --csv may be, and one run per folder.

``claim`` holds --out's lock (``jaxnn.checkpoint.lock``) for the run and refuses a folder
that already holds a run unless ``--resume`` continues it or ``--overwrite`` clears it;
``check_out`` and ``regular_file`` refuse a file, FIFO or device before any work (opening a
FIFO would wait for a writer forever); ``write_history`` turns an OS error into one line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from pathlib import Path

from jaxnn.cli import report


def kind(mode: int) -> str:
    return ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a device" if
            stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a folder" if stat.S_ISDIR(mode) else "a file")


def check_out(out: Path) -> None:
    """--out must be (or become) a folder: refuse a file, FIFO, device on the way before any work."""
    for p in (out, *out.parents):
        try:
            mode = os.stat(p).st_mode
        except (FileNotFoundError, NotADirectoryError):  # not there yet: look further up
            continue
        except OSError as e:
            raise ValueError(f"--out {out}: {p}: {e.strerror}.") from None
        if not stat.S_ISDIR(mode):
            raise ValueError(f"--out {out}: {p} is {kind(mode)}, not a folder; pass a folder "
                             "path (it is created if missing).")
        break


def regular_file(flag: str, path: str) -> None:
    """Refuse a FIFO or device before opening it: opening a FIFO would wait for a writer."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing or unreadable: the loader names it
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ValueError(f"{flag} {path}: it is {kind(mode)}, not a regular file; save the "
                         "data to a file and pass that.")


RUN_FILES = re.compile(r"LATEST|history\.json|ckpt-\d+\.npz")


def claim(out: Path, args, stack: contextlib.ExitStack) -> None:
    """Hold --out's lock for the run; refuse a folder holding another run unless told what to do.

    --resume continues the run there; --overwrite deletes its checkpoints, LATEST,
    history.json and curves.png first (other files stay).
    """
    from jaxnn import checkpoint

    check_out(out)
    try:
        stack.enter_context(checkpoint.lock(out))
    except checkpoint.FolderInUseError as e:
        who = f"process {e.pid}" if e.pid is not None else "another process"
        raise ValueError(f"--out {out}: folder {out} is being written by {who}; pass another "
                         "--out (or wait for that run to end).") from None
    except checkpoint.CheckpointError as e:
        raise ValueError(f"--out {out}: {e}") from None
    if args.resume:
        return
    found = sorted(p.name for p in out.iterdir() if RUN_FILES.fullmatch(p.name))
    if found and not args.overwrite:
        raise ValueError(f"--out {out} already holds a run ({', '.join(found[:3])}"
                         f"{', ...' if len(found) > 3 else ''}); pass --resume to continue it, "
                         "--overwrite to start afresh (deletes its checkpoints and history), "
                         "or another --out.")
    try:
        for name in (*found, "curves.png"):
            if os.path.lexists(out / name):
                (out / name).unlink()
    except OSError as e:
        raise ValueError(f"--overwrite: cannot delete {e.filename}: {e.strerror}.") from None


def write_history(history: dict, settings: dict, path: Path) -> None:
    try:
        report.write_history(history, settings, path)
    except OSError as e:
        raise ValueError(f"cannot write {path}: {e.strerror} ({errno.errorcode.get(e.errno, '?')})"
                         "; the newest checkpoint and the previous history.json are intact."
                         ) from None


__all__ = ["RUN_FILES", "check_out", "claim", "kind", "regular_file", "write_history"]
