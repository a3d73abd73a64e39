"""Checkpoints of a ``TrainState`` and its ``Network`` that verify themselves, without pickle.

One checkpoint is one ``.npz`` file (a zip of ``.npy`` arrays, read with
``allow_pickle=False``, so loading a file never runs code): one array per
``TrainState`` leaf (params, optimizer state, step, PRNG key data, epoch) and
a JSON ``meta`` with the ``net.describe()`` of the Network, each leaf's path /
shape / dtype / sha256, the key's PRNG implementation and free-form ``config``.
``jaxnn.train.checkpoint_format`` defines the file and reads it with verification.

Reading verifies, never trusts: every problem with a file (missing, empty, truncated,
flipped bytes, not a zip, an ``.npz`` that is not a jaxnn checkpoint, missing or
malformed metadata, an array whose shape, dtype or sha256 differs from the
metadata, a ``LATEST`` that is empty or points outside its folder) raises
:class:`CheckpointError`, a ``ValueError`` naming the file and what is wrong. The
checksums catch corruption and hand-edited arrays; they are not a signature
(whoever can write the file can rewrite the metadata too).

Writes are atomic: the file is written to a temporary name in the same folder,
fsynced, then ``os.replace``-d into place; the ``LATEST`` pointer is updated the
same way only after the checkpoint is complete, so a crash leaves either the old
or the new checkpoint, never a torn one. The next save removes the temporary
files a killed save left behind (never those of a live writer), then keeps the
newest ``keep`` checkpoints (and always the one ``LATEST`` names).

One writer per folder, enforced: a save holds the folder's lock file
(``jaxnn.train.folder``) while it writes, and ``with checkpoint.lock(folder):``
holds it for a whole run (``jaxnn train`` does); a save into a folder another
live process holds raises :class:`FolderInUseError` naming that process. Every
failure of the OS (read-only or full disk, a file where a folder should be, a
symbolic link loop, ``LATEST`` a folder, ...) is a :class:`CheckpointError`
naming the path and the OS reason; a missing checkpoint (file, folder, ``LATEST``
or the file it names) is a :class:`MissingCheckpointError`, also a
``FileNotFoundError``.

Trained params to a file and back, in three lines (the one path; README's tour runs it)::

    params, history = jaxnn.fit(params, net, data, epochs=30, key=jax.random.key(1))
    jaxnn.checkpoint.save("my_model", params, net)         # bare params, or a TrainState
    params = jaxnn.checkpoint.load("my_model", net)         # params, from either kind of file

``save`` takes what you have: the params ``fit`` returns (a params-only file:
one leaf per ``W`` / ``b``, step and epoch 0, ``key_impl`` ``"none"``), or a
``TrainState`` (``train_epochs``, the CLI) to resume training bit for bit.
``load(path, net)`` gives back the params from either kind of file, checked
against ``net`` (a file saved for another network raises :class:`CheckpointError`
naming both networks); ``restore(path, net, like=state)`` gives back a whole
``TrainState``. Both files are the one format above, verified the same way.

Several JAX processes (``jax.process_count() > 1``): every process calls
:func:`save` with the same path; the leaves must be fully replicated (each
process holds the whole array), only process 0 writes, and the others return
the same path without writing. :func:`restore` works on any number of
processes: it returns ordinary single-device arrays, which the training code
places on its mesh.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jax
import jax.numpy as jnp

from jaxnn.core.compat import savez_no_pickle
from jaxnn.core.network import Network
from jaxnn.devices import processes as distributed
from jaxnn.train import folder as _folder
from jaxnn.train.checkpoint_contents import (
    PARAMS_ONLY,
    check_matches,
    contents,
    flatten_state,
    params_index,
    refuse_params_only,
    to_host,
)
from jaxnn.train.checkpoint_format import (
    FORMAT,
    VERSION,
    CheckpointError,
    MissingCheckpointError,
    pack,
    read_verified,
)
from jaxnn.train.folder import FolderInUseError, lock
from jaxnn.train.state import TrainState

__all__ = ["CheckpointError", "save", "load", "resolve", "read_metadata", "restore", "FORMAT",
           "VERSION", "LATEST", "PARAMS_ONLY",
           "MissingCheckpointError", "FolderInUseError", "lock"]

LATEST = "LATEST"
_CKPT = re.compile(r"ckpt-(\d+)\.npz")
_TEMP = r"ckpt-\d+\.npz|LATEST"  # the files whose temporary files a save may tidy


# ------------------------------------------------------------------------- save


def _atomic_write(path: Path, write) -> None:
    """write(file) into a temporary file beside path, fsync, then rename over path."""
    _folder.atomic_write(path, write=write)


def _check_keep(keep) -> None:
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise ValueError(f"keep = {keep!r}: expected an integer >= 1 (how many checkpoints to "
                         "keep), or None to keep all of them.")


def _tidy(directory: Path, keep: int | None, latest: str) -> None:
    """Remove temporary files of killed saves and checkpoints older than the newest ``keep``."""
    for p in _folder.stale_temps(directory, _TEMP):  # never a live writer's
        p.unlink(missing_ok=True)
    if keep is None:
        return
    ckpts = sorted((int(m[1]), p) for p in directory.iterdir() if (m := _CKPT.fullmatch(p.name)))
    for _, old in ckpts[:-keep]:
        if old.name != latest:
            old.unlink(missing_ok=True)


def save(directory, state: TrainState, net: Network, *, config: dict | None = None,
         keep: int | None = 3) -> Path:
    """Write ``directory/ckpt-<epoch>.npz`` atomically, then point ``LATEST`` at it.

    ``state`` is a ``TrainState`` (everything a resumed run needs), or bare
    params, e.g. what ``fit`` returns: a params-only file, ``ckpt-000000.npz``,
    read back with :func:`load`.

    Before writing, temporary files left by a killed save are removed; after
    ``LATEST`` moves, checkpoints older than the newest ``keep`` are deleted
    (never the one ``LATEST`` names; other files are left alone). With several
    JAX processes only process 0 writes; every process returns the same path.

    Args:
      directory: the checkpoint folder, created if missing (the same path on every process).
      state: a ``TrainState`` (single model or ensemble), or bare params
        ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]`` (an ensemble's with a leading (E,)
        axis), checked against ``net``; fully replicated across processes.
      net: the ``Network`` the params belong to (its ``describe()`` is stored).
      config: JSON-serialisable extras (hyperparameters, data set, ...).
      keep: how many of the newest checkpoints to keep (>= 1), or None to keep all.

    Returns:
      The path of the new checkpoint.

    Raises:
      FolderInUseError: another live process holds the folder's lock (names its pid).
      CheckpointError: ``directory`` is a file, a leaf is not fully replicated
        across processes, or the OS refuses the write (full or read-only disk, a
        file on the way, a symbolic link loop, ``LATEST`` not a file): the message
        names the path, the OS reason and what stayed intact.
      ValueError: ``keep``, ``net`` or ``config`` is invalid, or bare params do not fit ``net``.

    >>> import tempfile
    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> state = jaxnn.init_state(jaxnn.init_params(jax.random.key(0), net), jax.random.key(1))
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     print(save(folder, state, net).name)
    ckpt-000000.npz
    """
    _check_keep(keep)
    if not isinstance(net, Network):
        raise ValueError(f"net must be a jaxnn.Network, got {type(net).__name__}.")
    try:
        config_json = json.loads(json.dumps(config or {}))
    except (TypeError, ValueError) as err:
        raise ValueError(f"config must be JSON-serialisable (numbers, strings, lists, dicts): "
                         f"{err}") from None
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(f"checkpoint folder {directory} is a file, not a folder; pass a "
                              "folder path.")
    paths, leaves, epoch, step, key_impl = contents(state, net)
    leaves = [to_host(name, x) for name, x in zip(paths, leaves, strict=True)]
    path = directory / f"ckpt-{epoch:06d}.npz"
    if jax.process_index() == 0:  # process 0 writes the (replicated) state for everyone
        arrays = pack(paths, leaves, network=net.describe(),
                      key_impl=key_impl, epoch=epoch, step=step,
                      config=config_json)
        with lock(directory):  # one writer per folder; raises naming the other one
            _write(directory, path, arrays, keep)
    if jax.process_count() > 1:
        # every process returns once process 0's file is complete: a restore right after sees it
        distributed.barrier(f"jaxnn checkpoint {path.name}")
    return path


def _write(directory: Path, path: Path, arrays: dict, keep: int | None) -> None:
    """The file, then LATEST, then the tidy; every OS failure a CheckpointError naming it."""
    latest = directory / LATEST
    target = path
    try:
        if os.path.lexists(latest) and not latest.is_file():
            raise CheckpointError(f"cannot save {path}: {latest} is not a file (a folder or "
                                  "another kind of file); remove it, a save writes it anew.")
        _tidy(directory, None, path.name)
        _atomic_write(path, lambda f: savez_no_pickle(f, **arrays))
        target = latest
        _atomic_write(latest, lambda f: f.write(path.name.encode() + b"\n"))
        target = directory
        _tidy(directory, keep, path.name)
    except OSError as err:
        kept = ("the previous checkpoint and LATEST are unchanged" if target == path else
                f"{path.name} is complete but LATEST still names the previous checkpoint"
                if target == latest else "the new checkpoint is complete")
        raise CheckpointError(f"cannot save {path}: {_folder.os_reason(err)} (writing "
                              f"{err.filename or target}); {kept}.") from None


# ------------------------------------------------------------------------- read
def resolve(path) -> Path:
    """A checkpoint file, or a folder whose ``LATEST`` names one -> the file's path.

    Args:
      path: a checkpoint file, or a checkpoint folder.

    Returns:
      The checkpoint file's path.

    Raises:
      MissingCheckpointError: nothing is there, the folder has no ``LATEST`` (an
        empty folder: nothing saved yet), or ``LATEST`` names a file that is gone.
      CheckpointError: ``LATEST`` is empty, not a file, or names something other
        than a file inside the folder; or the OS refuses to read (naming the reason).

    >>> import tempfile
    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> state = jaxnn.init_state(jaxnn.init_params(jax.random.key(0), net), jax.random.key(1))
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = save(folder, state, net)
    ...     print(resolve(folder) == path, path.name)
    True ckpt-000000.npz
    """
    path = Path(path)
    try:
        return _resolve(path)
    except CheckpointError:  # MissingCheckpointError is an OSError too: already worded
        raise
    except OSError as err:  # permission, a symbolic link loop, I/O: named, not raw
        raise CheckpointError(f"checkpoint {path} cannot be read: {_folder.os_reason(err)}"
                              + (f" ({err.filename})" if err.filename else "") + ".") from None
    except RuntimeError as err:  # Path.resolve's "Symlink loop from ..."
        raise CheckpointError(f"checkpoint {path} cannot be read: {err}.") from None


def _resolve(path: Path) -> Path:
    if path.is_dir():
        pointer = path / LATEST
        if os.path.lexists(pointer) and not pointer.is_file():
            raise CheckpointError(f"{pointer} is not a file (a folder or another kind of "
                                  "file); it should name the newest checkpoint in "
                                  f"{path}, e.g. ckpt-000003.npz.")
        if not pointer.is_file():
            raise MissingCheckpointError(f"no checkpoint in {path}: {LATEST} is missing (no "
                                         "save finished there).")
        try:
            name = pointer.read_bytes()[:4096].decode("utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            raise CheckpointError(f"{pointer} cannot be read as a file name: {err}") from None
        if not name:
            raise CheckpointError(f"{pointer} is empty; it should name a checkpoint file in "
                                  f"{path} (e.g. ckpt-000003.npz).")
        if Path(name).name != name or name in (".", "..") or "\\" in name or "\0" in name:
            raise CheckpointError(f"{pointer} names {name!r}, which is not a file inside "
                                  f"{path}; {LATEST} must hold a bare file name like "
                                  "ckpt-000003.npz.")
        target = path / name
        if target.resolve().parent != path.resolve():
            raise CheckpointError(f"{pointer} names {name!r}, a link to {target.resolve()}, "
                                  f"outside {path}.")
        if not target.is_file():
            if os.path.lexists(target) and not os.path.islink(target):
                raise CheckpointError(f"{pointer} names {name!r}, which is not a file.")
            raise MissingCheckpointError(f"{pointer} names {name!r}, which does not exist in "
                                         f"{path} (deleted or moved?).")
        return target
    if not path.exists():
        if os.path.islink(path):
            os.stat(path)  # a link loop raises ELOOP, named by resolve
        raise MissingCheckpointError(f"checkpoint {path} does not exist.")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file or folder.")
    return path


def read_metadata(path) -> dict:
    """The JSON metadata of a checkpoint (file or folder), without loading the arrays.

    Args:
      path: a checkpoint file, or a folder whose ``LATEST`` names one.

    Returns:
      The metadata dict (format, version, network, leaves, key_impl, epoch, step, config).

    Raises:
      CheckpointError: the file is missing, unreadable or not a valid jaxnn checkpoint.

    >>> import tempfile
    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> state = jaxnn.init_state(jaxnn.init_params(jax.random.key(0), net), jax.random.key(1))
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = save(folder, state, net, config={"lr": 0.5})
    ...     print(read_metadata(folder)["config"])
    {'lr': 0.5}
    """
    return read_verified(resolve(path))[0]


def restore(path, net: Network, like: TrainState) -> TrainState:
    """Load a checkpoint into the structure of ``like`` (e.g. a fresh ``init_state``).

    Every array is checked against the metadata (shape, dtype, sha256) before it
    is used, and the metadata against ``net`` and ``like``. The arrays come back
    as ordinary (uncommitted, default-device) JAX arrays on every process; place
    them on a mesh yourself.

    Args:
      path: a checkpoint file, or a folder whose ``LATEST`` names one.
      net: the ``Network`` the checkpoint must have been saved for.
      like: a ``TrainState`` with the expected structure, shapes and dtypes (its values are unused).

    Returns:
      The saved ``TrainState``, bit for bit.

    Raises:
      CheckpointError: the file is missing, corrupt or not a jaxnn checkpoint, or it
        was saved for another Network or another state structure (optimizer,
        ensemble size, dtypes); the message lists what differs.

    >>> import tempfile
    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> state = jaxnn.init_state(jaxnn.init_params(jax.random.key(0), net), jax.random.key(1))
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = save(folder, state, net)
    ...     print(int(restore(folder, net, like=state).epoch))
    0
    """
    path = resolve(path)
    paths, leaves, treedef = flatten_state(like)
    impl = str(jax.random.key_impl(like.key))
    _, stored = read_verified(path, check=lambda meta: (refuse_params_only(meta, path),
                                                        check_matches(meta, path, net, paths,
                                                                       leaves, impl)))
    state = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(x) for x in stored])
    return state._replace(key=jax.random.wrap_key_data(state.key, impl=impl))




def load(path, net: Network) -> list:
    """The params of a checkpoint (``save``-d params or a whole ``TrainState``), checked.

    Reads a params-only file or the params of a ``TrainState`` file; every array
    is verified (shape, dtype, sha256) before it is used, and the file's Network
    against ``net`` (the metadata is checked before any array is read). For the
    optimizer state, step and key as well, use :func:`restore`.

    Args:
      path: a checkpoint file, or a folder whose ``LATEST`` names one.
      net: the ``Network`` the checkpoint must have been saved for.

    Returns:
      The params ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]`` as ordinary JAX arrays
      with their saved dtypes (an ensemble's with their leading (E,) axis).

    Raises:
      CheckpointError: the file is missing, corrupt or not a jaxnn checkpoint, or it
        was saved for another Network (the message names both networks).

    >>> import tempfile
    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jaxnn.init_params(jax.random.key(0), net)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = save(folder, params, net)
    ...     back = load(folder, net)
    >>> [p["W"].shape for p in back], bool((back[0]["W"] == params[0]["W"]).all())
    ([(3, 2), (1, 3)], True)
    """
    if not isinstance(net, Network):
        raise ValueError(f"net must be a jaxnn.Network, got {type(net).__name__}.")
    path = resolve(path)
    index = []
    _, stored = read_verified(path, check=lambda meta: index.extend(params_index(meta, path,
                                                                                  net)))
    leaves = iter(jnp.asarray(stored[i]) for i in index)
    return [{"W": next(leaves), "b": next(leaves)} for _ in range(net.L)]
