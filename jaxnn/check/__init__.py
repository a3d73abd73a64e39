"""Gradient checking: is a hand-derived backward pass right? (formulas §4; conventions §3).

``check_gradients`` compares the hand-derived gradient (``value_and_manual_grad``)
with up to three references and says where they disagree:

* ``"autodiff"``: ``jax.grad`` of ``jaxnn.cost``, in the caller's dtype
  (threshold 1e-5 for float32, 1e-10 for float64);
* ``"finite_difference"``: central differences (J(θ + εe) - J(θ - εe)) / 2ε in
  float64 (params, X and Y are upcast copies), threshold 1e-6. Every entry of
  a leaf is perturbed in one batched (``jax.vmap``) evaluation; leaves larger
  than ``max_entries`` use random unit directions v instead, comparing
  <g, v> with the difference quotient along v;
* ``"jvp"``: forward mode, ``jax.jvp`` of the cost along random unit
  directions in each leaf, against <g, v>, in float64, threshold 1e-10.

Every error is the normwise relative error ||g1 - g2|| / max(||g1|| + ||g2||,
1e-30) of conventions §3, over the whole gradient, each layer, and each leaf.

Kinks (ReLU, leaky ReLU at 0, any ``Activation.kinks``): a finite difference
across a kink measures neither one-sided derivative. Each perturbed forward
pass is compared with the unperturbed one, and a coordinate (or direction) is
excluded when some pre-activation Z lies closer to a kink than ``kink_margin``
times the distance the ±ε step moved it; the report counts the exclusions.
So a kink never causes a false alarm.

``check_activation`` and ``check_loss`` verify a single activation's or loss's
hand-written derivative against ``jax.vjp`` / ``jax.grad`` over a range of
inputs (large |z| included), and ``run_sweep`` runs ``check_gradients`` over
every built-in activation x loss pairing x depth (``jaxnn gradcheck``).

One engine (``jaxnn.check.engine``) runs every comparison: each front end
(``check_vjp`` / ``check_grad``, ``check_gradients``) describes its check as
a ``Problem`` and the engine's reference, finite-difference and jvp methods
compare it leaf by leaf (``check_activation`` and ``check_loss`` are
``check_vjp`` of the hand-written derivative on their grid of inputs); a
failure is explained where it has a recognisable shape
(``jaxnn.check.diagnose``). Computations are compiled by default
(``jit=True``), one program per function and shape, kept for the next check
of the same functions and shapes; ``jit=False`` runs them op by op.
"""

from __future__ import annotations

from jaxnn.check.asserts import assert_grad, assert_vjp
from jaxnn.check.function_report import ActivationReport, FunctionReport, LossReport, PointMethod, PointReport
from jaxnn.check.functions import check_activation, check_loss
from jaxnn.check.gradients import check_gradients
from jaxnn.check.options import (
    AUTODIFF_THRESHOLDS,
    DEFAULT_METHODS,
    FD_THRESHOLD,
    JVP_THRESHOLD,
    METHODS,
    CheckOptions,
)
from jaxnn.check.report import Entry, GradientCheckError, GradientReport, LayerCoverage, MethodResult
from jaxnn.check.search import SearchReport, search_grad, search_vjp
from jaxnn.check.sweep import SWEEP_HIDDEN, SWEEP_PAIRINGS, SweepRow, make_problem, run_sweep, sweep_cases
from jaxnn.check.vjp import check_grad, check_vjp

__all__ = [
    "AUTODIFF_THRESHOLDS",
    "ActivationReport",
    "CheckOptions",
    "DEFAULT_METHODS",
    "Entry",
    "FD_THRESHOLD",
    "FunctionReport",
    "GradientCheckError",
    "GradientReport",
    "JVP_THRESHOLD",
    "LayerCoverage",
    "LossReport",
    "METHODS",
    "MethodResult",
    "PointMethod",
    "PointReport",
    "SWEEP_HIDDEN",
    "SWEEP_PAIRINGS",
    "SearchReport",
    "SweepRow",
    "assert_grad",
    "assert_vjp",
    "check_activation",
    "check_grad",
    "check_vjp",
    "check_gradients",
    "check_loss",
    "make_problem",
    "run_sweep",
    "search_grad",
    "search_vjp",
    "sweep_cases",
]
