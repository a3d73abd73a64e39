"""``check_activation`` and ``check_loss``: a hand-written g' or dL/dA (formulas §2-§4a)."""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.activations import Activation, get_activation
from jaxnn.check.compare import rel_error
from jaxnn.check.options import (
    AUTODIFF_THRESHOLDS,
    full_precision_matmuls,
    shape_check_activation,
    shape_check_loss,
)
from jaxnn.check.report import FunctionReport, PointReport
from jaxnn.losses import Loss, get_loss

Array = jax.Array


_Z_GRID = np.concatenate(
    [np.linspace(-8.0, 8.0, 161), [-1e-3, 1e-3], np.array([10, 15, 20, 30, 40, 60, 100, 300, 700, 750.0])]
)
_Z_GRID = np.concatenate([_Z_GRID, -_Z_GRID[-10:]])
_SCALES = (0.1, 1.0, 3.0, 10.0, 30.0, 100.0, 700.0)


def float_dtype(dtype) -> str:
    name = str(jnp.dtype(dtype))
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype = {dtype!r}: check in 'float64' (default) or 'float32'.")
    return name


def default_threshold(threshold, dtype: str) -> float:
    if threshold is None:
        return AUTODIFF_THRESHOLDS[dtype]
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, numbers.Real)
        or not (threshold > 0 and math.isfinite(threshold))
    ):
        raise ValueError(f"threshold = {threshold!r} must be a finite number > 0.")
    return float(threshold)


def column(x: np.ndarray) -> str:
    return np.array2string(np.asarray(x), precision=10, max_line_width=200)


@full_precision_matmuls
def check_activation(
    activation: str | Activation,
    *,
    Z: Array | None = None,
    dtype="float64",
    threshold: float | None = None,
    seed: int = 0,
) -> FunctionReport:
    """Verify an activation's hand-written backward against JAX (formulas §2, §4a-b).

    Compares ``activation.backward(dA, Z, A)`` with ``jax.vjp`` of
    ``activation.forward`` for a random dA. The default inputs are a grid of z
    in [-8, 8] plus ±10 ... ±750 (past float64's exp overflow) for elementwise activations (one z per row of
    a (n, 1) Z), and columns of 4 units at scales 0.1 ... 700 for softmax-like
    ones. Inputs where g(Z) or the reference is not finite are skipped
    (outside the domain); a non-finite manual derivative where g is finite is
    a failure, reported with the input. The error is the normwise relative
    error over all inputs (conventions §3), threshold 1e-10 in float64.

    Args:
      activation: a name or an ``Activation`` (``jaxnn.make_activation(name,
        g, g_prime)``).
      Z: your own inputs (n, m) instead of the defaults.
      dtype: ``"float64"`` (default; switched on in a scoped way) or ``"float32"``.
      threshold: pass/fail threshold (default 1e-10 float64, 1e-5 float32).
      seed: seed of the random dA.

    Raises:
      ValueError: unknown name, or a forward/backward returning the wrong shape.

    >>> swish = jaxnn.make_activation("swish", lambda z: z * jax.nn.sigmoid(z),
    ...     lambda z: jax.nn.sigmoid(z) * (1 + z * (1 - jax.nn.sigmoid(z))))
    >>> check_activation(swish).passed
    True
    """
    g = get_activation(activation)
    dtype = float_dtype(dtype)
    threshold = default_threshold(threshold, dtype)
    rng = np.random.default_rng(seed)
    if Z is None:
        if g.elementwise:
            Zh = _Z_GRID[:, None]
        else:
            Zh = np.concatenate([s * rng.standard_normal((4, 8)) for s in _SCALES], axis=1)
    else:
        Zh = np.asarray(Z, np.float64)
        if Zh.ndim != 2:
            raise ValueError(f"check_activation: Z must be 2-D (n, m), got shape {Zh.shape}.")
    with jax.enable_x64(dtype == "float64"):
        jdt = jnp.dtype(dtype)
        shape_check_activation(g, Zh.shape, jdt, "check_activation: ")
        Zj = jnp.asarray(Zh, jdt)
        dA = jnp.asarray(rng.standard_normal(Zh.shape), jdt)
        A, vjp = jax.vjp(g.forward, Zj)
        manual = np.asarray(g.backward(dA, Zj, A), np.float64)
        reference = np.asarray(vjp(dA)[0], np.float64)
        A = np.asarray(A, np.float64)
    # An input is outside the domain when g or the reference derivative is not
    # finite there; for non-elementwise g the unit is a column.
    if g.elementwise:
        valid = np.isfinite(A) & np.isfinite(reference)
    else:
        valid = np.broadcast_to(np.all(np.isfinite(A) & np.isfinite(reference), axis=0), Zh.shape)
    error = rel_error(manual[valid], reference[valid])
    strategy = f"backward(dA, Z, A) vs jax.vjp(forward, Z)(dA), random dA, Z of shape {Zh.shape}"
    with np.errstate(all="ignore"):
        d = np.where(valid, np.abs(manual - reference), -1.0)
    d = np.where(np.isnan(d), np.inf, d)
    worst = None
    if valid.any():
        i, j = np.unravel_index(int(np.argmax(d)), d.shape)
        if g.elementwise:
            # report g'(z) itself, recovered from dA (nonzero almost surely)
            dai = float(np.asarray(dA)[i, j])
            with np.errstate(all="ignore"):
                gm, gr = float(manual[i, j] / dai), float(reference[i, j] / dai)
            worst = PointReport(
                f"z = {float(Zh[i, j])!r} (g(z) = {float(A[i, j])!r})",
                f"g'(z) = {gm!r}",
                f"g'(z) = {gr!r} (jax.vjp)",
            )
        else:
            worst = PointReport(
                f"column {j} of Z: {column(Zh[:, j])}",
                f"dZ = {column(manual[:, j])}",
                f"dZ = {column(reference[:, j])} (jax.vjp)",
            )
    return FunctionReport(
        "activation", g.name, dtype, error, threshold, int(valid.sum()), int((~valid).sum()), worst, strategy
    )


