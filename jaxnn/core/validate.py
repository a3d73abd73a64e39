"""Argument checks shared by every entry point (one place, one wording).

Each ``check_*`` raises ``ValueError`` naming the argument, what is wrong and
the fix, before anything is compiled; each ``as_*`` returns the argument in
the form jaxnn computes with. Shape checks against a ``Network`` (params,
X: (n_x, m), Y: (n_L, m)) live with the Network (``jaxnn.core.network``); this
module checks the rest: names, numbers, keys and the values inside data.

Only real numbers are computed with: ``check_real`` refuses complex,
datetime64/timedelta64, object and string arrays (a cast would silently lose
the imaginary part, or turn dates into day counts) and, for hyperparameters,
bools. It reads only the dtype, so it also runs on traced values. The core
functions take X and Y through ``as_array`` (a nested list becomes one array in
the params' dtype; arrays pass untouched) and a compiled step takes them
through ``as_batch`` on the host, before its jitted function is called.

The pure core functions (``forward``, ``cost``, ``backward``, ...) do not look
at values: they may run under ``jax.jit``, where values are unknown, and NaN
propagates through them as it does through ``jax.numpy``. The entry points
that own a whole run (``fit``, ``train_epochs``, ``check_gradients``, the CLI)
call ``as_data`` first, so a NaN in the data is reported as such, not as a
diverged training run.
"""

from __future__ import annotations

import numbers
import weakref

import jax
import jax.numpy as jnp
import numpy as np

GRADS = ("manual", "autodiff")


