"""The checkpoint file format: its arrays, its metadata, and reading a file with verification.

One checkpoint is one ``.npz`` file (a zip of ``.npy`` arrays, written by
``np.savez`` and read with ``allow_pickle=False``, so loading a file never runs code):

* ``leaf_00000``, ``leaf_00001``, ...: the flattened ``TrainState`` leaves in
  tree order: params ``W: (n_l, n_{l-1})``, ``b: (n_l, 1)`` (formulas §1), the
  optimizer state, step, the PRNG key as ``jax.random.key_data`` (uint32),
  epoch. Dtypes numpy cannot name (bfloat16) are stored as same-width uints.
* ``meta``: a 0-d unicode array holding JSON: format and version, the
  ``net.describe()`` of the Network, each leaf's path / shape / dtype and the
  sha256 of its bytes, the key's PRNG implementation, and free-form ``config``
  (e.g. the CLI's flags).

Reading verifies, never trusts: every problem with a file (empty, truncated,
flipped bytes, not a zip, an ``.npz`` that is not a jaxnn checkpoint, missing or
malformed metadata, an array whose shape, dtype or sha256 differs from the
metadata) raises :class:`CheckpointError`, a ``ValueError`` naming the file and
what is wrong. The checksums catch corruption and hand-edited arrays; they are
not a signature (whoever can write the file can rewrite the metadata too).
``jaxnn.checkpoint`` writes and restores these files.
"""

from __future__ import annotations

import errno
import hashlib
import json
import re
import zipfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from jaxnn.core.validate import MissingFileError

FORMAT, VERSION = "jaxnn-checkpoint", 2
_MAX_NPY_HEADER = 1 << 16  # bytes a .npy header may add to its data (numpy writes 128)


class CheckpointError(ValueError):
    """A checkpoint file, folder or ``LATEST`` pointer that cannot be trusted.

    The message names the file and what is wrong with it. A ``ValueError``, so
    callers that already catch bad input catch it too.
    """


class MissingCheckpointError(CheckpointError, MissingFileError):
    """No checkpoint where one was asked for: a missing file or folder, a folder with
    no ``LATEST`` (nothing saved there yet), or a ``LATEST`` naming a file that is gone.

    A :class:`CheckpointError` and a ``FileNotFoundError`` (``errno`` ``ENOENT``).

    >>> err = MissingCheckpointError("checkpoint runs/x does not exist.")
    >>> isinstance(err, CheckpointError), isinstance(err, FileNotFoundError)
    (True, True)
    """


def _storage_dtype(dtype_name: str) -> np.dtype:
    """The dtype an array of ``dtype_name`` is stored as (same-width uint if numpy can't name it)."""
    dtype = jnp.dtype(dtype_name)
    if dtype.kind == "V" or dtype_name == "bfloat16":
        return np.dtype(f"uint{8 * dtype.itemsize}")
    return dtype


def _sha256(x: np.ndarray) -> str:
    return hashlib.sha256(x.tobytes()).hexdigest()



