"""Argument checks, the data half: the values inside data arrays (one place, one wording).

The other half, ``jaxnn.core.validate``, checks names, numbers and keys. Only real numbers
are computed with: ``check_real`` refuses complex, datetime64/timedelta64, object and string
arrays (a cast would silently lose the imaginary part, or turn dates into day counts) and,
for hyperparameters, bools. It reads only the dtype, so it also runs on traced values. The
core functions take X and Y through ``as_array`` (a nested list becomes one array in the
params' dtype; arrays pass untouched) and a compiled step takes them through ``as_batch`` on
the host, before its jitted function is called. The entry points that own a whole run
(``fit``, ``train_epochs``, ``check_gradients``, the CLI) call ``as_data`` first, so a NaN in
the data is reported as such, not as a diverged training run.
"""

from __future__ import annotations

import numbers
import weakref

import jax
import jax.numpy as jnp
import numpy as np

# JAX arrays are immutable: one found finite stays finite, so a training loop that passes the
# same arrays call after call (one epoch per call) checks them once. id -> weak reference.
_FINITE: dict[int, weakref.ref] = {}


def _not_real(name: str, dtype, example=None) -> str:
    """Why an array of ``dtype`` is not real numbers, and the explicit conversion to use."""
    var = name.rsplit(": ", 1)[-1]  # "fit: X" -> X, for the code in the fix
    kind = np.dtype(dtype).kind
    if kind == "c":
        return (f"{name} has dtype {dtype}: jaxnn computes with real numbers, and a cast would "
                f"silently drop the imaginary part. Pass {var}.real (or np.abs({var})) if that "
                "is what you mean.")
    if kind in "mM":
        return (f"{name} has dtype {dtype} (dates or durations), not numbers: a cast would silently "
                "turn them into counts of time units. Convert them explicitly, e.g. "
                f"({var} - {var}.min()) / np.timedelta64(1, 'D') for days as floats.")
    if kind == "O":
        return (f"{name} is an array of Python objects (dtype object{example}): mixed types, None "
                "or ragged rows. Fix the cells that are not numbers, then convert with "
                f"np.asarray({var}, dtype=float).")
    if kind in "US":
        return (f"{name} must hold numbers, not strings (dtype {dtype}{example}); parse them "
                f"first, e.g. np.asarray({var}, dtype=float).")
    if kind == "b":
        return (f"{name} has dtype bool; it must be a real number, and True/False here usually "
                "hides a mistake (a comparison passed where a value was meant).")
    return f"{name} has dtype {dtype}; it must hold real numbers (float or int)."


def _example(a: np.ndarray) -> str:
    """', e.g. None at (0, 1)': the first entry that is not a real number (error path only)."""
    flat = a.ravel()
    if not flat.size:
        return ""
    bad = next((i for i, v in enumerate(flat)
                if isinstance(v, bool) or not isinstance(v, numbers.Real)), 0)
    at = tuple(int(i) for i in np.unravel_index(bad, a.shape)) if a.ndim else ()
    v = flat[bad].item() if isinstance(flat[bad], np.generic) else flat[bad]
    return f", e.g. {v!r} at {at}"


def check_real(name: str, x, *, bool_ok: bool = True) -> None:
    """Raise ``ValueError`` unless ``x`` holds real numbers: floating, integer (or bool if ``bool_ok``).

    Complex, datetime64/timedelta64, object and string arrays are refused, each
    with the explicit conversion to use (a cast would silently lose information).
    Only the dtype is read, so it costs nothing and works on traced values.

    Args:
      name: the argument's name, for the message.
      x: an array (NumPy, JAX or traced) or anything ``np.asarray`` reads.
      bool_ok: accept bool (as 0/1): True for data, False for a hyperparameter.

    >>> check_real("X", np.ones((2, 3)))
    >>> check_real("X", np.ones(2, complex))
    Traceback (most recent call last):
    ...
    ValueError: X has dtype complex128: jaxnn computes with real numbers, ...
    """
    dtype = getattr(x, "dtype", None)
    if isinstance(dtype, np.dtype) and dtype.kind in ("fiub" if bool_ok else "fiu"):
        return  # the common case, without jnp.issubdtype's cost (this runs once per call)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        raise ValueError(f"{name} is a PRNG key (dtype {dtype}), not an array of numbers.")
    if not isinstance(dtype, np.dtype):  # a list, a scalar, a pandas column
        x = np.asarray(x)
        dtype = x.dtype
    if dtype.kind not in "mM" and (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(
            dtype, jnp.integer) or (bool_ok and dtype == np.bool_)):  # timedelta64 is an integer
        return
    example = _example(x) if isinstance(x, np.ndarray) and dtype.kind in "OUS" else ""
    raise ValueError(_not_real(name, dtype, example))


