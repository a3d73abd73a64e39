"""Comparison of a gradient with a reference, with a noise floor (conventions §3).

Each compared leaf is a ``Block``: the values under test, the reference's,
the per-entry floating-point noise bound n_i >= 0 of their difference, and a
mask of what was compared. Over any set S of entries (one leaf, one layer,
everything):

* error(S) = ||g - r||_S / max(||g||_S + ||r||_S, 1e-30), the normwise
  relative error of conventions §3;
* noise(S) = ||n||_S / max(||g||_S + ||r||_S, 1e-30): if every |g_i - r_i|
  that rounding and truncation alone could cause is <= n_i, then
  ||g - r||_S <= ||n||_S, so noise(S) is the error a correct gradient can show;
* S passes when error(S) <= rtol + noise(S), i.e.
  ||g - r|| <= rtol (||g|| + ||r||) + ||n||.

A method fails when everything together or any single leaf fails: a leaf
whose gradient is 1e-3 of another's would otherwise be averaged away.

rtol is the threshold of conventions §3, unchanged; the noise floor only
matters where the gradient is small next to the rounding of the numbers that
make it up (converged models, saturation, a leaf left nearly empty by the
kink exclusion).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from jaxnn.check.options import TINY
from jaxnn.check.report import Entry, MethodResult
from jaxnn.core.tree import relative_error


class Block(NamedTuple):
    """One compared leaf: values under test, reference, per-entry noise bound, mask (all float64).

    ``kind`` is ``"entry"`` (every entry of the leaf) or ``"direction"``
    (projections on random directions); with ``cotangents`` the first axis
    indexes the random cotangent. ``layer`` / ``param`` place a network leaf;
    ``outputs`` names the output leaf each cotangent probes (f with several outputs).
    """

    name: str
    kind: str
    manual: np.ndarray
    reference: np.ndarray
    noise: np.ndarray
    mask: np.ndarray
    layer: int | None = None
    param: str | None = None
    cotangents: bool = False
    outputs: tuple[str, ...] | None = None


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b|| / max(||a|| + ||b||, 1e-30)`` in float64 (conventions §3); nan if not finite.

    ``jaxnn.relative_error`` on host arrays: the one definition of the relative error.

    Args:
      a: the first array.
      b: the second, same shape.

    >>> rel_error(np.ones(2), np.ones(2))
    0.0
    """
    return float(relative_error(np.asarray(a), np.asarray(b)))


def normwise(a: np.ndarray, b: np.ndarray, noise: np.ndarray) -> tuple[float, float]:
    """(error, noise) of conventions §3: ``rel_error(a, b)`` and ||noise|| in its units.

    Args:
      a: the gradient under test, flattened entries.
      b: the reference, same shape.
      noise: the noise bound of each entry, same shape.

    >>> normwise(np.ones(2), np.ones(2), np.zeros(2))
    (0.0, 0.0)
    """
    with np.errstate(all="ignore"):
        den = max(float(np.linalg.norm(a) + np.linalg.norm(b)), TINY)
        bound = float(np.linalg.norm(noise)) / den
    return rel_error(a, b), (bound if math.isfinite(bound) else 0.0)


def _stats(blocks) -> tuple[float, float]:
    """(error, noise) of conventions §3 over the masked entries of ``blocks``."""
    if not blocks:
        return float("nan"), 0.0
    a, b, n = (
        np.concatenate([getattr(k, side)[k.mask].ravel() for k in blocks])
        for side in ("manual", "reference", "noise")
    )
    return normwise(a, b, n)


def _over(error: float, noise: float, threshold: float) -> bool:
    return not error <= threshold + noise  # nan fails