def pack(paths, leaves, *, network: dict, key_impl: str, epoch: int, step: int,
         config: dict) -> dict[str, np.ndarray]:
    """The arrays of a checkpoint file: one ``leaf_<i>`` per leaf, then the JSON ``meta``.

    A leaf whose dtype numpy cannot name (bfloat16) is stored as the uint of its
    width; the metadata keeps its real dtype and the sha256 of the stored bytes.

    Args:
      paths: one key path per leaf (``jax.tree_util.keystr``), in tree order.
      leaves: the NumPy arrays, in the same order.
      network: the Network's ``describe()``.
      key_impl: the PRNG implementation of the state's key.
      epoch: epochs completed.
      step: updates applied.
      config: JSON-serialisable extras.

    Returns:
      The arrays to ``np.savez`` (``allow_pickle=False``), in file order.

    >>> net = jaxnn.Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> arrays = pack(["[0]"], [np.zeros((3, 1), np.float32)], network=net.describe(),
    ...               key_impl="threefry2x32", epoch=0, step=0, config={})
    >>> sorted(arrays), json.loads(str(arrays["meta"]))["leaves"][0]["shape"]
    (['leaf_00000', 'meta'], [3, 1])
    """
    arrays, described = {}, []
    for i, (name, x) in enumerate(zip(paths, leaves, strict=True)):
        dtype = str(x.dtype)
        x = x.view(_storage_dtype(dtype)) if _storage_dtype(dtype) != x.dtype else x
        arrays[f"leaf_{i:05d}"] = x
        described.append({"path": name, "shape": list(x.shape), "dtype": dtype,
                          "sha256": _sha256(x)})
    meta = {"format": FORMAT, "version": VERSION, "network": network, "key_impl": key_impl,
            "leaves": described, "epoch": epoch, "step": step, "config": config}
    arrays["meta"] = np.array(json.dumps(meta))
    return arrays


def _malformed(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"{path}: malformed jaxnn checkpoint metadata: {what}.")


def _check_meta(meta, path: Path) -> dict:
    """Refuse metadata that is not the dict :func:`pack` writes; return it."""
    if not isinstance(meta, dict):
        raise _malformed(path, f"expected a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a jaxnn checkpoint (metadata format "
                              f"{meta.get('format')!r}, expected {FORMAT!r}).")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path} is a version-{meta.get('version')!r} jaxnn checkpoint; "
                              f"this jaxnn reads version {VERSION} (with per-array checksums); "
                              "re-create it by training again.")
    net = meta.get("network")
    if not (isinstance(net, dict) and isinstance(net.get("layer_sizes"), list)
            and isinstance(net.get("activations"), list) and isinstance(net.get("loss"), str)):
        raise _malformed(path, "'network' must hold layer_sizes, activations and loss")
    for key, kind in (("key_impl", str), ("epoch", int), ("step", int), ("config", dict),
                      ("leaves", list)):
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise _malformed(path, f"{key!r} must be a {kind.__name__}, got "
                                   f"{meta.get(key)!r:.60}")
    for i, d in enumerate(meta["leaves"]):
        ok = (isinstance(d, dict) and isinstance(d.get("path"), str)
              and isinstance(d.get("dtype"), str) and isinstance(d.get("shape"), list)
              and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                      for n in d["shape"])
              and isinstance(d.get("sha256"), str) and re.fullmatch("[0-9a-f]{64}", d["sha256"]))
        if not ok:
            raise _malformed(path, f"leaf {i} must have a path, a shape of ints >= 0, a dtype "
                                   f"and a sha256, got {d!r:.120}")
    return meta


def _read_npy(zf: zipfile.ZipFile, member: str, n_bytes: int | None, path: Path) -> np.ndarray:
    """One array of the zip, refusing one far larger than ``n_bytes`` before reading it."""
    info = zf.getinfo(member)
    if n_bytes is not None and not n_bytes <= info.file_size <= n_bytes + _MAX_NPY_HEADER:
        raise CheckpointError(f"{path}: {member} holds {info.file_size} bytes, but its "
                              f"metadata describes {n_bytes} bytes of data; the file is "
                              "corrupt or was edited.")
    with zf.open(member) as f:
        x = np.lib.format.read_array(f, allow_pickle=False)
        if f.read(1):  # reading to the end also makes zipfile check the member's CRC-32
            raise CheckpointError(f"{path}: {member} has bytes after its array.")
    return x


