"""The one comparison engine of every checker: reference, finite differences and jvp (conventions §3).

A checker front end (``check_vjp`` / ``check_grad``, ``check_gradients``)
validates its inputs, runs the rule under test, and describes what is left to
compare as a ``Problem``: the leaves, the rule's results and rounding in
float64, and how to evaluate the scalar φ (⟨c_k, f⟩ for each of K cotangents,
or the cost J) at perturbed points and along tangents. The engine then runs
each method the same way for every front end:

* ``reference_method``: the rule against a reference computed in the
  caller's dtype (``jax.vjp`` of a plain implementation, ``jax.grad``);
* ``finite_difference_method``: central differences of φ at ε and 2ε in
  float64, every entry of leaves up to ``max_entries`` entries, random unit
  directions of larger ones, noise |D_2ε - D_ε| + δφ/ε + the rule's rounding
  (``jaxnn.check.perturb``); a front end may flag perturbations to exclude
  (a pre-activation stepping across a kink);
* ``jvp_method``: ⟨c, J v⟩ by ``jax.jvp`` of the reference along random unit
  directions against ⟨rule(c), v⟩, float64, noise ||rounding|| of both sides.

Every method gives one ``Block`` per leaf to ``jaxnn.check.compare.summarise``:
one verdict per leaf, one report format.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from jaxnn.check.compare import Block, summarise
from jaxnn.check.diagnose import kink_entries, reasons
from jaxnn.check.perturb import direction_differences, entry_differences, fd_noise, unit_directions
from jaxnn.check.report import MethodResult


class Leaf(NamedTuple):
    """One compared leaf: its name in reports, its shape, and (networks) its layer and parameter.

    >>> Leaf("W^[1]", (3, 2), 1, "W").size
    6
    """

    name: str
    shape: tuple
    layer: int | None = None
    param: str | None = None

    @property
    def size(self) -> int:
        """The number of entries."""
        return int(np.prod(self.shape, dtype=np.int64))


class Problem(NamedTuple):
    """What the engine compares, once a front end has run the rule (all float64 NumPy).

    Attributes:
      leaves: the ``Leaf`` of each compared leaf, in report order.
      K: how many cotangents (1 for a scalar φ: no cotangent axis in reports).
      g64: per leaf, (K, size): the rule under test in float64.
      r64: per leaf, (K, size): the rounding of ``g64`` (per entry).
      delta_phi: (K,): the rounding of one evaluation of φ.
      entry_groups: ``entry_groups(leaf_ids)`` -> ``[(ids, x, run)]``: the leaves
        perturbed entry by entry, grouped for batched evaluation; ``x`` (n,) is
        the group's entries as one flat vector and ``run(js, ss)`` ->
        ``(values (B, K), flags (B,))`` is φ with ``x[js[b]] += hs[b]`` (the
        steps ±ε, ±2ε) and a flag excluding that perturbation.
      direction_run: ``direction_run(i)`` -> ``run(D)``: φ at the leaf i moved
        by each row of D (B, size), with flags.
      jvp_groups: ``jvp_groups()`` -> ``[(ids, run)]``, ``run(T)`` -> (rows, K):
        ⟨c_k, J t⟩ by forward mode along each row of T (tangents over the
        group's entries, rows padded as ``run`` wishes); None: no jvp.
      jvp_g64: per leaf (K, size): the rule compared by jvp (default ``g64``).
      jvp_bound: per leaf (K,): ||rounding|| of both sides in float64.
      phi_name: how reports call φ (``"J"``, ``"⟨c, f⟩"``).
      outputs: per cotangent, the output leaf it probes (f with several outputs), or None.
      keep: per leaf (size,) bool, the entries compared (``exclude=`` leaves the others out), or None.
      output_verdicts: a verdict per output too (each output leaf probed by cotangents of its own).
    """

    leaves: tuple[Leaf, ...]
    K: int
    g64: list
    r64: list
    delta_phi: np.ndarray
    entry_groups: Callable
    direction_run: Callable
    jvp_groups: Callable | None = None
    jvp_g64: list | None = None
    jvp_bound: list | None = None
    phi_name: str = "φ"
    outputs: tuple[str, ...] | None = None
    keep: list | None = None
    output_verdicts: bool = False


def kept_directions(V: np.ndarray, keep) -> np.ndarray:
    """Unit directions (rows of V) restricted to the kept entries and renormalised (zero if none kept).

    Args:
      V: (k, size) unit directions.
      keep: (size,) bool, or None (V itself).

    >>> kept_directions(np.array([[0.6, 0.8]]), np.array([True, False])).tolist()
    [[1.0, 0.0]]
    """
    if keep is None:
        return V
    V = np.where(keep, V, 0.0)
    norms = np.linalg.norm(V, axis=1, keepdims=True)
    return np.divide(V, norms, out=np.zeros_like(V), where=norms > 0)


def _kept(prob: Problem, i: int, V=None):
    """The mask of leaf i's compared entries (or directions: those with a kept entry)."""
    if prob.keep is None:
        return True
    if V is None:
        return prob.keep[i]
    return np.abs(V).sum(axis=1) > 0


def _block(leaf: Leaf, kind: str, K: int, manual, reference, noise, mask, outputs=None) -> Block:
    """A ``Block`` from (K, n) arrays: leaf-shaped entries, no cotangent axis when K = 1."""
    shape = leaf.shape if kind == "entry" else np.shape(manual)[1:]
    full = (K, *shape) if K > 1 else tuple(shape)
    mask = np.broadcast_to(mask, np.shape(manual))
    arrays = [np.reshape(a, full) for a in (manual, reference, noise, mask)]
    return Block(leaf.name, kind, *arrays, leaf.layer, leaf.param, cotangents=K > 1, outputs=outputs)


def _explained(blocks, threshold, kinks, result: MethodResult) -> MethodResult:
    """``result`` with, when it failed, the recognised shapes of its error (``jaxnn.check.diagnose``)."""
    if result.status != "FAIL":
        return result
    return result._replace(reasons=reasons(blocks, threshold, kinks))


def reference_method(
    method: str,
    dtype: str,
    leaves: Sequence[Leaf],
    K: int,
    rule,
    reference,
    noise,
    threshold: float,
    strategy: str,
    n_worst: int,
    excluded: int = 0,
    note: str = "",
    outputs: tuple[str, ...] | None = None,
    keep=None,
    output_verdicts: bool = False,
) -> MethodResult:
    """The rule against a reference in the caller's dtype, per leaf (``"reference"`` / ``"autodiff"``).

    Args:
      method: the method's name in the report.
      dtype: the caller's dtype.
      leaves: the ``Leaf`` of each leaf.
      K: how many cotangents.
      rule: per leaf (K, size): the rule under test.
      reference: per leaf (K, size): the reference.
      noise: per leaf (K, size): both sides' rounding.
      threshold: rtol.
      strategy: what was compared (printed).
      n_worst: worst entries to keep.
      excluded: examples left out (reported).
      note: extra text for the report.
      outputs: per cotangent, the output leaf it probes, or None.
      keep: per leaf (size,) bool, the entries compared, or None (all).
      output_verdicts: a verdict per output too.

    >>> leaf = Leaf("x", (2,))
    >>> one = [np.ones((1, 2))]
    >>> reference_method("reference", "float64", [leaf], 1, one, one, [0 * one[0]], 1e-10, "", 2).status
    'pass'
    """
    blocks = [
        _block(leaf, "entry", K, a, b, n, True if keep is None else keep[i], outputs)
        for i, (leaf, a, b, n) in enumerate(zip(leaves, rule, reference, noise))
    ]
    result = summarise(method, dtype, blocks, threshold, strategy, n_worst, excluded, note, output_verdicts)
    return _explained(blocks, threshold, None, result)


def finite_difference_method(
    prob: Problem,
    eps: float,
    threshold: float,
    rng: np.random.Generator,
    *,
    max_entries: int,
    n_directions: int,
    n_worst: int,
    mode: str = "auto",
    excluded_why: str = "",
) -> MethodResult:
    """Central differences of φ in float64 at ε and 2ε against the rule, per leaf.

    Args:
      prob: the ``Problem``.
      eps: ε.
      threshold: rtol.
      rng: draws the random unit directions of large leaves.
      max_entries: leaves up to this size are perturbed entry by entry (``mode="auto"``).
      n_directions: random unit directions per larger leaf.
      n_worst: worst entries to keep.
      mode: ``"auto"``, ``"entries"`` (every leaf entry by entry) or ``"directions"``.
      excluded_why: the report's reason for flagged perturbations.

    Returns:
      The ``MethodResult``.
    """
    leaves, K = prob.leaves, prob.K
    dphi = np.asarray(prob.delta_phi, np.float64)[:, None]
    by_entry = [
        i
        for i, leaf in enumerate(leaves)
        if mode == "entries" or (mode == "auto" and leaf.size <= max_entries)
    ]
    blocks: dict[int, Block] = {}
    kinks: dict[int, np.ndarray] = {}
    flagged, left = [0], [0]
    for ids, x, run in prob.entry_groups(by_entry) if by_entry else ():
        stepped = lambda js, ss, run=run: run(js, ss * eps)  # noqa: E731 - entry_differences gives ±1, ±2
        D1, D2, excl, fwd, bwd = entry_differences(
            stepped, np.asarray(x, np.float64), np.arange(np.size(x)), eps, one_sided=True
        )
        on_kink = kink_entries(fwd, bwd, prob.delta_phi, eps)  # (n, K)
        start = 0
        for i in ids:
            sl = slice(start, start + leaves[i].size)
            start = sl.stop
            d1, d2 = D1[sl].T, D2[sl].T  # (K, size)
            kinks[i] = on_kink[sl].T
            noise = fd_noise(d1, d2, dphi, eps, prob.r64[i])
            flagged[0] += int(excl[sl].sum())
            # a step that leaves f's domain (f not finite at x ± ε) measures nothing: left out, counted
            outside = ~(np.isfinite(D1[sl]) & np.isfinite(D2[sl])).all(axis=1) & ~excl[sl]
            left[0] += int(outside.sum())
            mask = ~excl[sl] & ~outside & _kept(prob, i)
            blocks[i] = _block(leaves[i], "entry", K, prob.g64[i], d1, noise, mask, prob.outputs)
    for i, leaf in enumerate(leaves):
        if i in blocks:
            continue
        V = kept_directions(
            unit_directions(rng, n_directions, (leaf.size,)), None if prob.keep is None else prob.keep[i]
        )
        D1, D2, excl = direction_differences(prob.direction_run(i), V, eps)
        flagged[0] += int(excl.sum())
        outside = ~(np.isfinite(D1) & np.isfinite(D2)).all(axis=1) & ~excl
        left[0] += int(outside.sum())
        excl = excl | outside
        d1, d2 = D1.T, D2.T  # (K, n_directions)
        noise = fd_noise(d1, d2, dphi, eps, prob.r64[i] @ np.abs(V).T)
        blocks[i] = _block(
            leaf, "direction", K, prob.g64[i] @ V.T, d1, noise, ~excl & _kept(prob, i, V), prob.outputs
        )
    ordered = [blocks[i] for i in range(len(leaves))]
    excluded = flagged[0]  # perturbations flagged by the front end (a kink in reach), not exclude='s
    entry_names = [leaves[i].name for i in by_entry]
    dir_names = [leaf.name for i, leaf in enumerate(leaves) if i not in by_entry]
    parts = []
    if entry_names:
        parts.append(
            f"central differences of {prob.phi_name} in float64, every entry of {', '.join(entry_names)}"
        )
    if dir_names:
        parts.append(
            f"{n_directions} random unit directions v in each of {', '.join(dir_names)} "
            f"(⟨g, v⟩ vs ({prob.phi_name}(θ+εv) - {prob.phi_name}(θ-εv))/2ε, float64)"
        )
    parts.append(
        f"noise: |D_2ε - D_ε| (truncation) + δ{prob.phi_name}/ε (rounding of {prob.phi_name}, "
        f"δ = {float(np.max(prob.delta_phi)):.1e}) + the float64 rule's rounding"
    )
    notes = [f"{excluded} finite differences excluded: {excluded_why}"] if excluded else []
    if left[0]:
        notes.append(
            f"{left[0]} finite differences left out: a ±ε or ±2ε step leaves f's domain (not finite)."
        )
    excluded += left[0]
    note = " ".join(notes)
    kink_masks = [
        np.reshape(kinks[i], blocks[i].manual.shape) if i in kinks else None for i in range(len(leaves))
    ]
    return _explained(
        ordered,
        threshold,
        kink_masks,
        summarise(
            "finite_difference",
            "float64",
            ordered,
            threshold,
            "; ".join(parts),
            n_worst,
            excluded,
            note,
            prob.output_verdicts,
        ),
    )


def jvp_method(
    prob: Problem,
    threshold: float,
    rng: np.random.Generator,
    *,
    n_directions: int,
    n_worst: int,
    strategy: str,
    excluded: int = 0,
    note: str = "",
) -> MethodResult:
    """⟨c, J v⟩ by forward mode along random unit directions against ⟨rule(c), v⟩, float64, per leaf.

    Args:
      prob: the ``Problem`` (with ``jvp_groups`` and ``jvp_bound``).
      threshold: rtol.
      rng: draws the directions.
      n_directions: random unit directions per leaf.
      n_worst: worst entries to keep.
      strategy: what was compared (printed).
      excluded: examples left out (reported).
      note: extra text for the report.

    Returns:
      The ``MethodResult``; skipped, with a note, when forward mode cannot
      differentiate the reference (a ``jax.custom_vjp`` function).
    """
    leaves, K = prob.leaves, prob.K
    g = prob.jvp_g64 if prob.jvp_g64 is not None else prob.g64
    blocks: dict[int, Block] = {}
    for ids, run in prob.jvp_groups():
        sizes = [leaves[i].size for i in ids]
        T = np.zeros((n_directions * len(ids), sum(sizes)))
        Vs, start = [], 0
        for j, (i, size) in enumerate(zip(ids, sizes)):
            V = kept_directions(
                unit_directions(rng, n_directions, (size,)), None if prob.keep is None else prob.keep[i]
            )
            T[j * n_directions : (j + 1) * n_directions, start : start + size] = V
            Vs.append(V)
            start += size
        try:
            ref = np.asarray(run(T), np.float64)  # (rows >= len(T), K)
        except TypeError as e:  # forward mode refuses custom_vjp functions
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return summarise(
                "jvp",
                "float64",
                [],
                threshold,
                strategy,
                n_worst,
                note=f"skipped: jax.jvp cannot differentiate the reference ({why}).",
            )
        for j, (i, V) in enumerate(zip(ids, Vs)):
            manual = g[i] @ V.T  # (K, n_directions)
            refj = ref[j * n_directions : (j + 1) * n_directions].T
            noise = np.broadcast_to(np.asarray(prob.jvp_bound[i], np.float64)[:, None], manual.shape)
            mask = np.broadcast_to(_kept(prob, i, V), manual.shape)
            blocks[i] = _block(leaves[i], "direction", K, manual, refj, noise, mask, prob.outputs)
    ordered = [blocks[i] for i in range(len(leaves))]
    result = summarise(
        "jvp", "float64", ordered, threshold, strategy, n_worst, excluded, note, prob.output_verdicts
    )
    return _explained(ordered, threshold, None, result)
