"""Cheap fingerprints of arrays and settings, compared across processes (``jaxnn.distributed``).

Each leaf becomes ``WORDS`` uint32 words (uint32 so that gathering them
across processes never depends on ``jax_enable_x64``): a crc32 of its name
and description, the float64 sum (2 words), a crc32 of the bytes, ndim, the
first 4 dimensions and the dtype name (2 words, 8 characters).
"""

from __future__ import annotations

import re
import zlib

import jax
import numpy as np
from jax.experimental import multihost_utils

WORDS = 11
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # differs per process in a repr


def is_key(x) -> bool:
    """Whether x is a typed PRNG key array (``jax.random.key``).

    >>> is_key(jax.random.key(0)), is_key(np.zeros(2))
    (True, False)
    """
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def host_value(x) -> np.ndarray:
    """x as a NumPy array on this host; a global x must be fully replicated.

    >>> host_value(jnp.ones(2)).tolist()
    [1.0, 1.0]
    """
    if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
        raise ValueError(
            f"an array of shape {x.shape} is split over other processes' devices "
            f"({x.sharding}); pass host values (numpy, or arrays on this process's devices) "
            "or fully replicated global arrays."
        )
    return np.asarray(x)


def describe(path: str, leaf) -> tuple[str, np.ndarray]:
    """One leaf -> (what to print, its fingerprint: (WORDS,) uint32).

    >>> text, words = describe("X", np.ones((2, 4), np.float32))
    >>> text, words.shape
    ('shape (2, 4) float32 sum 8', (11,))
    """
    words = np.zeros(WORDS, np.uint32)
    if is_key(leaf):
        leaf = jax.random.key_data(leaf)
    if isinstance(leaf, (np.ndarray, np.generic, jax.Array)) and np.dtype(leaf.dtype).kind != "O":
        host = host_value(leaf)
        text = f"shape {host.shape} {host.dtype}"
        if host.dtype.kind in "biufc" and host.size:
            total = np.real(np.sum(host, dtype=np.complex128 if host.dtype.kind == "c"
                                   else np.float64))
            words[1:3] = np.asarray(total, np.float64).reshape(1).view(np.uint32)
            text += f" sum {float(total):.9g}"
        words[3] = zlib.crc32(np.ascontiguousarray(host).tobytes())
        words[4] = host.ndim
        words[5:5 + min(host.ndim, 4)] = host.shape[:4]
        words[9:11] = np.frombuffer(host.dtype.name.encode()[:8].ljust(8), np.uint32)
    else:
        # callables by name: their repr holds a memory address that differs per process
        text = (f"{getattr(leaf, '__module__', '')}.{leaf.__qualname__}"
                if callable(leaf) and hasattr(leaf, "__qualname__")
                else _ADDRESS.sub("", repr(leaf)))
    words[0] = zlib.crc32(f"{path}={text}".encode())
    return text, words


def fingerprints(name_to_value: dict) -> tuple[list[str], list[str], np.ndarray]:
    """(leaf names, descriptions, (k, WORDS) uint32 fingerprints) of a dict of values.

    >>> names, texts, rows = fingerprints({"X": np.ones((2, 4)), "epochs": 3})
    >>> names, texts[1], rows.shape
    (['X', 'epochs'], '3', (2, 11))
    """
    names, texts, rows = [], [], []
    for name, value in name_to_value.items():
        leaves, treedef = jax.tree_util.tree_flatten_with_path(value)
        structure = _ADDRESS.sub("", str(treedef))
        for path, leaf in leaves or [((), None)]:
            label = f"{name}{jax.tree_util.keystr(path)}"
            text, words = describe(f"{label} {structure}", leaf)
            names.append(label)
            texts.append(text)
            rows.append(words)
    return names, texts, np.stack(rows)


def group_processes(rows: np.ndarray) -> str:
    """'[0, 2] vs [1]': process ids grouped by identical rows (one row per process).

    >>> group_processes(np.array([[1], [2], [1]]))
    '[0, 2] vs [1]'
    """
    seen: dict[bytes, list[int]] = {}
    for p, row in enumerate(rows):
        seen.setdefault(row.tobytes(), []).append(p)
    return " vs ".join(str(g) for g in seen.values())


def array_text(words: np.ndarray) -> str:
    """The shape, dtype, sum and crc32 that one array's fingerprint holds.

    >>> array_text(describe("X", np.ones((2, 4), np.float32))[1])
    'shape (2, 4) float32 sum 8 crc32 0x...'
    """
    ndim = int(words[4])
    shape = tuple(int(d) for d in words[5:5 + min(ndim, 4)]) + (("...",) if ndim > 4 else ())
    dtype = words[9:11].copy().view("S8")[0].decode(errors="replace").strip()
    total = float(words[1:3].copy().view(np.float64)[0])
    return f"shape {shape} {dtype} sum {total:.9g} crc32 {int(words[3]):#010x}"


def raise_if_different(name_to_value: dict, what: str) -> None:
    """Gather the fingerprints of every process; the same ValueError on each when they differ.

    The body of ``jaxnn.distributed.check_same_across_processes`` (see there);
    two small collectives: the names first, then the fingerprints.

    >>> raise_if_different({"X": np.ones((2, 4))}, "data")  # one process: nothing to compare
    """
    if jax.process_count() == 1:
        return
    names, texts, rows = fingerprints(name_to_value)
    header = np.array([len(names), zlib.crc32("\n".join(names).encode())], np.uint32)
    headers = multihost_utils.process_allgather(header)  # (P, 2)
    me = jax.process_index()
    if not (headers == headers[0]).all():
        groups = group_processes(headers)
        raise ValueError(
            f"the processes check different sets of names for {what} (processes {groups}): "
            "they run different programs or jaxnn versions. This process "
            f"({me}) checks: {names}."
        )
    everyone = multihost_utils.process_allgather(rows)  # (P, k, WORDS)
    problems = []
    for i, name in enumerate(names):
        column = everyone[:, i, :]
        if (column == column[0]).all():
            continue
        if column[:, 1:].any() or rows[i, 4]:  # an array: every process's shape and sum
            detail = "; ".join(f"process {p}: {array_text(column[p])}"
                               for p in range(len(column)))
        else:
            detail = f"this process ({me}) has {texts[i]}"
        problems.append(f"{name} differs between processes {group_processes(column)} ({detail})")
    if problems:
        raise ValueError(
            f"{what} must be the same on every process, but " + "; ".join(problems) + ". Pass "
            "the same values on every process (same files, same seed, same settings)."
        )
