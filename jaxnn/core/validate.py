"""Argument checks shared by every entry point (one place, one wording).

Each ``check_*`` raises ``ValueError`` naming the argument, what is wrong and
the fix, before anything is compiled; each ``as_*`` returns the argument in
the form jaxnn computes with. Shape checks against a ``Network`` (params,
X: (n_x, m), Y: (n_L, m)) live with the Network (``jaxnn.core.network``); this
module checks the rest: names, numbers and keys; the values inside data arrays are checked
by its other half, ``jaxnn.core.validate_data``.

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

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.core.validate_data import check_real

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
