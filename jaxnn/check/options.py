"""Option and input checks shared by the checkers; thresholds of conventions §3."""

from __future__ import annotations

import functools
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.activations import Activation
from jaxnn.losses import Loss
from jaxnn.network import Network, check_problem

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


def full_precision_matmuls(fn):
    """Run ``fn`` with float32 matmuls in full float32 precision.

    TPUs (bf16 passes) and recent GPUs (TF32) multiply float32 matrices in lower
    precision by default; that rounding (~1e-3) would fail the 1e-5 autodiff
    threshold on a correct derivation. A check tests the derivation, not the
    hardware's matmul mode. On CPU this is already the default.
    """

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with jax.default_matmul_precision("highest"):
            return fn(*args, **kwargs)

    return wrapped


# --- input checks --------------------------------------------------------------------------


def check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps) or eps <= 0:
        raise ValueError(
            f"eps = {eps!r} must be a finite number > 0 (the finite-difference step; "
            "conventions §3 uses 1e-6 in float64)."
        )
    return float(eps)


def check_methods(methods) -> tuple[str, ...]:
    if isinstance(methods, str):
        methods = (methods,)
    methods = tuple(methods)
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"methods = {methods!r}: choose one or more of {', '.join(METHODS)}.")
    return methods


def check_thresholds(thresholds, methods, dtype: str) -> dict[str, float]:
    defaults = {
        "autodiff": AUTODIFF_THRESHOLDS.get(dtype, 1e-5),
        "finite_difference": FD_THRESHOLD,
        "jvp": JVP_THRESHOLD,
    }
    for name, value in dict(thresholds or {}).items():
        if name not in METHODS:
            raise ValueError(f"thresholds: unknown method {name!r}; valid: {', '.join(METHODS)}.")
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not (value > 0 and math.isfinite(value))
        ):
            raise ValueError(f"thresholds[{name!r}] = {value!r} must be a finite number > 0.")
        defaults[name] = float(value)
    return {m: defaults[m] for m in methods}


def param_dtype(params) -> str:
    dtypes = {
        str(np.dtype(x.dtype)) if str(x.dtype) != "bfloat16" else "bfloat16" for x in jax.tree.leaves(params)
    }
    if len(dtypes) == 1:
        return dtypes.pop()
    return str(jnp.result_type(*jax.tree.leaves(params)))


def check_finite(what: str, x) -> None:
    a = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise ValueError(
            f"{what} has non-finite values (first at index {bad}: {a[bad]}); gradients there mean nothing."
        )


def check_network_inputs(params, X, Y, net) -> None:
    """Clear ValueErrors for inputs that do not fit ``net`` (before any JAX tracing)."""
    check_problem(params, X, Y, net, "check_gradients")
    for l, p in enumerate(params, start=1):
        for name in PARAM_NAMES:
            check_finite(f"check_gradients: layer {l}: {name}", p[name])
    check_finite("check_gradients: X", X)
    check_finite("check_gradients: Y", Y)
    check_callables(net, np.shape(X)[1])


def check_callables(net: Network, m: int, dtype=jnp.float32) -> None:
    """Shape-check every activation's forward/backward and the loss on (n_l, m) inputs.

    A custom g' with the wrong output shape would otherwise surface as a
    broadcasting error deep inside JAX. ``jax.eval_shape`` runs nothing.
    """
    for l, (g, n) in enumerate(zip(net.layer_activations, net.layer_sizes[1:]), start=1):
        shape_check_activation(g, (n, m), dtype, f"layer {l}: ")
    shape_check_loss(net.loss_fn, (net.n_L, m), dtype)


def shape_check_activation(g: Activation, shape, dtype, where: str = "") -> None:
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


def first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0].rstrip(".") if text else ""


def shape_check_loss(loss: Loss, shape, dtype) -> None:
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
