"""Cheap fingerprints of arrays and settings, compared across processes (``jaxnn.distributed``).

Each leaf becomes ``WORDS`` uint32 words (uint32 so that gathering them
across processes never depends on ``jax_enable_x64``). Word 0 is a crc32 of
its name and full description (equal words: equal values), word 1 its kind.
An array (kind 1) keeps its float64 sum (2 words), a crc32 of its bytes, ndim,
the first 4 dimensions and the dtype name (2 words); a setting (kind 2) keeps
the first ``TEXT_BYTES`` bytes of its text, so that every process can name
every other process's value ("--lr differs: process 0 has 0.01, process 1 has
0.02"). An optax transformation is compared by what it does: the updates of
two steps on a tiny tree (``probe_optimizer``), which change with its learning
rate and every other hyperparameter.
"""

from __future__ import annotations

import re
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils

WORDS = 24
TEXT_BYTES = 4 * (WORDS - 2)  # a setting's text, shared with the other processes
ARRAY, SETTING = 1, 2  # word 1
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # differs per process in a repr


class Probe:
    """What an optimizer did to a tiny tree: ``text`` is shown, ``data`` compared in full."""

    def __init__(self, text: str, data: bytes):
        self.text, self.data = text, data

    def __repr__(self) -> str:
        return self.text