def summarise(
    method, dtype, blocks, threshold, strategy, n_worst, excluded=0, note="", output_verdicts=False
) -> MethodResult:
    """The ``MethodResult`` of one method: overall, per-leaf and (networks) per-layer verdicts.

    Args:
      method: the method's name.
      dtype: the dtype of the comparison.
      blocks: one ``Block`` per leaf, in report order.
      threshold: rtol (conventions §3).
      strategy: how the reference was computed (printed).
      n_worst: how many worst entries to keep.
      excluded: how many entries were left out.
      note: extra text for the report.
      output_verdicts: also a verdict per output (the blocks' ``outputs``: a function with several
        output leaves, each probed by cotangents of its own).

    Returns:
      The ``MethodResult``.

    >>> b = Block("x", "entry", np.ones(3), np.ones(3), np.zeros(3), np.ones(3, bool))
    >>> summarise("reference", "float64", [b], 1e-10, "test", 2).status
    'pass'
    """
    compared = int(sum(int(b.mask.sum()) for b in blocks))
    error, noise = _stats(blocks)
    leaf_stats = [_stats([b]) for b in blocks]
    leaf_errors = tuple((b.name, e, s) for b, (e, s) in zip(blocks, leaf_stats))
    leaf_over = [b.mask.any() and _over(e, s, threshold) for b, (e, s) in zip(blocks, leaf_stats)]
    failed_leaves = tuple(b.name for b, o in zip(blocks, leaf_over) if o)
    layered = bool(blocks) and all(b.layer is not None for b in blocks)
    param_errors, layer_errors, layers = (), (), []
    if layered:
        param_errors = tuple((b.layer, b.param, e) for b, (e, _) in zip(blocks, leaf_stats))
        layers = sorted({b.layer for b in blocks})
        layer_stats = [_stats([b for b in blocks if b.layer == l]) for l in layers]
        layer_errors = tuple(e for e, _ in layer_stats)
    output_errors = _output_stats(blocks) if output_verdicts else ()
    failed_outputs = tuple(o for o, e, s in output_errors if _over(e, s, threshold))
    if compared == 0:
        status, error = "skipped", float("nan")
    else:
        # a verdict per leaf (conventions §3): a leaf whose gradient is 1e-3 of
        # another's is invisible in the normwise error over everything; and per output
        # when each cotangent probes one output (one example's loss next to a large one's)
        over = _over(error, noise, threshold) or any(leaf_over) or bool(failed_outputs)
        status = "FAIL" if over else "pass"
    worst_layer = worst_param = worst_leaf = None
    if status == "FAIL":

        def excess(stats):  # error / (threshold + noise): how far over its allowance (nan: infinitely)
            e, s = stats
            return math.inf if e != e else e / (threshold + s)

        if layered:
            over = {l for l, st in zip(layers, layer_stats) if _over(*st, threshold)}
            over |= {b.layer for b, o in zip(blocks, leaf_over) if o}
            worst_layer = max(over) if over else layers[int(np.argmax([excess(s) for s in layer_stats]))]
            in_layer = [(excess(st), b.param) for b, st in zip(blocks, leaf_stats) if b.layer == worst_layer]
            worst_param = max(in_layer)[1]
            worst_leaf = f"{worst_param}^[{worst_layer}]"
        else:
            cands = [(excess(st), b.name) for b, st in zip(blocks, leaf_stats) if b.mask.any()]
            worst_leaf = max(cands)[1]
    nonfinite = int(sum(np.sum(~np.isfinite(b.manual[b.mask])) for b in blocks))
    if nonfinite:
        note = (note + " " if note else "") + f"The gradient under test has {nonfinite} non-finite values."
    return MethodResult(
        method,
        dtype,
        error,
        noise,
        threshold,
        status,
        strategy,
        leaf_errors,
        param_errors,
        layer_errors,
        worst_layer,
        worst_param,
        worst_leaf,
        failed_leaves,
        worst_entries(blocks, n_worst),
        compared,
        excluded,
        note,
        output_errors=output_errors,
        failed_outputs=failed_outputs,
    )


def _output_stats(blocks) -> tuple[tuple[str, float, float], ...]:
    """``((output, error, noise), ...)`` over the rows of each output's cotangents, every leaf together.

    Empty unless the blocks carry ``outputs`` (a function with several outputs, or one cotangent per
    output entry).
    """
    if not blocks or blocks[0].outputs is None or not blocks[0].cotangents:
        return ()
    names = blocks[0].outputs
    out = []
    for name in dict.fromkeys(names):
        rows = [k for k, n in enumerate(names) if n == name]
        parts = [[], [], []]
        for b in blocks:
            m = b.mask[rows]
            for part, a in zip(parts, (b.manual, b.reference, b.noise)):
                part.append(np.asarray(a[rows], np.float64)[m])
        if sum(p.size for p in parts[0]) == 0:
            continue
        e, s = normwise(*(np.concatenate(p) for p in parts))
        out.append((name, e, s))
    return tuple(out)


def worst_entries(blocks, n: int) -> tuple[Entry, ...]:
    """The ``n`` compared entries with the largest |manual - reference| (non-finite first).

    Args:
      blocks: the compared ``Block``s.
      n: how many.

    >>> b = Block("x", "entry", np.array([1.0, 2.0]), np.array([1.0, 3.0]), np.zeros(2), np.ones(2, bool))
    >>> worst_entries([b], 1)[0].index
    (1,)
    """
    cands = []
    for b in blocks:
        with np.errstate(all="ignore"):
            d = np.abs(b.manual - b.reference)
        d = np.where(np.isnan(d), np.inf, d)
        d = np.where(b.mask, d, -1.0).ravel()
        for t in np.argsort(-d, kind="stable")[:n]:
            if d[t] < 0:
                break
            index = tuple(int(i) for i in np.unravel_index(t, b.manual.shape))
            cot = None
            if b.cotangents:
                cot, index = index[0], index[1:]
            e = Entry(
                b.name,
                index,
                float(b.manual.ravel()[t]),
                float(b.reference.ravel()[t]),
                b.kind,
                float(b.noise.ravel()[t]),
                b.layer,
                b.param,
                cot,
                None if cot is None or b.outputs is None else b.outputs[cot],
            )
            cands.append((d[t], e))
    cands.sort(key=lambda c: -c[0])
    return tuple(e for _, e in cands[:n])