def as_array(name: str, x, like=None):
    """An array argument (X or Y) of a core function: arrays pass, nested lists are converted.

    A NumPy or JAX array (traced or not) is returned as it is once its dtype is
    checked (``check_real``), so the compiled hot path does no extra work; a
    nested Python list or tuple becomes one array of ``dtype``. Runs where
    values may be traced: a list holding traced values is stacked with ``jnp``.

    Args:
      name: the argument's name, for messages ("X", "Y").
      x: an array, or a nested list of numbers, (n, m) with one column per example.
      like: the params pytree: a converted list takes their floating dtype
        (default float32); arrays keep theirs.

    Returns:
      The array.

    >>> as_array("X", [[1, 2], [3, 4]]).dtype
    dtype('float32')
    """
    if isinstance(x, (jax.Array, np.ndarray)):
        check_real(name, x)
        return x
    floats = [v.dtype for v in jax.tree.leaves(like)
              if hasattr(v, "dtype") and jnp.issubdtype(v.dtype, jnp.floating)]
    dtype = jnp.result_type(*floats) if floats else np.float32
    if any(isinstance(v, jax.core.Tracer) for v in jax.tree.leaves(x)):
        try:
            return jnp.asarray(x, dtype)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{name} could not be read as an array of numbers: {e}") from None
    a = _read(name, x)
    check_real(name, a)
    return jnp.asarray(a.astype(dtype))


def _read(name: str, x) -> np.ndarray:
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} could not be read as an array of numbers ({e}); a nested list "
                         "needs the same number of entries in every row.") from None


def as_batch(X, Y, net, like=None):
    """``(X, Y)`` for a compiled training step, checked on the host before it is called.

    What a jitted step cannot do for itself: a nested list is converted once
    (``as_array``; under ``jit`` it would arrive as a list of scalar tracers), and
    X's shape is checked before Y's (a transposed X is named as X, with X.T).
    Costs a few attribute reads per call for arrays.

    Args:
      X: (n_x, m), an array or a nested list.
      Y: (n_L, m), an array or a nested list.
      net: the ``Network``.
      like: the params: a converted list takes their floating dtype.

    Returns:
      ``(X, Y)`` as arrays.

    >>> net = jaxnn.Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> X, Y = as_batch([[1, 2], [3, 4]], [[0, 1]], net)
    >>> X.shape, Y.dtype
    ((2, 2), dtype('float32'))
    """
    from jaxnn.core.network import check_Y  # network imports this module: import on first use

    if not (isinstance(X, jax.Array) and isinstance(Y, jax.Array)):
        X, Y = as_array("X", X, like), as_array("Y", Y, like)
    check_Y(Y, X, net)  # X first, then Y; for arrays, shapes and dtypes only
    return X, Y


def first_bad_column(name: str, a, fix: str = "Remove or impute those examples before training.") -> None:
    """Raise if a concrete array holds NaN or inf, naming ``name`` and the first bad column.

    Args:
      name: the array's name in the message (e.g. "X").
      a: a NumPy or concrete JAX array, (n, m) with one column per example
        (other ranks are reported by flat index).
      fix: the advice that ends the message.

    >>> first_bad_column("X", np.ones((2, 3)))
    """
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        return
    bad = ~np.isfinite(a)
    if not bad.any():
        return
    if a.ndim == 2:
        col = int(np.argmax(bad.any(axis=0)))
        row = int(np.argmax(bad[:, col]))
        raise ValueError(f"{name} holds NaN or inf: first in column {col} (example {col}), row "
                         f"{row}, value {a[row, col]!r}. {fix}")
    i = int(np.argmax(bad.ravel()))
    raise ValueError(f"{name} holds NaN or inf (first at flat index {i}). Replace them with finite "
                     "values.")


def as_float_array(name: str, x, dtype=None) -> np.ndarray:
    """A concrete floating-point NumPy array from ``x`` (nested lists welcome), values checked.

    Args:
      name: the array's name in messages.
      x: array-like of numbers.
      dtype: the floating dtype to return (default: x's own if floating, else float32).

    Returns:
      The array (a copy only when a conversion was needed).

    >>> as_float_array("X", [[1, 2], [3, 4]]).dtype
    dtype('float32')
    """
    if isinstance(x, jax.core.Tracer):
        raise ValueError(f"{name} is a traced value: this entry point runs its own compiled "
                         "program; call it outside jax.jit with concrete arrays.")
    a = _read(name, x)
    check_real(name, a)
    if dtype is None:
        dtype = a.dtype if jnp.issubdtype(a.dtype, jnp.floating) else np.float32
    a = a.astype(dtype, copy=False)
    first_bad_column(name, a)
    return a


@jax.jit
def _all_finite(x):
    return jnp.all(jnp.isfinite(x))


def _known_finite(x) -> bool:
    ref = _FINITE.get(id(x))
    return ref is not None and ref() is x


def _remember_finite(x) -> None:
    if len(_FINITE) > 256:
        _FINITE.clear()
    try:
        _FINITE[id(x)] = weakref.ref(x)
    except TypeError:  # an array type without weak references: simply not cached
        pass


def as_data(name: str, x, dtype) -> jax.Array:
    """Data for a training or checking run: a device array of ``dtype``, values checked.

    NumPy arrays and nested lists go through ``as_float_array``; a JAX array is
    checked on its device (one small reduction), so data already on the device
    are not copied back. NaN/inf raise a ValueError naming ``name`` and the first
    bad column.

    Args:
      name: the array's name in messages (e.g. "X").
      x: array-like, (n, m) with one column per example.
      dtype: the floating dtype to compute in.

    Returns:
      A ``jax.Array`` of ``dtype``.

    >>> as_data("X", [[1.0, 2.0]], jnp.float32).shape
    (1, 2)
    """
    if isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer):
        check_real(name, x)
        if x.dtype != dtype:
            x = x.astype(dtype)
        if x.is_fully_addressable and not _known_finite(x):
            if not bool(_all_finite(x)):
                first_bad_column(name, np.asarray(x))
            _remember_finite(x)
        return x
    return jnp.asarray(as_float_array(name, x, dtype))
