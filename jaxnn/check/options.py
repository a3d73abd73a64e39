"""Option and input checks shared by the checkers; thresholds of conventions §3.

Each ``check_*`` raises ``ValueError`` naming the argument, what is wrong and
the fix, before anything is compiled. Unit roundoffs and the thresholds live
here, so every checker reads the same numbers.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.core.activations import Activation
from jaxnn.core.losses import Loss
from jaxnn.core.network import Network, check_problem
from jaxnn.core.validate_data import as_float_array

Array = jax.Array

TINY = 1e-30
METHODS = ("autodiff", "finite_difference", "jvp")
DEFAULT_METHODS = ("autodiff", "finite_difference")
# conventions §3 for float32/float64. Half precision is not covered there:
# about ten units of the format's epsilon.
AUTODIFF_THRESHOLDS = {"float64": 1e-10, "float32": 1e-5, "float16": 1e-2, "bfloat16": 1e-1}
FD_THRESHOLD = 1e-6
JVP_THRESHOLD = 1e-10
PARAM_NAMES = ("W", "b")
# A check's programs are small and run a few times: XLA's backend optimisation (LLVM -O3 on CPU)
# costs more compile time than it saves run time; level 0 about halves compiling. Where this
# jax.jit has no compiler_options (older releases), the defaults.
FAST_COMPILE = (
    {"compiler_options": {"xla_backend_optimization_level": 0}}
    if "compiler_options" in inspect.signature(jax.jit).parameters
    else {}
)
# unit roundoff u = 2^-p of each format (p: significand bits, implicit bit included, minus one)
UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}


class CheckOptions(NamedTuple):
    """The options of a check, in one place (the checkers' keyword arguments, validated).

    Attributes:
      methods: the methods to run, e.g. ``("reference", "finite_difference")``.
      eps: the finite-difference step ε.
      thresholds: the caller's per-method rtol overrides (or None).
      seed: seed of the random cotangents and directions.
      n_worst: how many worst entries each method reports.
      n_cotangents: random cotangents for a non-scalar function.
      max_entries: leaves up to this size are perturbed entry by entry.
      n_directions: random unit directions per larger leaf (and per leaf for jvp).
      jit: compile the evaluations (kept for the next check of the same functions and shapes).
      cotangents: ``"random"`` (``n_cotangents`` seeded normal ones, on each output alone when there
        are several) or ``"basis"`` (one per output entry: the whole Jacobian, row by row).
    """

    methods: tuple[str, ...] = DEFAULT_METHODS
    eps: float = 1e-6
    thresholds: dict | None = None
    seed: int = 0
    n_worst: int = 5
    n_cotangents: int = 3
    max_entries: int = 4096
    n_directions: int = 4
    jit: bool = True
    cotangents: str = "random"


def full_precision_matmuls(fn):
    """Run ``fn`` with float32 matmuls in full float32 precision.

    TPUs (bf16 passes) and recent GPUs (TF32) multiply float32 matrices in lower
    precision by default; that rounding (~1e-3) would fail the 1e-5 autodiff
    threshold on a correct derivation. A check tests the derivation, not the
    hardware's matmul mode. On CPU this is already the default.

    Args:
      fn: the checker to wrap.

    >>> full_precision_matmuls(lambda: 1)()
    1
    """

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with jax.default_matmul_precision("highest"):
            return fn(*args, **kwargs)

    return wrapped


def dtype_name(dtype) -> str:
    """The name of a floating dtype: ``"float32"``, ``"float64"``, ``"bfloat16"``, ``"float16"``.

    Args:
      dtype: a NumPy / JAX dtype or its name.

    >>> dtype_name(jnp.float32)
    'float32'
    """
    return jnp.dtype(dtype).name


def unit_roundoff(dtype) -> float:
    """The unit roundoff u of a floating dtype (2^-24 for float32, 2^-53 for float64).

    Args:
      dtype: a floating dtype or its name.

    >>> unit_roundoff("float32") == 2.0 ** -24
    True
    """
    return UNIT_ROUNDOFF.get(dtype_name(dtype), 2.0**-24)


def check_eps(eps) -> float:
    """Return the finite-difference step ε as a float if it is a finite number > 0.

    Args:
      eps: the step.

    >>> check_eps(1e-6)
    1e-06
    """
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps) or eps <= 0:
        raise ValueError(
            f"eps = {eps!r} must be a finite number > 0 (the finite-difference step; "
            "conventions §3 uses 1e-6 in float64)."
        )
    return float(eps)


def check_methods(methods, allowed=METHODS) -> tuple[str, ...]:
    """Return ``methods`` as a tuple if every one is in ``allowed`` (a single name is accepted).

    Args:
      methods: a method name or a sequence of them.
      allowed: the valid names.

    >>> check_methods("jvp")
    ('jvp',)
    """
    if isinstance(methods, str):
        methods = (methods,)
    methods = tuple(methods)
    bad = [m for m in methods if m not in allowed]
    if bad or not methods:
        raise ValueError(f"methods = {methods!r}: choose one or more of {', '.join(allowed)}.")
    return methods


def check_thresholds(thresholds, methods, defaults: dict[str, float]) -> dict[str, float]:
    """``{method: threshold}`` for ``methods``: ``defaults`` overridden by ``thresholds``.

    Args:
      thresholds: the caller's overrides ``{method: rtol}`` or None.
      methods: the methods that run.
      defaults: ``{method: rtol}`` for every valid method.

    >>> check_thresholds({"jvp": 1e-9}, ("jvp",), {"jvp": 1e-10})
    {'jvp': 1e-09}
    """
    out = dict(defaults)
    for name, value in dict(thresholds or {}).items():
        if name not in defaults:
            raise ValueError(f"thresholds: unknown method {name!r}; valid: {', '.join(defaults)}.")
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not (value > 0 and math.isfinite(value))
        ):
            raise ValueError(f"thresholds[{name!r}] = {value!r} must be a finite number > 0.")
        out[name] = float(value)
    return {m: out[m] for m in methods}


def check_positive_ints(**values) -> None:
    """Raise unless every keyword's value is an integer >= 1 (bools refused).

    Args:
      **values: ``name=value`` pairs.

    >>> check_positive_ints(n_worst=5)
    """
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} = {value!r} must be an integer >= 1.")


def param_dtype(params) -> str:
    """The dtype name of a pytree's leaves (their common result type when they differ).

    Args:
      params: a pytree of arrays.

    >>> param_dtype({"W": jnp.ones(2)})
    'float32'
    """
    dtypes = {dtype_name(x.dtype) for x in jax.tree.leaves(params)}
    if len(dtypes) == 1:
        return dtypes.pop()
    return dtype_name(jnp.result_type(*jax.tree.leaves(params)))


def check_network_inputs(params, X, Y, net) -> None:
    """Clear ValueErrors for inputs that do not fit ``net`` or hold NaN / inf (before any tracing).

    Args:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``.
      X: (n_x, m).
      Y: (n_L, m).
      net: the ``Network``.

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jaxnn.init_params(jax.random.key(0), net)
    >>> check_network_inputs(params, jnp.ones((2, 4)), jnp.ones((1, 4)), net)
    """
    check_problem(params, X, Y, net, "check_gradients")
    for l, p in enumerate(params, start=1):
        for name in PARAM_NAMES:
            _finite(f"check_gradients: {name}^[{l}] (layer {l} {name})", p[name])
    _finite("check_gradients: X", X)
    _finite("check_gradients: Y", Y)
    check_callables(net, np.shape(X)[1])


def _finite(name: str, x) -> None:
    # the message names the array and its first bad column (one column per example)
    as_float_array(name, x, np.float64)


def check_callables(net: Network, m: int, dtype=jnp.float32) -> None:
    """Shape-check every activation's forward/backward and the loss on (n_l, m) inputs.

    A custom g' with the wrong output shape would otherwise surface as a
    broadcasting error deep inside JAX. ``jax.eval_shape`` runs nothing.

    Args:
      net: the ``Network``.
      m: batch size.
      dtype: dtype of the abstract inputs.

    >>> check_callables(Network((2, 3, 1), ("tanh", "sigmoid"), "bce"), 4)
    """
    for l, (g, n) in enumerate(zip(net.layer_activations, net.layer_sizes[1:]), start=1):
        shape_check_activation(g, (n, m), dtype, f"layer {l}: ")
    shape_check_loss(net.loss_fn, (net.n_L, m), dtype)


def shape_check_activation(g: Activation, shape, dtype, where: str = "") -> None:
    """Raise ValueError unless g's forward and backward return arrays of Z's shape.

    Args:
      g: the ``Activation``.
      shape: the shape of Z, (n_l, m).
      dtype: the dtype of Z.
      where: prefix of the message (e.g. ``"layer 2: "``).

    >>> shape_check_activation(jaxnn.get_activation("tanh"), (3, 4), jnp.float32)
    """
    Z = jax.ShapeDtypeStruct(shape, dtype)
    try:
        A = jax.eval_shape(g.forward, Z)
    except Exception as e:  # noqa: BLE001 - any failure of user code becomes a clear error
        raise ValueError(
            f"{where}activation {g.name!r}: forward(Z) failed for Z of shape {shape}: {e}"
        ) from None
    if tuple(A.shape) != tuple(shape):
        raise ValueError(
            f"{where}activation {g.name!r}: forward(Z) returned shape {tuple(A.shape)}, "
            f"expected {shape} (the shape of Z)."
        )
    try:
        dZ = jax.eval_shape(g.backward, Z, Z, Z)
    except Exception as e:  # noqa: BLE001
        raise ValueError(
            f"{where}activation {g.name!r}: backward(dA, Z, A) failed for arrays of shape {shape}: "
            f"{type(e).__name__}: {first_line(e)}. The derivative g'(Z) must "
            "return an array of the same shape as Z."
        ) from None
    if tuple(dZ.shape) != tuple(shape):
        raise ValueError(
            f"{where}activation {g.name!r}: backward(dA, Z, A) returned shape {tuple(dZ.shape)}, "
            f"expected {shape}: the derivative g'(Z) must return an array of the same shape as Z."
        )
    # dA * g'(Z) broadcasts a g'(Z) of shape (n, 1) to (n, m) without a word (and a wrong
    # derivative then reads as a FAIL verdict): a scalar dA shows g'(Z)'s own shape.
    try:
        probe = jax.eval_shape(g.backward, jax.ShapeDtypeStruct((), dtype), Z, Z)
    except Exception:  # noqa: BLE001 - a backward that needs a full dA: nothing to learn here
        return
    if tuple(probe.shape) not in ((), tuple(shape)):
        raise ValueError(
            f"{where}activation {g.name!r}: the derivative g'(Z) returned shape {tuple(probe.shape)} for "
            f"Z of shape {tuple(shape)}; dA * g'(Z) would broadcast it and hide the error. Fix: return "
            f"an array of Z's shape {tuple(shape)} (one derivative per entry of Z)."
        )


def first_line(e: Exception) -> str:
    """The first line of an exception's message, without its final period.

    Args:
      e: the exception.

    >>> first_line(ValueError("bad shape.\\nmore"))
    'bad shape'
    """
    text = str(e).strip()
    return text.splitlines()[0].rstrip(".") if text else ""


def shape_check_loss(loss: Loss, shape, dtype) -> None:
    """Raise ValueError unless the loss returns (m,) values and a dL/dA of AL's shape.

    Args:
      loss: the ``Loss``.
      shape: the shape of AL and Y, (n_L, m).
      dtype: their dtype.

    >>> shape_check_loss(jaxnn.get_loss("mse"), (1, 4), jnp.float32)
    """
    A = jax.ShapeDtypeStruct(shape, dtype)
    for what, fn, expected in (
        ("forward(AL, Y)", loss.forward, (shape[1],)),
        ("backward(AL, Y)", loss.backward, shape),
    ):
        try:
            out = jax.eval_shape(fn, A, A)
        except Exception as e:  # noqa: BLE001
            raise ValueError(
                f"loss {loss.name!r}: {what} failed for AL, Y of shape {shape}: "
                f"{type(e).__name__}: {first_line(e)}."
            ) from None
        if tuple(out.shape) != tuple(expected):
            meaning = "one loss per example (m,)" if expected != shape else "dL/dA of the shape of AL"
            raise ValueError(
                f"loss {loss.name!r}: {what} returned shape {tuple(out.shape)}, "
                f"expected {expected}: {meaning}."
            )
