"""Why a rule fails: the shapes a failure commonly has, recognised in the compared numbers (conventions §3).

A failed comparison is often not an arbitrary error but one of a few
deliberate or classic departures from the derivative; each is recognised
from a failing leaf's ``Block`` (the values under test g, the reference r,
the noise bound n, the mask) and said in words:

* a constant factor: g ≈ s·r for one s ≠ 1 (a gradient scaled by 0.5, a
  missing 1/m, a factor 2 of a square);
* zero where the reference is not: g = 0 at the failing entries (a
  stop_gradient, a clip's flat part where f is not flat, a missing term);
* nonzero where f is flat: r = 0 at the failing entries (a straight-through
  estimator of rounding or a step);
* a capped magnitude: |g| equals one value c at the failing entries while
  |r| > c (gradient clipping);
* a kink: the failing entries are exactly those where the one-sided finite
  differences of f disagree (f is not differentiable there: ReLU at 0, abs,
  max), so neither side is wrong; check away from the kink or pass
  ``exclude=``.

Each test is strict (the remaining misfit within the leaf's own allowance):
a failure of no recognisable shape gets no reason rather than a wrong one.
"""

from __future__ import annotations

import numpy as np

from jaxnn.check.compare import Block

# a kink: the one-sided derivatives differ by more than this fraction of their size
KINK_JUMP = 0.1


def failing(b: Block, threshold: float) -> np.ndarray:
    """The entries of ``b`` each over their own allowance: |g - r| > rtol (|g| + |r|) + n, compared only.

    Args:
      b: the ``Block``.
      threshold: rtol.

    >>> b = Block("x", "entry", np.array([1.0, 2.0]), np.array([1.0, 3.0]), np.zeros(2), np.ones(2, bool))
    >>> failing(b, 1e-6).tolist()
    [False, True]
    """
    with np.errstate(all="ignore"):
        over = np.abs(b.manual - b.reference) > threshold * (np.abs(b.manual) + np.abs(b.reference)) + b.noise
    return over & b.mask


def leaf_reasons(b: Block, threshold: float, kinks: np.ndarray | None = None) -> list[str]:
    """The recognised shapes of one failing leaf's error, as sentences (empty: none recognised).

    Args:
      b: the failing leaf's ``Block``.
      threshold: rtol.
      kinks: entries where f's one-sided differences disagree (finite differences only), or None.

    >>> g, r = np.array([0.5, 1.0, -1.5]), np.array([1.0, 2.0, -3.0])
    >>> leaf_reasons(Block("x", "entry", g, r, np.zeros(3), np.ones(3, bool)), 1e-6)[0].split(" (")[0]
    'x: the rule is 0.5 x the reference'
    """
    bad = failing(b, threshold)
    if not bad.any():
        return []
    g, r, n, m = (np.asarray(a, np.float64) for a in (b.manual, b.reference, b.noise, b.mask))
    m = m.astype(bool)
    out = []
    if kinks is not None and kinks.any():
        kinks = np.broadcast_to(kinks, bad.shape)
        if not (bad & ~kinks).any():
            out.append(
                f"{b.name}: every failing entry ({int(bad.sum())}) sits on a kink of f (its one-sided "
                "differences disagree): f is not differentiable there, so neither side is wrong; check "
                "away from the kink or leave those entries out with exclude=."
            )
            return out
    zero = bad & (g == 0) & (np.abs(r) > n)
    if zero.any() and zero.sum() == bad.sum():
        out.append(
            f"{b.name}: the rule is exactly zero at all {int(bad.sum())} failing entries, where the "
            "reference is not: a stop_gradient or a clip's flat part where f is not flat "
            "(deliberate?), or a missing term."
        )
        return out
    flat = bad & (np.abs(r) <= n) & (g != 0)
    if flat.any() and flat.sum() == bad.sum():
        out.append(
            f"{b.name}: the reference is zero (f is flat there) at all {int(bad.sum())} failing entries, "
            "where the rule is not: a straight-through estimator (deliberate?) or a spurious term."
        )
        return out
    gg, rr = g[m], r[m]
    rn = float(np.dot(rr, rr))
    if rn > 0:
        s = float(np.dot(gg, rr)) / rn
        resid = np.abs(gg - s * rr)
        allowed = threshold * (np.abs(gg) + np.abs(s * rr)) + n[m] * max(1.0, abs(s))
        if abs(s - 1) > 10 * threshold and np.all(resid <= allowed):
            out.append(
                f"{b.name}: the rule is {s:.6g} x the reference (a constant factor: a scaled gradient, "
                "a missing 1/m or a factor 2?)."
            )
            return out
    c = np.max(np.abs(g[bad]))
    capped = bad & np.isclose(np.abs(g), c, rtol=1e-6, atol=0) & (np.abs(r) > c)
    if c > 0 and capped.sum() == bad.sum():
        out.append(
            f"{b.name}: at all {int(bad.sum())} failing entries |rule| = {c:.6g} while |reference| is "
            "larger: the rule's magnitude is capped (gradient clipping?)."
        )
    return out


def reasons(blocks, threshold: float, kinks=None) -> tuple[str, ...]:
    """Every failing leaf's recognised reasons (``leaf_reasons``), in leaf order.

    Args:
      blocks: the method's ``Block`` per leaf.
      threshold: rtol.
      kinks: per block, the entries on a kink of f (or None), from finite differences.

    >>> b = Block("x", "entry", np.zeros(2), np.ones(2), np.zeros(2), np.ones(2, bool))
    >>> reasons([b], 1e-6)[0][:38]
    'x: the rule is exactly zero at all 2 f'
    """
    out: list[str] = []
    for i, b in enumerate(blocks):
        out += leaf_reasons(b, threshold, None if kinks is None else kinks[i])
    return tuple(out)


def kink_entries(fwd: np.ndarray, bwd: np.ndarray, delta_phi, eps: float) -> np.ndarray:
    """Where the one-sided difference quotients of φ disagree: a kink within ±2ε of the point.

    For a smooth φ, (φ(x+2ε) - φ(x+ε))/ε and (φ(x-ε) - φ(x-2ε))/ε differ by
    about 3ε|φ''|; across a kink by the jump of φ'. An entry is a kink when
    they differ by more than ``KINK_JUMP`` of their size and by far more than
    rounding (100 δφ/ε).

    Args:
      fwd: the forward one-sided quotients (..., K).
      bwd: the backward ones.
      delta_phi: δφ (K,).
      eps: ε.

    >>> kink_entries(np.array([[1.0], [1.0]]), np.array([[0.0], [1.0]]), np.array([1e-16]), 1e-6).tolist()
    [[True], [False]]
    """
    jump = np.abs(fwd - bwd)
    size = np.maximum(np.abs(fwd), np.abs(bwd))
    with np.errstate(all="ignore"):
        return (jump > KINK_JUMP * size) & (jump > 100 * np.asarray(delta_phi) / eps)