def _loss_inputs(loss: Loss, activation, n_L: int, rng) -> tuple[np.ndarray, np.ndarray, str]:
    if activation is None:
        activation = loss.activations[0] if loss.activations else "identity"
    g = get_activation(activation)
    Z = np.concatenate([s * rng.standard_normal((n_L, 8)) for s in _SCALES], axis=1)
    with jax.enable_x64(True):
        AL = np.asarray(g.forward(jnp.asarray(Z)), np.float64)
    m = Z.shape[1]
    if g.name == "softmax":
        Y = np.eye(n_L)[:, rng.integers(0, n_L, m)]
    elif g.name == "sigmoid":
        Y = (rng.random((n_L, m)) < 0.5).astype(np.float64)
    else:
        Y = rng.standard_normal((n_L, m))
    return AL, Y, g.name


@full_precision_matmuls
def check_loss(
    loss: str | Loss,
    *,
    activation: str | Activation | None = None,
    AL: Array | None = None,
    Y: Array | None = None,
    n_L: int = 3,
    dtype="float64",
    threshold: float | None = None,
    seed: int = 0,
) -> FunctionReport:
    """Verify a loss's hand-written dL/dA^[L] against ``jax.grad`` (formulas §3, §4a).

    ``loss.backward(AL, Y)`` is compared with ``jax.grad`` of
    ``sum(loss.forward(AL, Y))`` with respect to AL (each example's loss
    depends on its own column only, so this is each column's derivative). By
    default AL = g(Z) for the output activation the loss pairs with (its first
    ``loss.activations``, else identity) and Z at scales 0.1 ... 700, Y
    one-hot / 0-1 / real to match. Examples whose loss or reference gradient is
    not finite are outside the domain and skipped; a non-finite manual
    derivative on a valid example is a failure, reported with that example's
    AL and Y. The error is the largest per-example normwise relative error
    (examples have very different scales), threshold 1e-10 in float64.

    Args:
      loss: a name or a ``Loss`` (``jaxnn.make_loss(name, L, dL_dA)``).
      activation: output activation generating AL (default: see above).
      AL, Y: your own inputs (n_L, m) instead of the defaults (give both).
      n_L: output units of the default inputs.
      dtype: ``"float64"`` (default) or ``"float32"``.
      threshold: pass/fail threshold (default 1e-10 float64, 1e-5 float32).
      seed: seed of the default inputs.

    Raises:
      ValueError: unknown name, or forward/backward returning the wrong shape.

    >>> check_loss("bce").passed
    True
    """
    loss = get_loss(loss)
    dtype = float_dtype(dtype)
    threshold = default_threshold(threshold, dtype)
    rng = np.random.default_rng(seed)
    if (AL is None) != (Y is None):
        raise ValueError("check_loss: give both AL and Y, or neither.")
    if AL is None:
        ALh, Yh, act = _loss_inputs(loss, activation, n_L, rng)
        origin = f"AL = {act}(Z), Z at scales {', '.join(f'{s:g}' for s in _SCALES)}"
    else:
        ALh, Yh = np.asarray(AL, np.float64), np.asarray(Y, np.float64)
        if ALh.ndim != 2 or ALh.shape != Yh.shape:
            raise ValueError(f"check_loss: AL and Y must both be (n_L, m), got {ALh.shape} and {Yh.shape}.")
        origin = "the given AL, Y"
    with jax.enable_x64(dtype == "float64"):
        jdt = jnp.dtype(dtype)
        shape_check_loss(loss, ALh.shape, jdt)
        A, Yj = jnp.asarray(ALh, jdt), jnp.asarray(Yh, jdt)
        value = np.asarray(loss.forward(A, Yj), np.float64)
        manual = np.asarray(loss.backward(A, Yj), np.float64)
        reference = np.asarray(jax.grad(lambda a: jnp.sum(loss.forward(a, Yj)))(A), np.float64)
    valid = np.isfinite(value) & np.all(np.isfinite(reference), axis=0)
    errors = np.array([rel_error(manual[:, i], reference[:, i]) for i in range(manual.shape[1])])
    errors = np.where(np.isnan(errors), np.inf, errors)
    worst = None
    error = float("nan")
    if valid.any():
        i = int(np.argmax(np.where(valid, errors, -1.0)))
        error = float(errors[i]) if np.isfinite(errors[i]) else float("nan")
        worst = PointReport(
            f"example {i}: AL[:, {i}] = {column(ALh[:, i])}, Y[:, {i}] = {column(Yh[:, i])}",
            f"dL/dA = {column(manual[:, i])}",
            f"dL/dA = {column(reference[:, i])} (jax.grad)",
        )
    strategy = f"backward(AL, Y) vs jax.grad(sum(forward(AL, Y))), per example, on {origin}"
    return FunctionReport(
        "loss", loss.name, dtype, error, threshold, int(valid.sum()), int((~valid).sum()), worst, strategy
    )
