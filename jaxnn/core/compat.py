"""The few JAX and NumPy APIs that moved between the oldest releases jaxnn supports and the newest.

pyproject.toml's floors (jax / jaxlib 0.7.0, optax 0.2.5, chex 0.1.87, numpy 1.26) are what CI's
floor job installs (``.ci/floor-constraints.txt``) to run ``tests/test_floor_smoke.py``. Each
name here is found by feature detection, once, at import (never by comparing version numbers),
and the rest of jaxnn takes it from here instead of spelling the newest API
(``tests/test_floor_smoke.py`` checks that no other module does):

* ``enable_x64``: float64 for the duration of a ``with`` block (conventions §1);
  ``jax.enable_x64`` from jax 0.8, ``jax.experimental.enable_x64`` before.
* ``savez_no_pickle``: ``np.savez(..., allow_pickle=False)``. Older NumPy (2.1 and before)
  has no such argument and would store it as one more array, named ``allow_pickle``.
* ``to_device``: a NumPy array onto the default device. From jax 0.10, ``jnp.asarray`` of a
  NumPy array compiles and runs a small program per new shape and dtype (``lax.stage``, or a
  conversion when a dtype is given); ``jax.device_put`` copies it, on every release.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["enable_x64", "savez_no_pickle", "to_device"]

if hasattr(jax, "enable_x64"):
    enable_x64 = jax.enable_x64
else:  # jax < 0.8
    from jax.experimental import enable_x64

_SAVEZ_TAKES_ALLOW_PICKLE = "allow_pickle" in inspect.signature(np.savez).parameters


def savez_no_pickle(file, **arrays: np.ndarray) -> None:
    """``np.savez(file, **arrays)`` that refuses object arrays, so loading never unpickles.

    Args:
      file: a path or an open binary file, as ``np.savez`` takes.
      **arrays: name -> array; each is stored as ``<name>.npy`` in the zip.

    Raises:
      ValueError: an array of dtype object (it could only be stored as a pickle), on every
        NumPy (newer NumPy raises it itself, with ``allow_pickle=False``).

    >>> import io
    >>> buffer = io.BytesIO()
    >>> savez_no_pickle(buffer, W=np.ones((2, 3)))
    >>> _ = buffer.seek(0)
    >>> sorted(np.load(buffer, allow_pickle=False).files)
    ['W']
    """
    if _SAVEZ_TAKES_ALLOW_PICKLE:
        np.savez(file, allow_pickle=False, **arrays)
        return
    for name, array in arrays.items():
        if np.asarray(array).dtype.hasobject:
            raise ValueError(f"savez_no_pickle: array {name!r} has dtype object, which could only be "
                             "stored as a pickle; convert it to a numeric or string dtype first.")
    np.savez(file, **arrays)


# dtypes whose NumPy cast rounds exactly as XLA's convert does (to nearest, ties to even)
_HOST_CAST = tuple(np.dtype(t) for t in (np.float32, np.float64, np.int32, np.int64, np.bool_))


def to_device(a, dtype=None) -> jax.Array:
    """``jnp.asarray(a, dtype)`` for host data, without compiling a program per shape.

    Args:
      a: a NumPy array, or anything ``np.asarray`` takes.
      dtype: the dtype wanted; float32, float64, int32, int64 and bool are cast by NumPy on
        the host (the same rounding as XLA's), other dtypes (bfloat16, ...) by JAX.

    Returns:
      The array on the default device, its dtype canonicalised as JAX does (float64 is
      float32 while x64 is off).

    >>> to_device(np.arange(3.0), np.float32).dtype
    dtype('float32')
    """
    a = np.asarray(a)
    if dtype is not None and np.dtype(dtype) != a.dtype:
        if np.dtype(dtype) not in _HOST_CAST:
            return jnp.asarray(a, dtype)
        a = a.astype(dtype)
    return jax.device_put(a)