def read_verified(path: Path, check=None):
    """(metadata, stored arrays) of a checkpoint file, every array verified.

    The metadata is checked to be what :func:`pack` writes; each array's size
    is checked before it is read, then its shape, dtype and sha256 against the
    metadata. Without ``check`` only the metadata is read (arrays: None);
    otherwise ``check(metadata)`` runs before any array is read, so a file for
    another state is refused before its arrays are loaded.

    Args:
      path: the checkpoint file (a ``Path``).
      check: None, or a function of the metadata dict that raises to refuse the file.

    Returns:
      (metadata dict, list of NumPy arrays in leaf order with their saved dtypes, or None).

    Raises:
      CheckpointError: the file is unreadable, empty, not a zip, not a jaxnn
        checkpoint, has malformed metadata, or an array differs from its metadata.

    >>> import tempfile
    >>> net = jaxnn.Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> state = jaxnn.init_state(jaxnn.init_params(jax.random.key(0), net), jax.random.key(1))
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = jaxnn.checkpoint.save(folder, state, net)
    ...     meta, arrays = read_verified(path, check=lambda meta: None)
    >>> meta["epoch"], [x.shape for x in arrays[:2]]
    (0, [(3, 2), (3, 1)])
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise MissingCheckpointError(f"checkpoint {path} does not exist.") from None
    except OSError as err:
        raise CheckpointError(f"checkpoint {path} cannot be read: {err.strerror or err} "
                              f"({errno.errorcode.get(err.errno or 0, type(err).__name__)})."
                              ) from None
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes).")
    if magic != b"PK\x03\x04":
        raise CheckpointError(f"checkpoint {path} is not an .npz (zip) file: it starts with "
                              f"{magic!r}, not b'PK\\x03\\x04'.")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if "meta.npy" not in names:
                raise CheckpointError(f"{path} is an .npz but not a jaxnn checkpoint: it has "
                                      f"no 'meta' array (arrays: {sorted(names)[:8]}).")
            meta_array = _read_npy(zf, "meta.npy", None, path)
            if meta_array.shape != () or meta_array.dtype.kind != "U":
                raise _malformed(path, f"'meta' must be a 0-d string, got {meta_array.dtype} "
                                       f"{meta_array.shape}")
            try:
                meta = json.loads(str(meta_array))
            except ValueError as err:
                raise _malformed(path, f"not JSON ({err})") from None
            _check_meta(meta, path)
            if check is None:
                return meta, None
            check(meta)
            want = [f"leaf_{i:05d}.npy" for i in range(len(meta["leaves"]))]
            extra = sorted(set(names) - {*want, "meta.npy"})
            missing = sorted(set(want) - set(names))
            if extra or missing or len(names) != len(set(names)):
                raise CheckpointError(f"{path}: its arrays do not match its metadata "
                                      f"({len(want)} leaves): missing {missing[:4]}, not "
                                      f"described {extra[:4]}, {len(names)} members.")
            stored = []
            for member, d in zip(want, meta["leaves"], strict=True):
                dtype = _storage_dtype(d["dtype"])
                shape = tuple(d["shape"])
                x = _read_npy(zf, member, int(np.prod(shape, dtype=np.int64)) * dtype.itemsize,
                              path)
                what = (f"shape {x.shape}" if x.shape != shape
                        else f"dtype {x.dtype}" if x.dtype != dtype
                        else "a different sha256" if _sha256(x) != d["sha256"] else None)
                if what:
                    raise CheckpointError(
                        f"{path}: array {member[:-4]} ({d['path']}) has {what}, but the "
                        f"metadata says shape {shape}, dtype {d['dtype']} (stored as {dtype}) "
                        "and its checksum; the file is corrupt or was edited, refused.")
                wanted = jnp.dtype(d["dtype"])
                stored.append(x.view(wanted) if wanted != dtype else x)
            return meta, stored
    except CheckpointError:
        raise
    except OSError as err:  # the disk or the OS failed, not the bytes
        raise CheckpointError(f"checkpoint {path} cannot be read: {err.strerror or err} "
                              f"({errno.errorcode.get(err.errno or 0, type(err).__name__)})."
                              ) from None
    except Exception as err:  # any failure to parse these untrusted bytes means a bad file
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated "
                              f"({type(err).__name__}: {err}).") from None


