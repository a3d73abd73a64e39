"""A run folder's safety: one writer at a time, atomic file writes, and OS errors named.

One writer per folder (checkpoints, ``history.json``): :func:`lock` takes an
exclusive ``fcntl.flock`` on the folder's lock file (:data:`LOCK_NAME`), which
holds the writer's process id. A second process asking for it is refused at
once with :class:`FolderInUseError` naming the folder and that process. The
kernel drops the lock when its process ends, however it ends (even SIGKILL),
so a dead writer's lock is recovered by the next one; a clean release deletes
the lock file. A process that holds the lock may take it again (the count is
per process), so ``jaxnn train`` holds it for the whole run while each
``checkpoint.save`` inside the run takes it once more.

Atomic writes (:func:`atomic_write`): the bytes go to a temporary file beside
the target, named ``.<name>.<pid>.<random>.tmp``, are fsynced, then
``os.replace``-d over the target, so a reader (or a crash) sees the old file
or the new one, never a torn one. The pid in the name tells whose temporary
file it is: :func:`stale_temps` lists only those of this process (not being
written now) or of processes that no longer run, never a live writer's.

The lock and the process ids work on one machine's file system; a folder
shared over a network file system between hosts is not protected, and where
``fcntl`` does not exist (Windows) the lock is not taken.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
import time
from pathlib import Path

from jaxnn.train.checkpoint_format import CheckpointError

try:
    import fcntl
except ImportError:  # Windows: no flock; saves stay atomic, one writer is not enforced
    fcntl = None

__all__ = ["LOCK_NAME", "FolderInUseError", "lock", "atomic_write", "stale_temps", "os_reason"]

LOCK_NAME = ".jaxnn-lock"
# .<name>.<pid>.<random>.tmp (tempfile's random part has no dots); older jaxnn wrote no pid
_TEMP = re.compile(r"\.(?P<name>.+?)\.(?:(?P<pid>\d+)\.)?[A-Za-z0-9_]+\.tmp")
_held: dict[str, list] = {}  # folder -> [fd, count, pid] of the locks this process holds
_writing: set[str] = set()  # temporary files this process is writing now


class FolderInUseError(CheckpointError):
    """Another live process holds the folder's lock: one writer per folder.

    Attributes: ``folder`` (the Path) and ``pid`` (the other process's id, or None if unknown).
    """

    def __init__(self, message: str, folder: Path, pid: int | None):
        super().__init__(message)
        self.folder, self.pid = folder, pid


def os_reason(err: OSError) -> str:
    """An ``OSError`` in words: the system's text and the errno name.

    Args:
      err: the error.

    Returns:
      e.g. ``"No space left on device (ENOSPC)"``.

    >>> os_reason(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    'No space left on device (ENOSPC)'
    """
    name = errno.errorcode.get(err.errno or 0)
    text = err.strerror or str(err) or type(err).__name__
    return f"{text} ({name})" if name else text


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def _holder(fd: int) -> int | None:
    """The pid the lock's holder wrote into the file (it writes right after locking)."""
    for _ in range(20):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return int(text)
        time.sleep(0.01)
    return None


def _acquire(folder: Path, lock_path: Path) -> int:
    """An fd holding the flock of lock_path (the file the path names now, not an unlinked one)."""
    for _ in range(100):
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            who = f"process {pid}" if pid is not None else "another process"
            raise FolderInUseError(
                f"folder {folder} is being written by {who} (it holds {lock_path}); one "
                "writer per folder: pass another folder, or wait for that run to end.",
                folder, pid) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
        except FileNotFoundError:
            same = False
        if same:
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            except BaseException:  # e.g. a full disk: let go of the lock again
                os.close(fd)
                raise
            return fd
        os.close(fd)  # the previous holder deleted this file as we opened it: take the new one
    raise CheckpointError(f"cannot take the lock {lock_path}: it keeps being replaced.")


class lock:  # noqa: N801 (used like a function: ``with lock(folder):``)
    """Hold ``folder``'s writer lock for a ``with`` block (creating the folder if missing).

    Re-entrant within a process. On leaving the block the lock is released (the
    lock file deleted) when this process's count drops to 0, and a folder the
    lock created that is still empty is removed again.

    Args:
      folder: the run or checkpoint folder.

    Raises:
      FolderInUseError: another live process holds the lock.
      CheckpointError: the folder cannot be created or the lock file written
        (read-only, a file on the way, ...), naming the path and the OS reason.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     with lock(d):
    ...         print(sorted(p.name for p in Path(d).iterdir()))
    ...     print(sorted(p.name for p in Path(d).iterdir()))
    ['.jaxnn-lock']
    []
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self._created = False

    def __enter__(self):
        key = os.path.abspath(self.folder)
        held = _held.get(key)
        if held is not None and held[2] == os.getpid():
            held[1] += 1
            return self
        try:
            if not self.folder.is_dir():
                self._created = not os.path.lexists(self.folder)
                self.folder.mkdir(parents=True, exist_ok=True)
            fd = None if fcntl is None else _acquire(self.folder, self.folder / LOCK_NAME)
        except OSError as err:
            raise CheckpointError(f"cannot write in folder {self.folder}: "
                                  f"{_why_not_folder(self.folder, err)}.") from None
        _held[key] = [fd, 1, os.getpid()]
        return self

    def __exit__(self, *exc):
        key = os.path.abspath(self.folder)
        held = _held[key]
        held[1] -= 1
        if held[1] == 0:
            del _held[key]
            try:  # delete while holding it: a waiter then retries on a new file (see _acquire)
                if held[0] is not None:
                    os.unlink(self.folder / LOCK_NAME)
                if self._created:
                    self.folder.rmdir()  # fails, as it should, unless still empty
            except OSError:
                pass
            finally:
                if held[0] is not None:
                    os.close(held[0])
        return False


def _why_not_folder(folder: Path, err: OSError) -> str:
    """The OS reason, made plain for the cases where the bare errno misleads."""
    if isinstance(err, FileExistsError) or err.errno in (errno.ENOTDIR, errno.ELOOP):
        for p in (folder, *folder.parents):
            try:
                os.stat(p)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    return f"{p} is a symbolic link loop ({os_reason(e)})"
                if os.path.islink(p) and e.errno == errno.ENOENT:
                    return f"{p} is a symbolic link to a missing target"
                continue
            if not p.is_dir():
                return f"{p} is a file, not a folder ({os_reason(err)})"
            break
    where = f" ({err.filename})" if err.filename and str(err.filename) != str(folder) else ""
    return os_reason(err) + where


def atomic_write(path, data: bytes | None = None, *, write=None) -> None:
    """Replace ``path`` with new contents atomically (temporary file, fsync, rename).

    On any failure (disk full, SIGTERM, ...) the temporary file is removed and
    ``path`` keeps its old contents. OS errors propagate as ``OSError``.

    Args:
      path: the file to write.
      data: the bytes to write, or None to use ``write``.
      write: ``write(f)`` writes into the open binary file ``f``.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     atomic_write(Path(d, "a.txt"), b"hello")
    ...     print(Path(d, "a.txt").read_text(), sorted(p.name for p in Path(d).iterdir()))
    hello ['a.txt']
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                               suffix=".tmp")
    _writing.add(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # as open() makes a file (mkstemp's is 0o600)
            if write is None:
                f.write(data)
            else:
                write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        _writing.discard(tmp)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:  # make the rename itself durable
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def stale_temps(folder, names) -> list[Path]:
    """The temporary files of :func:`atomic_write` for ``names`` that no live writer owns.

    That is: files ``.<name>.<pid>.<random>.tmp`` whose process no longer runs,
    or is this one but not writing it now, and pid-less ones of older jaxnn.

    Args:
      folder: the folder to look in.
      names: a regular expression the target file's name must match fully.

    Returns:
      Their paths (to delete).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for name in (".a.npz.999999999.x1.tmp", ".a.npz.1.y2.tmp", ".b.tmp"):
    ...         _ = Path(d, name).write_bytes(b"")  # pid 999999999: none; pid 1: alive
    ...     print([p.name for p in stale_temps(d, r"a\\.npz")])
    ['.a.npz.999999999.x1.tmp']
    """
    found = []
    for p in Path(folder).iterdir():
        m = _TEMP.fullmatch(p.name)
        if not m or not re.fullmatch(names, m["name"]) or str(p) in _writing:
            continue
        pid = m["pid"]
        if pid is None or int(pid) == os.getpid() or not _alive(int(pid)):
            found.append(p)
    return sorted(found)
