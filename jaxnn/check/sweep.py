"""The built-in sweep of ``jaxnn gradcheck``: every activation x loss pairing x depth."""

from __future__ import annotations

import contextlib
import math
import numbers
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.check.functions import float_dtype
from jaxnn.check.gradients import check_gradients
from jaxnn.check.options import METHODS, check_eps, check_methods
from jaxnn.check.report import GradientReport
from jaxnn.core.activations import ACTIVATIONS
from jaxnn.core.compat import enable_x64, to_device
from jaxnn.core.losses import LOSSES
from jaxnn.core.network import Network

Array = jax.Array


# --- the built-in sweep (``jaxnn gradcheck``) ----------------------------------------------

SWEEP_HIDDEN: tuple[str, ...] = tuple(ACTIVATIONS)
# Every valid output pairing: a loss with the activations it names, mse with all.
SWEEP_PAIRINGS: tuple[tuple[str, str], ...] = tuple(
    (a, loss.name) for loss in LOSSES.values() for a in (loss.activations or tuple(ACTIVATIONS))
)


class SweepRow(NamedTuple):
    """One case of ``run_sweep``: the errors of each method (nan if not run).

    Attributes:
      case: ``"4-4-4 relu,softmax cross_entropy"``.
      autodiff: the error vs jax.grad.
      finite_difference: the error vs finite differences.
      jvp: the error vs jax.jvp.
      passed: every method within rtol + its noise bound.
      seconds: wall time of the case.
      report: the full ``GradientReport``.
    """

    case: str
    autodiff: float
    finite_difference: float
    jvp: float
    passed: bool
    seconds: float
    report: GradientReport


def sweep_cases(
    depths: Sequence[int] = (1, 2, 3, 4),
    hidden: Sequence[str] | None = None,
    pairings: Sequence[tuple[str, str]] | None = None,
) -> list[tuple[tuple[str, ...], str]]:
    """``[(activations, loss)]``: each hidden activation (all L-1 hidden layers) x output pairing x depth.

    Depth 1 has no hidden layer, so one case per pairing.

    Args:
      depths: the depths L.
      hidden: hidden activations (default: every built-in one).
      pairings: ``(output activation, loss)`` pairs (default: every valid one).

    >>> len(sweep_cases(depths=(1,)))
    8
    """
    hidden = SWEEP_HIDDEN if hidden is None else tuple(hidden)
    pairings = SWEEP_PAIRINGS if pairings is None else tuple(pairings)
    cases = []
    for L in depths:
        if isinstance(L, bool) or not isinstance(L, numbers.Integral) or L < 1:
            raise ValueError(f"depths: {L!r} is not a depth; use integers >= 1.")
        for out, loss in pairings:
            for h in hidden if L > 1 else hidden[:1]:
                cases.append(((h,) * (L - 1) + (out,), loss))
    return cases


def make_problem(net: Network, m: int, dtype="float32", seed: int = 0):
    """``(params, X, Y)`` for checking ``net``: random, with targets valid for its loss.

    Weights ~ N(0, 1/n_{l-1}); biases ~ 0.1 N(0, 1) (nonzero, so db and the
    shifted activations are exercised) plus 0.5 on the output layer (keeps ReLU
    outputs alive); X ~ N(0, 1); Y one-hot (softmax output), 0/1 (sigmoid) or
    N(0, 1). Drawn with NumPy on the host: no JAX compilation. Call inside
    ``jax.enable_x64(True)`` for float64.

    Args:
      net: the ``Network``.
      m: batch size; X is (n_x, m), Y (n_L, m).
      dtype: dtype of params, X and Y.
      seed: NumPy seed.

    >>> params, X, Y = make_problem(Network((2, 3, 1), ("tanh", "sigmoid"), "bce"), 4)
    >>> X.shape, Y.shape
    ((2, 4), (1, 4))
    """
    rng = np.random.default_rng(seed)
    jdt = jnp.dtype(dtype)
    params = []
    for l, (n_in, n_out) in enumerate(zip(net.layer_sizes[:-1], net.layer_sizes[1:]), start=1):
        b = 0.1 * rng.standard_normal((n_out, 1)) + (0.5 if l == net.L else 0.0)
        W = rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)
        params.append({"W": to_device(W, jdt), "b": to_device(b, jdt)})
    X = rng.standard_normal((net.n_x, m))
    out = net.layer_activations[-1].name
    if out == "softmax":
        Y = np.eye(net.n_L)[:, rng.integers(0, net.n_L, m)]
    elif out == "sigmoid":
        Y = (rng.random((net.n_L, m)) < 0.5).astype(np.float64)
    else:
        Y = rng.standard_normal((net.n_L, m))
    return params, to_device(X, jdt), to_device(Y, jdt)


def run_sweep(
    *,
    depths: Sequence[int] = (1, 2, 3, 4),
    hidden: Sequence[str] | None = None,
    pairings: Sequence[tuple[str, str]] | None = None,
    width: int = 4,
    m: int = 8,
    dtype="float32",
    seed: int = 0,
    eps: float = 1e-6,
    methods: Sequence[str] = METHODS,
    on_row: Callable[[SweepRow], None] | None = None,
) -> list[SweepRow]:
    """``check_gradients`` on every case of ``sweep_cases``: what ``jaxnn gradcheck --sweep`` runs.

    Every layer has ``width`` units (n_x = n_1 = ... = n_L): the eager
    primitives are then compiled once for the whole sweep. Wrong transposes
    are still caught: they give wrong numbers, not only wrong shapes.

    Args:
      depths: the depths L (default 1-4; with the defaults below, 152 cases).
      hidden: hidden activations (default: every built-in one).
      pairings: ``(output activation, loss)`` pairs (default: every valid one).
      width: units per layer.
      m: batch size.
      dtype: the model's dtype, ``"float32"`` or ``"float64"``.
      seed: seed of ``make_problem`` (case i uses seed + i) and of the directions.
      eps: finite-difference step.
      methods: passed to ``check_gradients``.
      on_row: called with each row as soon as it is done (for streaming output).

    Returns:
      One ``SweepRow`` per case. Each case's X is (width, m), its Y (width, m)
      and every W^[l] (width, width) (formulas §1 shapes; the check is of formulas §4).

    >>> rows = run_sweep(depths=(1,), pairings=[("sigmoid", "bce")], width=2, m=4, methods=("autodiff",))
    >>> [(row.case, row.passed) for row in rows]
    [('2-2 sigmoid bce', True)]
    """
    dtype = float_dtype(dtype)
    methods = check_methods(methods)
    check_eps(eps)
    for name, value in (("width", width), ("m", m)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} = {value!r} must be an integer >= 1.")
    cases = sweep_cases(depths, hidden, pairings)
    rows = []
    with enable_x64(True) if dtype == "float64" else contextlib.nullcontext():
        for i, (acts, loss) in enumerate(cases):
            net = Network((width,) * (len(acts) + 1), acts, loss)
            params, X, Y = make_problem(net, m, dtype, seed + i)
            t = time.perf_counter()
            report = check_gradients(params, X, Y, net, methods=methods, eps=eps, seed=seed, jit=False)
            seconds = time.perf_counter() - t
            errors = report.errors
            row = SweepRow(
                f"{'-'.join(map(str, net.layer_sizes))} {','.join(acts)} {loss}",
                errors.get("autodiff", math.nan),
                errors.get("finite_difference", math.nan),
                errors.get("jvp", math.nan),
                report.passed,
                seconds,
                report,
            )
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows
