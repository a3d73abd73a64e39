"""Memory checked before allocation: a network too big for the machine is one clear error.

XLA allocates a network's buffers asynchronously: a parameter matrix larger
than the memory fails inside the runtime, and the program then either stops
with a raw "Out of memory allocating N bytes" or waits forever on the failed
buffer. The checks here estimate the bytes from the shapes alone, before
anything is allocated, and compare them with the memory free where they would
go (``available_bytes``): the device's own memory where the runtime reports
it (GPU, TPU), else the host's (``MemAvailable``, and the cgroup limit of a
container). Too big is a ``ValueError`` naming the largest layer and the bytes.

The estimate (``estimate_bytes``) counts what one training step must hold at
once: the params (formulas §1 shapes, W: (n_l, n_{l-1}), b: (n_l, 1)), the
optimizer state (its exact tree, from ``jax.eval_shape`` of the optimizer's
``init``), the gradients (the params' shapes) and one batch of activations
(X: (n_x, B), then Z and A: (n_l, B) for each layer, the forward cache of
formulas §4). XLA needs some more (temporaries, the data set on the device):
it is a lower bound, so a "fits" is no promise, but a "does not fit" is sure.
An out-of-memory error that still comes from XLA is turned into a
``ValueError`` too (``out_of_memory_as_error``).

Where the free memory comes from, and the one comparison with it, is
``jaxnn.train.free_memory`` (inside its ``one_reading()``, one ``fit`` call
reads the free memory once per device).
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.core.network import Network
from jaxnn.train.free_memory import available_bytes, raise_if_too_big, size_text
from jaxnn.train.optimizers import as_optimizer


class MemoryEstimate(NamedTuple):
    """Bytes one training step of a network holds at once (see the module docstring).

    Attributes:
      params: the W and b of every layer.
      opt_state: the optimizer's state.
      grads: one gradient per parameter.
      activations: X: (n_x, B) and Z, A: (n_l, B) of every layer for one batch of B.
      total: the sum of the four.
      layer: l, 1..L, the layer with the most parameter bytes.
      layer_bytes: that layer's W and b bytes.
    """

    params: int
    opt_state: int
    grads: int
    activations: int
    total: int
    layer: int
    layer_bytes: int


def _tree_bytes(tree) -> int:
    return sum(int(np.prod(x.shape, dtype=np.int64)) * np.dtype(x.dtype).itemsize
               for x in jax.tree.leaves(tree))


def opt_state_bytes(optimizer, params) -> int:
    """The bytes of ``optimizer``'s state for ``params`` (arrays or ``jax.ShapeDtypeStruct``s).

    Traced with ``jax.eval_shape``: nothing is allocated.

    Args:
      optimizer: None, a name in ``OPTIMIZERS``, a float or an optax transformation.
      params: the params pytree, or its shapes.

    >>> p = [{"W": jax.ShapeDtypeStruct((3, 2), jnp.float32), "b": jax.ShapeDtypeStruct((3, 1), jnp.float32)}]
    >>> opt_state_bytes("adam", p) >= 2 * 9 * 4  # m and v: 2 x 9 float32, and a step count
    True
    """
    leaves, treedef = jax.tree.flatten(params)
    shapes = tuple((tuple(np.shape(x)), np.dtype(x.dtype)) for x in leaves)
    try:
        return _opt_state_bytes(optimizer, treedef, shapes)
    except TypeError:  # an unhashable optimizer: traced each time
        return _opt_state_bytes.__wrapped__(optimizer, treedef, shapes)


@functools.lru_cache(maxsize=64)
def _opt_state_bytes(optimizer, treedef, shapes) -> int:
    structs = [jax.ShapeDtypeStruct(s, d) for s, d in shapes]
    return _tree_bytes(jax.eval_shape(as_optimizer(optimizer).init,
                                      jax.tree.unflatten(treedef, structs)))


def estimate_bytes(net: Network, batch_size: int, optimizer=None, dtype=jnp.float32, *,
                   ensemble: int = 1) -> MemoryEstimate:
    """What one training step of ``net`` holds at once, in bytes, from the shapes alone.

    Args:
      net: the ``Network`` (layer sizes n_0 = n_x, ..., n_L).
      batch_size: B, the columns of one batch (m for full batch).
      optimizer: None, a name in ``OPTIMIZERS``, a float or an optax transformation.
      dtype: the params' dtype.
      ensemble: E models trained together (every count times E).

    Returns:
      A ``MemoryEstimate``.

    >>> e = estimate_bytes(Network((4, 100000, 100000, 3), ("relu", "relu", "softmax"), "cross_entropy"), 120)
    >>> size_text(e.params), size_text(e.total), e.layer, size_text(e.layer_bytes)
    ('40.0 GB', '80.2 GB', 2, '40.0 GB')
    """
    itemsize = np.dtype(dtype).itemsize
    sizes = [int(n) for n in net.layer_sizes]
    per_layer = [(n * n_prev + n) * itemsize for n_prev, n in zip(sizes, sizes[1:])]
    params = sum(per_layer) * ensemble
    shapes = [{"W": jax.ShapeDtypeStruct((n, n_prev), dtype), "b": jax.ShapeDtypeStruct((n, 1), dtype)}
              for n_prev, n in zip(sizes, sizes[1:])]
    opt = opt_state_bytes(optimizer, shapes) * ensemble
    activations = (sizes[0] + 2 * sum(sizes[1:])) * int(batch_size) * itemsize * ensemble
    l = int(np.argmax(per_layer))
    return MemoryEstimate(params, opt, params, activations, params + opt + params + activations,
                          l + 1, per_layer[l])


def check_memory(net: Network, batch_size: int, *, optimizer=None, dtype=jnp.float32,
                 ensemble: int = 1, device=None) -> MemoryEstimate:
    """Raise a one-line ``ValueError`` when training ``net`` cannot fit in memory; else the estimate.

    Call it before ``init_params`` for a network whose size comes from a
    user (``jaxnn train`` does): ``estimate_bytes`` against ``available_bytes``.

    Args:
      net: the ``Network``.
      batch_size: B, the columns of one batch (m for full batch).
      optimizer: None, a name in ``OPTIMIZERS``, a float or an optax transformation.
      dtype: the params' dtype.
      ensemble: E models trained together.
      device: the device the params go to (default: the first local device).

    Returns:
      The ``MemoryEstimate``.

    Raises:
      ValueError: naming the network, the bytes, what is free and the largest layer.

    >>> net = Network((4, 100000, 100000, 3), ("relu", "relu", "softmax"), "cross_entropy")
    >>> check_memory(net, 120) if available_bytes()[0] < 8e10 else None
    Traceback (most recent call last):
    ...
    ValueError: the network 4-100000-100000-3 needs about 80.2 GB (params 40.0 GB, ...
    """
    e = estimate_bytes(net, batch_size, optimizer, dtype, ensemble=ensemble)
    sizes = tuple(net.layer_sizes)
    parts = (f"params {size_text(e.params)}, optimizer state {size_text(e.opt_state)}, "
             f"gradients {size_text(e.grads)}, activations of a batch of {batch_size} "
             f"{size_text(e.activations)}" + (f", {ensemble} models" if ensemble > 1 else ""))
    largest = (f"its largest layer, layer {e.layer} (W{e.layer}: {sizes[e.layer]} x "
               f"{sizes[e.layer - 1]} {np.dtype(dtype).name}, {size_text(e.layer_bytes)})")
    raise_if_too_big(f"the network {'-'.join(map(str, sizes))} needs", e.total, parts, largest,
                     device)
    return e


def _leaves(params) -> list[tuple[str, tuple, int]]:
    """(name, shape, itemsize) of each params leaf: 'W2' for the W of layer 2."""
    out = []
    for path, x in jax.tree_util.tree_flatten_with_path(params)[0]:
        keys = [getattr(k, "idx", getattr(k, "key", None)) for k in path]
        name = (f"{keys[1]}{keys[0] + 1}" if len(keys) == 2 and isinstance(keys[0], int)
                else jax.tree_util.keystr(path))
        out.append((name, tuple(np.shape(x)), np.dtype(x.dtype).itemsize))
    return out


def _nbytes(shape, itemsize) -> int:
    return math.prod(shape) * itemsize  # Python ints: exact, and cheaper than np.prod


def _largest(leaves) -> str:
    name, shape, itemsize = max(leaves, key=lambda t: _nbytes(t[1], t[2]))
    return f"its largest array, {name} {shape} ({size_text(_nbytes(shape, itemsize))})"


def _device_of(params):
    """The device of this process that holds the first array leaf (None: the default device)."""
    for x in jax.tree.leaves(params):
        if isinstance(x, jax.Array) and not x.is_deleted():
            return next((d for d in x.devices() if d.process_index == jax.process_index()), None)
    return None


def check_state_fits(params, optimizer=None) -> None:
    """Before ``init_state`` allocates: a copy of ``params`` and the optimizer state must fit.

    Args:
      params: the params (arrays or ``jax.ShapeDtypeStruct``s).
      optimizer: None, a name in ``OPTIMIZERS``, a float or an optax transformation.

    Raises:
      ValueError: naming the largest parameter and the bytes.

    >>> check_state_fits([{"W": jnp.ones((3, 2)), "b": jnp.zeros((3, 1))}], "adam")
    >>> check_state_fits([{"W": jax.ShapeDtypeStruct((10**7, 10**7), jnp.float32)}])
    Traceback (most recent call last):
    ...
    ValueError: init_state: the params and optimizer state need about 400.0 TB ...
    """
    leaves = _leaves(params)
    if not leaves:
        return
    p_bytes = sum(_nbytes(s, i) for _, s, i in leaves)
    opt = opt_state_bytes(optimizer, params)
    raise_if_too_big("init_state: the params and optimizer state need", p_bytes + opt,
                     lambda: f"a copy of the params {size_text(p_bytes)}, optimizer state "
                     f"{size_text(opt)}", lambda: _largest(leaves), _device_of(params))


def check_step_fits(params, batch_size: int) -> None:
    """Before training: the gradients and one batch of activations must fit beside the state.

    Args:
      params: the params of the state (W: (n_l, n_{l-1}), b: (n_l, 1); a leading (E,) in an ensemble).
      batch_size: B, the columns of one batch.

    Raises:
      ValueError: naming the largest parameter and the bytes.

    >>> check_step_fits([{"W": jnp.ones((3, 2)), "b": jnp.zeros((3, 1))}], 64)
    """
    leaves = _leaves(params)
    Ws = [(s, i) for n, s, i in leaves if n.startswith("W") and len(s) >= 2]
    if not Ws:
        return
    p_bytes = sum(_nbytes(s, i) for _, s, i in leaves)
    (first, itemsize) = Ws[0]
    E = math.prod(first[:-2])  # 1, or an ensemble's E
    # X: (n_x, B), then Z and A: (n_l, B) of every layer (formulas §4's cache)
    act = E * int(batch_size) * (first[-1] + 2 * sum(s[-2] for s, _ in Ws)) * itemsize
    raise_if_too_big("training: the gradients and activations need", p_bytes + act,
                     lambda: f"gradients {size_text(p_bytes)}, activations of a batch of "
                     f"{batch_size} {size_text(act)}", lambda: _largest(leaves),
                     _device_of(params))


def is_out_of_memory(error: BaseException) -> bool:
    """Whether a runtime error is XLA running out of memory (RESOURCE_EXHAUSTED).

    Args:
      error: the exception.

    >>> is_out_of_memory(RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 4 bytes."))
    True
    """
    text = str(error)
    return isinstance(error, RuntimeError) and ("RESOURCE_EXHAUSTED" in text
                                                or "Out of memory" in text)


def out_of_memory_text(error: BaseException) -> str:
    """XLA's out-of-memory error in one line: how much it could not allocate, else its first line.

    The bytes are found in the message whichever call failed (an allocation says
    RESOURCE_EXHAUSTED, a program that allocates as it is dispatched INTERNAL).

    Args:
      error: the exception (``is_out_of_memory``).

    >>> out_of_memory_text(RuntimeError("INTERNAL: Error dispatching: Out of memory allocating 4000 bytes"))
    'XLA could not allocate 4000 bytes (4.0 kB)'
    """
    found = re.search(r"Out of memory allocating (\d+) bytes", str(error))
    if found:
        n = int(found.group(1))
        return f"XLA could not allocate {n} bytes ({size_text(n)})"
    return "XLA: " + " ".join(str(error).strip().splitlines()[0].split())[:300]


@contextlib.contextmanager
def out_of_memory_as_error():
    """Turn XLA's out-of-memory error (``JaxRuntimeError``) into a one-line ``ValueError``.

    Raises:
      ValueError: the bytes XLA could not allocate and what to change.

    >>> with out_of_memory_as_error():
    ...     jnp.zeros((10**13,), jnp.float32).block_until_ready()
    Traceback (most recent call last):
    ...
    ValueError: out of memory: XLA could not allocate 40000000000000 bytes (40.0 TB); ...
    """
    try:
        yield
    except jax.errors.JaxRuntimeError as e:
        if not is_out_of_memory(e):
            raise
        free = available_bytes()
        raise ValueError(
            f"out of memory: {out_of_memory_text(e)}; "
            + (f"{size_text(free[0])} is free ({free[1]}). " if free else "")
            + "Use fewer or smaller hidden layers, a smaller batch, or a machine with more memory."
        ) from None