class MissingFileError(ValueError, FileNotFoundError):
    """A file or folder jaxnn was asked to read is not there (the message names the path).

    Both a ``ValueError`` (as every jaxnn input error) and a ``FileNotFoundError``
    (``errno`` is ``ENOENT``), so ``except FileNotFoundError`` catches it as it
    catches ``open``'s. Raised by the loaders of ``jaxnn.datasets``, and as
    ``CheckpointError`` subclass by ``jaxnn.checkpoint``.

    >>> err = MissingFileError("no/such.csv does not exist.")
    >>> isinstance(err, FileNotFoundError), isinstance(err, ValueError), str(err)
    (True, True, 'no/such.csv does not exist.')
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.errno = 2  # ENOENT, as open() sets it (str(self) stays the message)


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


def check_grad_name(grad) -> str:
    """Return ``grad`` if it is ``"manual"`` (formulas §4) or ``"autodiff"`` (``jax.grad``).

    Args:
      grad: the name of the gradient to train with.

    Returns:
      The name, unchanged.

    >>> check_grad_name("manual")
    'manual'
    """
    if not isinstance(grad, str) or grad not in GRADS:
        raise ValueError(f"grad = {grad!r}; valid: 'manual' (the hand-derived backward pass, "
                         "formulas §4) or 'autodiff' (jax.grad).")
    return grad


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


def check_keep_prob(keep_prob, key=None, *, need_key: bool = True) -> bool:
    """Check an inverted-dropout probability; return True when dropout is on (keep_prob < 1).

    Args:
      keep_prob: the probability of KEEPING each hidden unit, in (0, 1]; may be traced.
      key: the PRNG key dropout draws its masks from (needed when keep_prob < 1).
      need_key: False where the caller supplies the key itself (``fit`` splits its own).

    Returns:
      Whether dropout is on.

    >>> check_keep_prob(1.0), check_keep_prob(0.5, jax.random.key(0))
    (False, True)
    """
    if isinstance(keep_prob, bool) or (not isinstance(keep_prob, numbers.Real)
                                       and not isinstance(keep_prob, jax.Array)) \
            or getattr(keep_prob, "dtype", None) == np.bool_:
        raise ValueError(f"keep_prob = {keep_prob!r} must be a number in (0, 1] (the probability "
                         "of keeping a hidden unit; 1.0 turns dropout off).")
    if isinstance(keep_prob, numbers.Real):
        if not (0.0 < float(keep_prob) <= 1.0):
            raise ValueError(
                f"keep_prob = {keep_prob!r} must be in (0, 1]: it is the probability of KEEPING a "
                "hidden unit (1.0 turns dropout off)."
            )
        if keep_prob == 1.0:
            return False
    if need_key and key is None:
        raise ValueError(
            f"keep_prob = {keep_prob!r} asks for dropout, which needs a PRNG key: pass key=... "
            "(or keep_prob=1.0 to evaluate without dropout)."
        )
    return True


def l2_is_off(l2) -> bool:
    """True when the weight decay λ is a Python or NumPy zero (nothing to add to J or dW).

    Args:
      l2: λ, a number or a (possibly traced) array.

    >>> l2_is_off(0.0), l2_is_off(0.1)
    (True, False)
    """
    return isinstance(l2, numbers.Real) and l2 == 0


def check_l2(l2, *, ensemble: bool = False) -> None:
    """Check a weight-decay strength λ >= 0 (formulas §3's L2 term λ/(2m) Σ ||W||²).

    Args:
      l2: λ: a finite number >= 0, a traced array (not inspected), or with
        ``ensemble`` an (E,) array of them.
      ensemble: allow one λ per ensemble member.

    >>> check_l2(0.1)
    """
    if isinstance(l2, jax.core.Tracer):
        return
    if isinstance(l2, (bool, str, np.bool_)) or getattr(l2, "dtype", None) == np.bool_:
        raise ValueError(f"l2 = {l2!r} must be a finite number >= 0 (the weight-decay strength λ).")
    if hasattr(l2, "dtype"):
        check_real("l2", l2, bool_ok=False)
    try:
        a = np.asarray(l2, float)
    except (TypeError, ValueError):
        raise ValueError(f"l2 = {l2!r} must be a finite number >= 0 (the weight-decay "
                         "strength λ).") from None
    if a.ndim > int(ensemble) or not np.all(np.isfinite(a) & (a >= 0)):
        what = "a finite number >= 0" + (" or an (E,) array of them" if ensemble else "")
        raise ValueError(f"l2 = {l2!r} must be {what} (the weight-decay strength λ).")


def check_learning_rate(learning_rate, *, ensemble: bool = False, dtype=None) -> None:
    """Check a learning rate α: a finite real number > 0 (formulas §5), non-zero in ``dtype``.

    With ``dtype`` (the params' dtype) α is also refused when it rounds to 0 or to
    a subnormal number there (1e-50 in float32): W - α dW would then change
    nothing, and the run would report success having trained nothing.

    Args:
      learning_rate: α; a traced value (e.g. one rate per ensemble member under
        ``jax.vmap``) is not inspected.
      ensemble: allow an (E,) array, one rate per member.
      dtype: None, or the floating dtype the update is computed in.

    >>> check_learning_rate(0.1, dtype=jnp.float32)
    >>> check_learning_rate(1e-50, dtype=jnp.float32)
    Traceback (most recent call last):
    ...
    ValueError: learning_rate = 1e-50 rounds to 0.0 in float32 (the params' dtype), ...
    """
    if isinstance(learning_rate, jax.core.Tracer):
        return
    what = "a finite number > 0" + (" (or an (E,) array of them)" if ensemble else "")
    if learning_rate is None:
        raise ValueError(f"learning_rate = None; pass α, {what}, e.g. learning_rate=0.1.")
    if isinstance(learning_rate, (bool, str, bytes)):
        raise ValueError(f"learning_rate = {learning_rate!r} must be {what}, e.g. 0.1.")
    try:
        a = np.asarray(learning_rate)
    except (TypeError, ValueError):
        raise ValueError(f"learning_rate = {learning_rate!r} must be {what}, e.g. 0.1.") from None
    check_real("learning_rate", a, bool_ok=False)
    a = a.astype(float)
    if a.ndim > int(ensemble):
        raise ValueError(f"learning_rate must be a scalar{' or (E,)' if ensemble else ''}, got "
                         f"shape {a.shape}.")
    if not np.all(np.isfinite(a) & (a > 0)):
        raise ValueError(f"learning_rate = {learning_rate!r} must be {what}.")
    if dtype is None:
        return
    tiny = float(jnp.finfo(dtype).tiny)
    rounded = np.asarray(a, jnp.dtype(dtype)).astype(float)
    if np.any(rounded < tiny):
        i = int(np.argmax(rounded < tiny))
        raise ValueError(
            f"learning_rate = {float(a.ravel()[i])!r} rounds to {float(rounded.ravel()[i])!r} in "
            f"{jnp.dtype(dtype).name} (the params' dtype), below its smallest normal number "
            f"{tiny:.3g}: the updates would vanish and training would change nothing. Pass a "
            f"learning_rate >= {tiny:.3g} (typical: 1e-4 to 1), or float64 params.")


def check_weights(w, m: int) -> None:
    """Check per-example weights w: (m,) >= 0 with Σw > 0 (values only when concrete).

    Args:
      w: (m,) weights, e.g. 1 for a real column and 0 for padding.
      m: the number of columns of the batch.

    >>> check_weights(jnp.array([1.0, 1.0, 0.0]), 3)
    """
    shape = tuple(np.shape(w))
    if shape != (m,):
        raise ValueError(f"w has shape {shape}; per-example weights must be (m,) = ({m},), one "
                         "per column of X.")
    if isinstance(w, jax.core.Tracer):
        return
    a = np.asarray(w)
    if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.integer) \
            and a.dtype != np.bool_:
        raise ValueError(f"w must hold numbers, got dtype {a.dtype}.")
    if not (np.all(np.isfinite(a)) and np.all(a >= 0) and np.sum(a) > 0):
        raise ValueError("w must be finite and >= 0 with a positive sum (the weighted cost divides "
                         f"by Σw); got {a.tolist()[:8]}{' ...' if m > 8 else ''}.")


def check_positive_int(value, name: str) -> int:
    """Return ``value`` if it is an integer >= 1 (bools refused), else raise naming ``name``.

    Args:
      value: the number to check.
      name: the argument's name, for the message.

    >>> check_positive_int(3, "epochs")
    3
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} = {value!r} must be an integer > 0.")
    return int(value)


def as_key(key, name: str = "key") -> jax.Array:
    """A typed PRNG key from ``jax.random.key(seed)`` (legacy uint32 (2,) keys are wrapped).

    Args:
      key: ``jax.random.key(seed)``, (E,) such keys, or a legacy ``jax.random.PRNGKey``.
      name: the argument's name, for the message.

    Returns:
      The typed key.

    >>> as_key(jax.random.PRNGKey(0)).dtype == jax.random.key(0).dtype
    True
    """
    fix = f"pass {name}=jax.random.key(0) (jax.random.key(seed) for any integer seed)"
    if key is None or isinstance(key, (bool, numbers.Number, str)):
        raise ValueError(f"{name} = {key!r} is not a PRNG key: {fix}.")
    try:
        key = key if isinstance(key, jax.Array) else jnp.asarray(key)
    except (TypeError, ValueError):
        raise ValueError(f"{name} = {key!r} is not a PRNG key: {fix}.") from None
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if key.dtype == jnp.uint32 and key.shape[-1:] == (2,):
        return jax.random.wrap_key_data(key)
    raise ValueError(f"{name} has dtype {key.dtype} and shape {key.shape}, not a PRNG key: {fix}.")


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


# JAX arrays are immutable: one found finite stays finite, so a training loop that passes the
# same arrays call after call (one epoch per call) checks them once. id -> weak reference.
_FINITE: dict[int, weakref.ref] = {}


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
