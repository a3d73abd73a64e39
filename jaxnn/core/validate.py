"""Argument checks shared by every entry point (one place, one wording).

Each ``check_*`` raises ``ValueError`` naming the argument, what is wrong and
the fix, before anything is compiled; each ``as_*`` returns the argument in
the form jaxnn computes with. Shape checks against a ``Network`` (params,
X: (n_x, m), Y: (n_L, m)) live with the Network (``jaxnn.network``); this
module checks the rest: names, numbers, keys and the values inside data.

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
                                       and not isinstance(keep_prob, jax.Array)):
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
    if isinstance(l2, bool) or isinstance(l2, str):
        raise ValueError(f"l2 = {l2!r} must be a finite number >= 0 (the weight-decay strength λ).")
    try:
        a = np.asarray(l2, float)
    except (TypeError, ValueError):
        raise ValueError(f"l2 = {l2!r} must be a finite number >= 0 (the weight-decay "
                         "strength λ).") from None
    if a.ndim > int(ensemble) or not np.all(np.isfinite(a) & (a >= 0)):
        what = "a finite number >= 0" + (" or an (E,) array of them" if ensemble else "")
        raise ValueError(f"l2 = {l2!r} must be {what} (the weight-decay strength λ).")


def check_learning_rate(learning_rate, *, ensemble: bool = False) -> None:
    """Check a learning rate α: a finite number > 0 (formulas §5).

    Args:
      learning_rate: α; a traced value (e.g. one rate per ensemble member under
        ``jax.vmap``) is not inspected.
      ensemble: allow an (E,) array, one rate per member.

    >>> check_learning_rate(0.1)
    """
    if isinstance(learning_rate, jax.core.Tracer):
        return
    if isinstance(learning_rate, (bool, str)):
        raise ValueError(f"learning_rate = {learning_rate!r} must be a finite number > 0.")
    try:
        a = np.asarray(learning_rate, float)
    except (TypeError, ValueError):
        raise ValueError(f"learning_rate = {learning_rate!r} must be a finite number > 0.") from None
    if a.ndim > int(ensemble):
        raise ValueError(f"learning_rate must be a scalar{' or (E,)' if ensemble else ''}, got "
                         f"shape {a.shape}.")
    if not np.all(np.isfinite(a) & (a > 0)):
        raise ValueError(f"learning_rate = {learning_rate!r} must be a finite number > 0"
                         + (" (or an (E,) array of them)." if ensemble else "."))


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
    fix = f"pass {name}=jax.random.key(0) (any integer seed)"
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
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} could not be read as an array of numbers: {e}.") from None
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_
                                 or a.dtype.name == "bfloat16"):
        raise ValueError(f"{name} must hold numbers, got an array of dtype {a.dtype} "
                         f"(e.g. {a.ravel()[:1].tolist()}); convert it with np.asarray(..., float).")
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
        if not (jnp.issubdtype(x.dtype, jnp.number) or x.dtype == jnp.bool_):
            raise ValueError(f"{name} must hold numbers, got dtype {x.dtype}.")
        if x.dtype != dtype:
            x = x.astype(dtype)
        if x.is_fully_addressable and not _known_finite(x):
            if not bool(_all_finite(x)):
                first_bad_column(name, np.asarray(x))
            _remember_finite(x)
        return x
    return jnp.asarray(as_float_array(name, x, dtype))
