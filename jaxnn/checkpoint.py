"""Checkpoints of a ``TrainState`` and its ``Network``, without pickle.

One checkpoint is one ``.npz`` file (``np.savez``; read back with
``allow_pickle=False``, so loading a file never runs code):

* ``leaf_00000``, ``leaf_00001``, ...: the flattened ``TrainState`` leaves in
  tree order: params ``W: (n_l, n_{l-1})``, ``b: (n_l, 1)`` (formulas §1), the
  optimizer state, step, the PRNG key as ``jax.random.key_data`` (uint32),
  epoch. Dtypes numpy cannot name (bfloat16) are stored as same-width uints.
* ``meta``: a 0-d unicode array holding JSON: format and version, the
  ``net.describe()`` of the Network, each leaf's path / shape / dtype, the key's
  PRNG implementation, and free-form ``config`` (e.g. the CLI's flags).

Why .npz rather than safetensors: numpy already reads it (no extra
dependency) and ``allow_pickle=False`` makes it just as safe for arrays;
the JSON carries what safetensors' header would.

Writes are atomic: the file is written to a temporary name in the same folder,
fsynced, then ``os.replace``-d into place; the ``LATEST`` pointer is updated
the same way only after the checkpoint is complete, so a crash leaves either
the old or the new checkpoint, never a torn one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.network import Network
from jaxnn.training import TrainState

FORMAT, VERSION = "jaxnn-checkpoint", 1
LATEST = "LATEST"


def _flatten(state: TrainState):
    """(paths, arrays, treedef) with the typed key replaced by its uint32 key data."""
    if not isinstance(state, TrainState):
        raise ValueError(f"expected a jaxnn.training.TrainState, got {type(state).__name__}.")
    plain = state._replace(key=jax.random.key_data(state.key))
    leaves, treedef = jax.tree_util.tree_flatten_with_path(plain)
    return [jax.tree_util.keystr(p) for p, _ in leaves], [x for _, x in leaves], treedef


def _atomic_write(path: Path, write) -> None:
    """write(file) into a temporary file beside path, fsync, then rename over path."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:  # make the rename itself durable
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save(directory, state: TrainState, net: Network, *, config: dict | None = None,
         keep: int = 3) -> Path:
    """Write ``directory/ckpt-<epoch>.npz`` atomically, then point ``LATEST`` at it.

    Args:
      directory: created if missing.
      state: the ``TrainState`` (single model or ensemble).
      net: the ``Network`` the params belong to (its ``describe()`` is stored).
      config: JSON-serialisable extras (hyperparameters, data set, ...).
      keep: how many checkpoints to keep (older ones are deleted after LATEST moves).

    Returns:
      The path of the new checkpoint.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths, leaves, _ = _flatten(state)
    arrays, described = {}, []
    for i, (name, x) in enumerate(zip(paths, jax.device_get(leaves))):
        x = np.asarray(x)
        dtype = str(x.dtype)
        if x.dtype.kind == "V" or dtype == "bfloat16":  # numpy cannot name it: store the bits
            x = x.view(f"uint{8 * x.dtype.itemsize}")
        arrays[f"leaf_{i:05d}"] = x
        described.append({"path": name, "shape": list(x.shape), "dtype": dtype})
    meta = {"format": FORMAT, "version": VERSION, "network": net.describe(),
            "key_impl": str(jax.random.key_impl(state.key)), "leaves": described,
            "epoch": int(np.max(jax.device_get(state.epoch))),
            "step": int(np.max(jax.device_get(state.step))), "config": config or {}}
    arrays["meta"] = np.array(json.dumps(meta))
    path = directory / f"ckpt-{meta['epoch']:06d}.npz"
    _atomic_write(path, lambda f: np.savez(f, **arrays))
    _atomic_write(directory / LATEST, lambda f: f.write(path.name.encode() + b"\n"))
    if keep > 0:
        for old in sorted(directory.glob("ckpt-*.npz"))[:-keep]:
            if old != path:
                old.unlink(missing_ok=True)
    return path


def resolve(path) -> Path:
    """A checkpoint file, or a folder whose ``LATEST`` names one -> the file's path."""
    path = Path(path)
    if path.is_dir():
        pointer = path / LATEST
        if not pointer.is_file():
            raise FileNotFoundError(f"no checkpoint in {path}: {LATEST} is missing.")
        path = path / pointer.read_text().strip()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist.")
    return path


def read_metadata(path) -> dict:
    """The JSON metadata of a checkpoint (file or folder), without loading the arrays."""
    with np.load(resolve(path), allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a jaxnn checkpoint (format {meta.get('format')!r}).")
    return meta


def restore(path, net: Network, like: TrainState) -> TrainState:
    """Load a checkpoint into the structure of ``like`` (e.g. a fresh ``init_state``).

    Raises:
      ValueError: the file's Network, or its optimizer-state structure, shapes
        or dtypes differ from ``net`` / ``like``; the message lists what differs.
    """
    path = resolve(path)
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise ValueError(f"{path.name}: not a version-{VERSION} jaxnn checkpoint.")
        stored = [npz[f"leaf_{i:05d}"] for i in range(len(meta["leaves"]))]
    ours = net.describe()
    diff = [f"{k}: file {meta['network'].get(k)} vs network {ours[k]}" for k in ours
            if meta["network"].get(k) != ours[k]]
    if diff:
        raise ValueError(f"{path.name} was saved for another Network: " + "; ".join(diff) + ".")
    paths, leaves, treedef = _flatten(like)
    want = [{"path": p, "shape": list(np.shape(x)), "dtype": str(x.dtype)}
            for p, x in zip(paths, leaves)]
    if want != meta["leaves"]:
        have = {d["path"]: d for d in meta["leaves"]}
        need = {d["path"]: d for d in want}
        diff = [f"missing in file: {p}" for p in need if p not in have]
        diff += [f"not expected: {p}" for p in have if p not in need]
        diff += [f"{p}: file {tuple(have[p]['shape'])} {have[p]['dtype']} vs expected "
                 f"{tuple(need[p]['shape'])} {need[p]['dtype']}"
                 for p in need if p in have and have[p] != need[p]]
        raise ValueError(f"{path.name} does not match the expected state (is the optimizer "
                         "or ensemble size the same?): " + "; ".join(diff[:6])
                         + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "") + ".")
    arrays = [jnp.asarray(x.view(jnp.dtype(d["dtype"])) if d["dtype"] != str(x.dtype)
                          else x) for x, d in zip(stored, meta["leaves"])]
    state = jax.tree_util.tree_unflatten(treedef, arrays)
    return state._replace(key=jax.random.wrap_key_data(state.key, impl=meta["key_impl"]))
