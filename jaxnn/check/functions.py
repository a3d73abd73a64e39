"""``check_activation`` and ``check_loss``: a hand-written g' or dL/dA (formulas §2-§4a).

Each compares the hand-written derivative, on a stated grid of inputs, with

* ``"autodiff"``: ``jax.vjp`` of the forward function (``jax.grad`` of the
  summed loss), in the check's dtype. When the forward function is itself a
  ``jax.custom_vjp`` op, this runs that op's own rule and is not an
  independent reference (the report says so);
* ``"finite_difference"`` (always available, in the defaults): central
  differences in float64. Activations and losses act column by column, so
  one perturbation of row j in every column at once gives the derivative
  along row j of every column; an elementwise activation needs one
  perturbation of everything;
* ``"jvp"``: ⟨dA, J t⟩ by ``jax.jvp`` against ⟨backward(dA), t⟩ per column
  (skipped, with a note, when forward mode cannot differentiate the forward
  function, e.g. a custom_vjp op).

Verdicts are noise-aware as everywhere in ``jaxnn.check``: error <= rtol +
noise bound, the noise estimated from a recomputation in the partner
precision and, for finite differences, the ε vs 2ε gap plus δφ/ε.
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.check.function_report import FunctionReport
from jaxnn.check.options import (
    AUTODIFF_THRESHOLDS,
    FD_THRESHOLD,
    JVP_THRESHOLD,
    check_methods,
    full_precision_matmuls,
    shape_check_activation,
    shape_check_loss,
)
from jaxnn.check.point_methods import compare_points, has_custom_vjp
from jaxnn.core.activations import Activation, get_activation
from jaxnn.core.compat import enable_x64
from jaxnn.core.losses import Loss, get_loss
from jaxnn.core.validate_data import as_float_array

Array = jax.Array

POINT_METHODS = ("autodiff", "finite_difference", "jvp")
# Inputs for check_activation: a dense grid where activations bend, then large |z|
# (saturation, overflow of exp) up to where float64 exp overflows.
_BIG = np.array([10, 15, 20, 30, 40, 60, 100, 300, 700, 750.0])
_Z_GRID = np.concatenate([np.linspace(-8.0, 8.0, 161), [-1e-3, 1e-3], _BIG, -_BIG])
_SCALES = (0.1, 1.0, 3.0, 10.0, 30.0, 100.0, 700.0)
_GRID_TEXT = (
    f"{_Z_GRID.size} values of z, one per row of a ({_Z_GRID.size}, 1) Z: 161 evenly spaced in [-8, 8] "
    f"(step 0.1), ±1e-3, ±{', ±'.join(f'{v:g}' for v in _BIG)}; nothing in between is tested"
)
_SCALES_TEXT = (
    f"{len(_SCALES) * 8} columns of n units, 8 at each scale {', '.join(f'{s:g}' for s in _SCALES)} x N(0, 1)"
)


def float_dtype(dtype) -> str:
    """``"float32"`` or ``"float64"``; anything else raises ValueError.

    Args:
      dtype: the requested dtype.

    >>> float_dtype("float64")
    'float64'
    """
    name = str(jnp.dtype(dtype))
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype = {dtype!r}: check in 'float64' (default) or 'float32'.")
    return name


def _thresholds(threshold, dtype: str, methods) -> dict[str, float]:
    out = {"autodiff": AUTODIFF_THRESHOLDS[dtype], "finite_difference": FD_THRESHOLD, "jvp": JVP_THRESHOLD}
    if threshold is not None:
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, numbers.Real)
            or not (threshold > 0 and math.isfinite(threshold))
        ):
            raise ValueError(f"threshold = {threshold!r} must be a finite number > 0.")
        out = dict.fromkeys(out, float(threshold))
    return {m: out[m] for m in methods}


def _grid_of(Zh: np.ndarray) -> str:
    return f"your Z of shape {Zh.shape}, z in [{Zh.min():.3g}, {Zh.max():.3g}]; nothing else is tested"


@full_precision_matmuls
def check_activation(
    activation: str | Activation,
    *,
    Z: Array | None = None,
    dtype="float64",
    threshold: float | None = None,
    methods=("autodiff", "finite_difference"),
    eps: float = 1e-6,
    seed: int = 0,
) -> FunctionReport:
    """Verify an activation's hand-written backward (formulas §2, §4a-b) vs jax.vjp and finite differences.

    ``activation.backward(dA, Z, A)`` for a random dA is compared with each
    method's dZ on a stated grid (``report.grid``): z in [-8, 8] plus ±10 ...
    ±750 (past float64's exp overflow) for elementwise activations, columns
    of 4 units at scales 0.1 ... 700 for softmax-like ones. Inputs where g(Z)
    or the reference is not finite are skipped (outside the domain); a
    non-finite manual derivative where g is finite is a failure, reported
    with the input. Error: normwise relative error over the inputs
    (conventions §3); pass when error <= rtol + the estimated noise bound.

    Args:
      activation: a name or an ``Activation`` (``jaxnn.make_activation(name, g, g_prime)``).
      Z: your own inputs (n, m) instead of the defaults.
      dtype: ``"float64"`` (default; switched on in a scoped way) or ``"float32"``.
      threshold: one rtol for every method (default: 1e-10 float64 / 1e-5 float32 for
        autodiff, 1e-6 finite differences, 1e-10 jvp).
      methods: any of ``"autodiff"``, ``"finite_difference"``, ``"jvp"``.
      eps: finite-difference step ε.
      seed: seed of the random dA.

    Returns:
      A ``FunctionReport`` (one ``PointMethod`` per method).

    Raises:
      ValueError: unknown name, a forward/backward returning the wrong shape,
        Z not 2-D or holding NaN / inf, or a bad option.

    >>> swish = jaxnn.make_activation("swish", lambda z: z * jax.nn.sigmoid(z),
    ...     lambda z: jax.nn.sigmoid(z) * (1 + z * (1 - jax.nn.sigmoid(z))))
    >>> check_activation(swish).passed
    True
    """
    g = get_activation(activation)
    dtype = float_dtype(dtype)
    methods = check_methods(methods, POINT_METHODS)
    thr = _thresholds(threshold, dtype, methods)
    rng = np.random.default_rng(seed)
    if Z is None:
        if g.elementwise:
            Zh, grid = _Z_GRID[:, None], _GRID_TEXT
        else:
            Zh = np.concatenate([s * rng.standard_normal((4, 8)) for s in _SCALES], axis=1)
            grid = _SCALES_TEXT.replace("n units", "4 units")
    else:
        Zh = as_float_array("check_activation: Z", Z, np.float64)
        if Zh.ndim != 2:
            raise ValueError(f"check_activation: Z must be 2-D (n, m), got shape {Zh.shape}.")
        grid = _grid_of(Zh)
    dAh = rng.standard_normal(Zh.shape)
    with enable_x64(True):
        shape_check_activation(g, Zh.shape, jnp.dtype(dtype), "check_activation: ")
        custom = has_custom_vjp(g.forward, jnp.asarray(Zh))

    def manual(Zj, dAj):
        return g.backward(dAj, Zj, g.forward(Zj))

    def autodiff(Zj, dAj):
        return jax.vjp(g.forward, Zj)[1](dAj)[0]

    def value(Zj):  # per-column φ = ⟨dA, g(Z)⟩ and the absolute sum behind it
        return g.forward(Zj)

    return compare_points(
        "activation",
        g.name,
        Zh,
        dAh,
        dtype,
        methods,
        thr,
        eps,
        grid,
        manual,
        autodiff,
        value,
        elementwise=g.elementwise,
        custom_vjp=custom,
        kinks=g.kinks,
    )


def _loss_inputs(loss: Loss, activation, n_L: int, rng) -> tuple[np.ndarray, np.ndarray, str]:
    if activation is None:
        activation = loss.activations[0] if loss.activations else "identity"
    g = get_activation(activation)
    Z = np.concatenate([s * rng.standard_normal((n_L, 8)) for s in _SCALES], axis=1)
    with enable_x64(True):
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
    methods=("autodiff", "finite_difference"),
    eps: float = 1e-6,
    seed: int = 0,
) -> FunctionReport:
    """Verify a loss's hand-written dL/dA^[L] (formulas §3, §4a) against jax.grad and finite differences.

    ``loss.backward(AL, Y)`` is compared with ``jax.grad`` of
    ``sum(loss.forward(AL, Y))`` with respect to AL (each example's loss
    depends on its own column only, so this is each column's derivative) and
    with float64 central differences. By default AL = g(Z) for the output
    activation the loss pairs with (its first ``loss.activations``, else
    identity) and Z at scales 0.1 ... 700, Y one-hot / 0-1 / real to match
    (``report.grid``). Examples whose loss or reference is not finite are
    outside the domain and skipped; a non-finite manual derivative on a valid
    example is a failure. The error is the largest per-example normwise
    relative error (examples have very different scales); an example passes
    when its error <= rtol + its noise bound.

    Args:
      loss: a name or a ``Loss`` (``jaxnn.make_loss(name, L, dL_dA)``).
      activation: output activation generating AL (default: see above).
      AL: your own predictions (n_L, m) instead of the defaults (give Y too).
      Y: your own targets (n_L, m) (give AL too).
      n_L: output units of the default inputs.
      dtype: ``"float64"`` (default) or ``"float32"``.
      threshold: one rtol for every method (defaults as in ``check_activation``).
      methods: any of ``"autodiff"``, ``"finite_difference"``, ``"jvp"``.
      eps: finite-difference step ε.
      seed: seed of the default inputs.

    Returns:
      A ``FunctionReport`` (one ``PointMethod`` per method).

    Raises:
      ValueError: unknown name, forward/backward returning the wrong shape,
        AL / Y of different shapes or holding NaN / inf, or a bad option.

    >>> check_loss("bce").passed
    True
    """
    loss = get_loss(loss)
    dtype = float_dtype(dtype)
    methods = check_methods(methods, POINT_METHODS)
    thr = _thresholds(threshold, dtype, methods)
    rng = np.random.default_rng(seed)
    if (AL is None) != (Y is None):
        raise ValueError("check_loss: give both AL and Y, or neither.")
    if AL is None:
        ALh, Yh, act = _loss_inputs(loss, activation, n_L, rng)
        grid = f"AL = {act}(Z), n_L = {n_L}, " + _SCALES_TEXT.replace("n units", f"{n_L} units")
    else:
        ALh = as_float_array("check_loss: AL", AL, np.float64)
        Yh = as_float_array("check_loss: Y", Y, np.float64)
        if ALh.ndim != 2 or ALh.shape != Yh.shape:
            raise ValueError(f"check_loss: AL and Y must both be (n_L, m), got {ALh.shape} and {Yh.shape}.")
        grid = (
            f"your AL, Y of shape {ALh.shape}, AL in [{ALh.min():.3g}, {ALh.max():.3g}]; "
            "nothing else is tested"
        )
    with enable_x64(True):
        shape_check_loss(loss, ALh.shape, jnp.dtype(dtype))
        custom = has_custom_vjp(lambda a: loss.forward(a, jnp.asarray(Yh)), jnp.asarray(ALh))
    def targets(A):  # Y in AL's dtype (made anew each call: a cached one could be a tracer)
        return jnp.asarray(Yh, A.dtype)

    def manual(A, ones):
        return loss.backward(A, targets(A)) * ones

    def autodiff(A, ones):
        return jax.grad(lambda a: jnp.sum(loss.forward(a, targets(A))))(A) * ones

    def value(A):  # per-column φ = the example's loss
        return loss.forward(A, targets(A))

    return compare_points(
        "loss",
        loss.name,
        ALh,
        np.ones_like(ALh),
        dtype,
        methods,
        thr,
        eps,
        grid,
        manual,
        autodiff,
        value,
        elementwise=False,
        custom_vjp=custom,
        per_column_value=True,
    )
