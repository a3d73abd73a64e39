"""``check_activation`` and ``check_loss``: a hand-written g' or dL/dA (formulas §2-§4a), on the one engine.

Each is a thin front end of ``check_vjp`` (``jaxnn.check.engine``): the
hand-written derivative is the rule under test, the forward function is the
reference, on a stated grid of inputs (``report.grid``). The inputs where the
function or its autodiff derivative is not finite are outside the domain:
they are left out and counted. Each input's output is its own output leaf,
so ⟨c, f⟩ is one input's (an elementwise g), one column's (softmax) or one
example's (a loss) and its rounding is that input's alone:

* ``"autodiff"``: the engine's ``"reference"`` method, ``jax.vjp`` of the
  forward function in the check's dtype. When the forward function is itself
  a ``jax.custom_vjp`` op, this runs that op's own rule and is not an
  independent reference (the report says so);
* ``"finite_difference"`` (always available, in the defaults): central
  differences in float64, inputs within 8ε of a kink left out;
* ``"jvp"``: ``jax.jvp`` of the forward function (skipped, with a note, when
  forward mode cannot differentiate it, e.g. a custom_vjp op).

Verdicts are the engine's (conventions §3): error <= rtol + noise bound, per
leaf; for a loss each example is a leaf of its own (examples have very
different scales). ``FunctionReport.report`` is the engine's whole report.
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.check.function_report import FunctionReport
from jaxnn.check.function_run import column_text, domain_mask, has_custom_vjp, run_function_check
from jaxnn.check.options import (
    AUTODIFF_THRESHOLDS,
    FD_THRESHOLD,
    JVP_THRESHOLD,
    check_methods,
    full_precision_matmuls,
    shape_check_activation,
    shape_check_loss,
)
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
    with enable_x64(True):
        shape_check_activation(g, Zh.shape, jnp.dtype(dtype), "check_activation: ")
        custom = has_custom_vjp(g.forward, jnp.asarray(Zh))
    valid = domain_mask(lambda z: g.forward(z), Zh, dtype, per_entry=g.elementwise)
    # one cotangent per output entry (cotangents="basis"): each ⟨c, f⟩ is one input's g (or one
    # column's entry), its rounding that entry's alone
    if g.elementwise:  # the valid z, one per row of a (N, 1) Z
        points = Zh[valid].reshape(-1, 1)

        def where(e):
            return f"z = {float(points[e.index[0], 0])!r}" if e.kind == "entry" else f"direction {e.index}"

    else:  # the valid columns
        points = Zh[:, valid]

        def where(e):
            if e.kind != "entry":
                return f"direction {e.index}"
            return f"column {e.index[1]} of Z: {column_text(points[:, e.index[1]])}"

    def f(Z):
        return g.forward(Z)

    def rule(p, c):
        Z = p[0]
        return (g.backward(c.astype(Z.dtype), Z, g.forward(Z)),)

    exclude = None
    if g.kinks:  # a finite difference within 8ε of a kink measures neither one-sided derivative
        near = np.zeros(points.shape, bool)
        for k in g.kinks:
            near |= np.abs(points - k) < 4 * 2 * eps
        if not g.elementwise:
            near = np.broadcast_to(near.any(axis=0), points.shape)
        exclude = (lambda x: near) if near.any() else None
    n_points, n_skipped = int(points.size), int(Zh.size - points.size)  # entries of Z
    # an elementwise g: one cotangent per z (each ⟨c, f⟩ is one g(z), a verdict per z); a column-wise
    # one (softmax): one random dA, as a layer's backward pass receives it
    cotangents = "basis" if g.elementwise else "random"
    return run_function_check(
        "activation",
        g.name,
        dtype,
        methods,
        thr,
        eps,
        seed,
        grid,
        f,
        rule,
        (points,),
        custom,
        n_points,
        n_skipped,
        where,
        exclude,
        cotangents,
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
        return jnp.asarray(Yh[:, cols], A.dtype)

    cols = domain_mask(
        lambda a: loss.forward(a, jnp.asarray(Yh, a.dtype)),
        ALh,
        dtype,
        per_entry=False,
        value_per_column=True,
    )
    points = ALh[:, cols]
    examples = np.flatnonzero(cols)

    # each example's loss is an output of its own, probed by a cotangent of its own (1: a scalar):
    # a verdict per example (examples have very different scales)
    def f(A):
        return tuple(loss.forward(A, targets(A)))

    def rule(p, c):
        A = p[0]
        return (loss.backward(A, targets(A)) * jnp.stack(c).astype(A.dtype)[None, :],)

    def where(e):
        # an entry's column is its example; a direction's example is the output its cotangent probes
        j = examples[e.index[1] if e.kind == "entry" else int(e.output[4:-1])]
        return f"example {j}: AL[:, {j}] = {column_text(ALh[:, j])}"

    n_points = int(points.shape[1])
    return run_function_check(
        "loss",
        loss.name,
        dtype,
        methods,
        thr,
        eps,
        seed,
        grid,
        f,
        rule,
        (points,),
        custom,
        n_points,
        int(ALh.shape[1] - n_points),
        where,
        None,
        "random",
    )