def probe_optimizer(tx) -> Probe:
    """An optax transformation -> the updates of two steps on a tiny tree, as a ``Probe``.

    Two optimizers with the same code but another learning rate, momentum,
    epsilon or weight decay give other updates; the class name alone (all
    of them ``GradientTransformationExtraArgs``) does not tell them apart.

    Args:
      tx: an ``optax.GradientTransformation``.

    >>> probe_optimizer(optax.sgd(0.5)).text
    'test updates [-0.05 0.15 -0.35 -0.05 0.15 -0.35]'
    >>> probe_optimizer(optax.sgd(0.5)).data == probe_optimizer(optax.sgd(0.25)).data
    False
    """
    params = jnp.array([0.5, -1.25, 2.0], jnp.float32)
    grads = jnp.array([0.1, -0.3, 0.7], jnp.float32)
    try:
        state, steps = tx.init(params), []
        for _ in range(2):
            updates, state = tx.update(grads, state, params)
            params = optax.apply_updates(params, updates)
            steps.append(np.asarray(updates, np.float32).ravel())
    except Exception as e:  # an optimizer that needs more (extra args, other trees): its name
        name = f"{type(tx).__module__}.{type(tx).__qualname__}"
        return Probe(f"{name} (not probed: {type(e).__name__})", name.encode())
    data = np.concatenate(steps)
    text = " ".join(f"{v:.4g}" for v in data)
    return Probe(f"test updates [{text}]", data.tobytes())


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
    ('shape (2, 4) float32 sum 8', (24,))
    >>> setting_text(describe("--lr", 0.01)[1])
    '0.01'
    """
    words = np.zeros(WORDS, np.uint32)
    if is_key(leaf):
        leaf = jax.random.key_data(leaf)
    if isinstance(leaf, (np.ndarray, np.generic, jax.Array)) and np.dtype(leaf.dtype).kind != "O":
        host = host_value(leaf)
        text = f"shape {host.shape} {host.dtype}"
        words[1] = ARRAY
        if host.dtype.kind in "biufc" and host.size:
            total = np.real(np.sum(host, dtype=np.complex128 if host.dtype.kind == "c"
                                   else np.float64))
            words[2:4] = np.asarray(total, np.float64).reshape(1).view(np.uint32)
            text += f" sum {float(total):.9g}"
        words[4] = zlib.crc32(np.ascontiguousarray(host).tobytes())
        words[5] = host.ndim
        words[6:6 + min(host.ndim, 4)] = host.shape[:4]
        words[10:12] = np.frombuffer(host.dtype.name.encode()[:8].ljust(8), np.uint32)
        identity = text
    else:
        if isinstance(leaf, Probe):
            text, identity = leaf.text, leaf.text + leaf.data.hex()
        else:
            # callables by name: their repr holds a memory address that differs per process
            text = (f"{getattr(leaf, '__module__', '')}.{leaf.__qualname__}"
                    if callable(leaf) and hasattr(leaf, "__qualname__")
                    else _ADDRESS.sub("", repr(leaf)))
            identity = text
        words[1] = SETTING
        raw = text.encode()
        if len(raw) > TEXT_BYTES:
            raw = raw[:TEXT_BYTES - 3] + b"..."
        words[2:] = np.frombuffer(raw.ljust(TEXT_BYTES, b"\0"), np.uint32)
    words[0] = zlib.crc32(f"{path}={identity}".encode())
    return text, words


def _with_probes(value):
    """value with every optax transformation in it replaced by its ``Probe``."""
    return jax.tree.map(lambda x: probe_optimizer(x) if isinstance(x, optax.GradientTransformation)
                        else x, value,
                        is_leaf=lambda x: isinstance(x, optax.GradientTransformation))


def fingerprints(name_to_value: dict) -> tuple[list[str], list[str], np.ndarray]:
    """(leaf names, descriptions, (k, WORDS) uint32 fingerprints) of a dict of values.

    >>> names, texts, rows = fingerprints({"X": np.ones((2, 4)), "epochs": 3})
    >>> names, texts[1], rows.shape
    (['X', 'epochs'], '3', (2, 24))
    """
    names, texts, rows = [], [], []
    for name, value in name_to_value.items():
        leaves, treedef = jax.tree_util.tree_flatten_with_path(_with_probes(value))
        structure = _ADDRESS.sub("", str(treedef))
        for path, leaf in leaves or [((), None)]:
            label = f"{name}{jax.tree_util.keystr(path)}"
            text, words = describe(f"{label} {structure}", leaf)
            names.append(label)
            texts.append(text)
            rows.append(words)
    return names, texts, np.stack(rows)


def group_processes(rows: np.ndarray) -> list[list[int]]:
    """Process ids grouped by identical rows (one row per process), in order of first appearance.

    >>> group_processes(np.array([[1], [2], [1]]))
    [[0, 2], [1]]
    """
    seen: dict[bytes, list[int]] = {}
    for p, row in enumerate(rows):
        seen.setdefault(row.tobytes(), []).append(p)
    return list(seen.values())


def array_text(words: np.ndarray) -> str:
    """The shape, dtype, sum and crc32 that one array's fingerprint holds.

    >>> array_text(describe("X", np.ones((2, 4), np.float32))[1])
    'shape (2, 4) float32 sum 8 crc32 0x...'
    >>> array_text(describe("lr", np.float32(0.01))[1])
    '0.01 (float32)'
    """
    ndim = int(words[5])
    shape = tuple(int(d) for d in words[6:6 + min(ndim, 4)]) + (("...",) if ndim > 4 else ())
    dtype = words[10:12].copy().view("S8")[0].decode(errors="replace").strip("\0 ")
    total = float(words[2:4].copy().view(np.float64)[0])
    if ndim == 0:  # a scalar: its value, as short as its dtype allows ('0.01', not 0.00999999978)
        try:
            return f"{str(np.dtype(dtype).type(total))} ({dtype})"
        except (TypeError, ValueError):
            return f"{total:.9g} ({dtype})"
    return f"shape {shape} {dtype} sum {total:.9g} crc32 {int(words[4]):#010x}"


def setting_text(words: np.ndarray) -> str:
    """The text of a setting that one fingerprint holds (its first ``TEXT_BYTES`` bytes).

    >>> setting_text(describe("epochs", 3)[1])
    '3'
    """
    return words[2:].copy().tobytes().rstrip(b"\0").decode(errors="replace")


def difference(name: str, column: np.ndarray) -> str:
    """'NAME differs: process 0 has A, process 1 has B' from one value's (P, WORDS) fingerprints.

    Processes that agree are named together ("processes 0, 2 have A").

    >>> rows = np.stack([describe("--lr", v)[1] for v in (0.01, 0.02, 0.01)])
    >>> difference("--lr", rows)
    '--lr differs: processes 0, 2 have 0.01, process 1 has 0.02'
    """
    parts = []
    for group in group_processes(column):
        words = column[group[0]]
        value = array_text(words) if words[1] == ARRAY else setting_text(words)
        who = (f"process {group[0]} has" if len(group) == 1 else
               f"processes {', '.join(map(str, group))} have")
        parts.append(f"{who} {value}")
    return f"{name} differs: {', '.join(parts)}"


def raise_if_different(name_to_value: dict, what: str) -> None:
    """Gather the fingerprints of every process; the same ValueError on each when they differ.

    The body of ``jaxnn.distributed.check_same_across_processes`` (see there);
    two small collectives: the names first, then the fingerprints.

    >>> raise_if_different({"X": np.ones((2, 4))}, "data")  # one process: nothing to compare
    """
    if jax.process_count() == 1:
        return
    names, _, rows = fingerprints(name_to_value)
    header = np.array([len(names), zlib.crc32("\n".join(names).encode())], np.uint32)
    headers = multihost_utils.process_allgather(header)  # (P, 2)
    me = jax.process_index()
    if not (headers == headers[0]).all():
        groups = " vs ".join(map(str, group_processes(headers)))
        raise ValueError(
            f"the processes check different sets of names for {what} (processes {groups}): "
            "they run different programs or jaxnn versions. This process "
            f"({me}) checks: {names}."
        )
    everyone = multihost_utils.process_allgather(rows)  # (P, k, WORDS)
    problems = [difference(name, everyone[:, i, :]) for i, name in enumerate(names)
                if not (everyone[:, i, :] == everyone[0, i, :]).all()]
    if problems:
        raise ValueError(
            f"{what} must be the same on every process, but " + "; ".join(problems) + ". Pass "
            "the same values on every process (same files, same seed, same settings)."
        )
