"""The checkers' reports: ``GradientReport`` (per method, per leaf, worst entries) and ``FunctionReport``.

Every comparison carries its error, its threshold (conventions §3) and the
floating-point noise bound estimated for that problem; it passes when
error <= threshold + noise bound, and the tables print all three.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import NamedTuple


class GradientCheckError(AssertionError):
    """Raised by ``raise_if_failed`` (and ``jaxnn.check.assert_vjp`` / ``assert_grad``).

    The message's first line is the report's ``headline`` (what failed, where, by how much: the
    line pytest's short test summary shows), followed by the whole located report.

    Attributes:
      report: the failed report (None when raised without one).
    """

    report = None


class Entry(NamedTuple):
    """One compared number: an entry of a leaf, or the projection on one random direction v_k.

    Attributes:
      leaf: the leaf's name (``"W^[2]"`` in a network, ``"primals[0]['W']"`` for ``check_vjp``).
      index: the entry's index in the leaf, or ``(k,)`` for direction v_k.
      manual: the value under test.
      reference: the method's value.
      kind: ``"entry"`` or ``"direction"``.
      noise: the estimated floating-point noise bound of manual - reference.
      layer: the network layer l (None outside networks).
      param: ``"W"`` or ``"b"`` (None outside networks).
      cotangent: which random cotangent produced it (``check_vjp`` of a non-scalar f), else None.
      output: the output leaf that cotangent probes (``"out['c']"``) when f has several, else None.
    """

    leaf: str
    index: tuple[int, ...]
    manual: float
    reference: float
    kind: str = "entry"
    noise: float = 0.0
    layer: int | None = None
    param: str | None = None
    cotangent: int | None = None
    output: str | None = None

    @property
    def abs_error(self) -> float:
        """|manual - reference|."""
        return abs(self.manual - self.reference)

    def where(self) -> str:
        """``"W^[1][4, 3]"``, ``"primals[0]['W']·v2"``, ``"d out['c'] / d primals[0][2, 3], cotangent k"``."""
        if self.kind == "direction":
            text = f"{self.leaf}·v{self.index[0]}"
        else:
            text = f"{self.leaf}[{', '.join(str(i) for i in self.index)}]"
        if self.output is not None:  # f has several outputs: name the one whose term is wrong
            text = f"d {self.output} / d {text}"
        return text if self.cotangent is None else f"{text}, cotangent {self.cotangent}"


class MethodResult(NamedTuple):
    """The comparison of the gradient under test with one reference method.

    Attributes:
      method: ``"autodiff"`` / ``"reference"``, ``"finite_difference"`` or ``"jvp"``.
      dtype: the dtype both sides were computed in.
      error: normwise relative error over everything compared (conventions §3);
        nan when a side is not finite.
      noise: the estimated floating-point noise bound, in the units of
        ``error`` (noise norm / (||g1|| + ||g2||)).
      threshold: rtol of conventions §3. Passed when error <= threshold + noise.
      status: ``"pass"``, ``"FAIL"`` or ``"skipped"`` (nothing compared). FAIL
        when everything together or any single leaf is over its threshold +
        noise (a verdict per leaf: a small leaf is not averaged away).
      strategy: how the reference was computed.
      leaf_errors: ``((leaf, error, noise), ...)`` per leaf.
      param_errors: networks only: ``((l, "W", err), (l, "b", err), ...)``.
      layer_errors: networks only: error of each layer's (W, b), layer 1 first.
      worst_layer: networks, when failed: the highest layer over its
        threshold + noise. A wrong derivative in layer l corrupts dZ^[l] and,
        through dZ^[l-1] = W^T dZ^[l] ⊙ g'(Z^[l-1]), every layer below; the
        error enters at the highest failing layer.
      worst_param: ``"W"`` or ``"b"``, the worse leaf of ``worst_layer``.
      worst_leaf: when failed, the leaf furthest over its allowance (largest
        error / (threshold + noise)); in a network, the one of ``worst_layer``.
      failed_leaves: every leaf over its threshold + noise.
      worst_entries: the entries (or directions) with the largest |manual -
        reference|, largest first.
      compared: how many entries / directions were compared.
      excluded: how many were left out (a ±ε step across a kink; examples on
        a kink of a custom activation).
      note: anything else worth knowing.
      reasons: when failed, the recognised shapes of the error in words (a constant
        factor, zero where the reference is not, a capped magnitude, a kink of f;
        ``jaxnn.check.diagnose``); empty when none is recognised.
      output_errors: ``((output, error, noise), ...)`` per output (f with several outputs, or one
        cotangent per output entry), every leaf together; empty otherwise.
      failed_outputs: the outputs over their threshold + noise (each is a verdict of its own).
    """

    method: str
    dtype: str
    error: float
    noise: float
    threshold: float
    status: str
    strategy: str
    leaf_errors: tuple[tuple[str, float, float], ...]
    param_errors: tuple[tuple[int, str, float], ...]
    layer_errors: tuple[float, ...]
    worst_layer: int | None
    worst_param: str | None
    worst_leaf: str | None
    failed_leaves: tuple[str, ...]
    worst_entries: tuple[Entry, ...]
    compared: int
    excluded: int
    note: str = ""
    reasons: tuple[str, ...] = ()
    output_errors: tuple[tuple[str, float, float], ...] = ()
    failed_outputs: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """True unless the comparison failed (skipped counts as not failed)."""
        return self.status != "FAIL"


class LayerCoverage(NamedTuple):
    """Which pre-activations Z^[l] a network check exercised (its derivative is tested there only).

    Attributes:
      layer: l, 1..L.
      z_min: the smallest entry of Z^[l] over the batch.
      z_max: the largest.
      beyond_4: the share of entries with |z| > 4, where sigmoid and tanh saturate.
    """

    layer: int
    z_min: float
    z_max: float
    beyond_4: float


@dataclasses.dataclass(frozen=True)
class GradientReport:
    """What ``check_gradients``, ``check_vjp``, ``check_grad`` return (immutable); ``str(report)`` is a table.

    Attributes:
      subject: what was checked (the network, or the function and its primals).
      m: batch size (networks; None for functions).
      dtype: dtype of the params / primals.
      eps: finite-difference step ε.
      cost: J at the params (networks) or ⟨c, f(primals)⟩ for the first cotangent, float64.
      results: one ``MethodResult`` per method, in the order requested.
      kind: ``"check_gradients"``, ``"check_vjp"`` or ``"check_grad"``.
      coverage: networks: one ``LayerCoverage`` per layer.
    """

    subject: str
    m: int | None
    dtype: str
    eps: float
    cost: float
    results: tuple[MethodResult, ...]
    kind: str = "check_gradients"
    coverage: tuple[LayerCoverage, ...] = ()

    @property
    def network(self) -> str:
        """The checked network's description (``subject``)."""
        return self.subject

    @property
    def passed(self) -> bool:
        """True when no method failed and at least one actually compared something."""
        return all(r.passed for r in self.results) and any(r.status == "pass" for r in self.results)

    @property
    def errors(self) -> dict[str, float]:
        """``{method: overall error}`` (a fresh dict)."""
        return {r.method: r.error for r in self.results}

    @property
    def noise(self) -> dict[str, float]:
        """``{method: noise bound}`` in the units of the error (a fresh dict)."""
        return {r.method: r.noise for r in self.results}

    def __getitem__(self, method: str) -> MethodResult:
        for r in self.results:
            if r.method == method:
                return r
        raise KeyError(f"{method!r} was not among the methods checked ({', '.join(self.errors)}).")

    @property
    def failed(self) -> tuple[MethodResult, ...]:
        """The failing methods' results."""
        return tuple(r for r in self.results if r.status == "FAIL")

    @property
    def worst_layer(self) -> int | None:
        """Networks: where the error enters the backward pass (first failing method); else None."""
        return self.failed[0].worst_layer if self.failed else None

    @property
    def worst_param(self) -> str | None:
        """Networks: ``"W^[l]"`` or ``"b^[l]"``, the worse leaf of ``worst_layer``; else None."""
        if not self.failed or self.failed[0].worst_layer is None:
            return None
        r = self.failed[0]
        return f"{r.worst_param}^[{r.worst_layer}]"

    @property
    def worst_leaf(self) -> str | None:
        """The leaf furthest over its threshold + noise (first failing method); None when all passed."""
        return self.failed[0].worst_leaf if self.failed else None

    @property
    def failed_leaves(self) -> tuple[str, ...]:
        """Every leaf over its threshold + noise in some method, in order of first appearance."""
        return tuple(dict.fromkeys(name for r in self.results for name in r.failed_leaves))

    @property
    def worst_entries(self) -> tuple[Entry, ...]:
        """The worst entries across methods (the failing ones when any failed), largest |diff| first.

        An entry that several methods report appears once, with its largest difference.
        """
        results = self.failed or self.results
        entries = sorted((e for r in results for e in r.worst_entries), key=lambda e: -_abs_or_inf(e))
        seen = {}
        for e in entries:
            seen.setdefault((e.leaf, e.index, e.kind, e.cotangent), e)
        return tuple(seen.values())[: max((len(r.worst_entries) for r in results), default=0)]

    @property
    def worst_ratio(self) -> float:
        """The largest error / (threshold + noise bound) over the methods, overall and per leaf.

        Above 1 exactly where the report fails (a verdict per leaf, conventions §3); inf where a
        side is not finite; 0.0 when nothing was compared. ``jaxnn.check.search_vjp`` maximises it.
        """
        return max((_method_ratio(r) for r in self.results if r.status != "skipped"), default=0.0)

    @property
    def headline(self) -> str:
        """One line: the verdict, the worst leaf, its method's error and allowance, the worst entry."""
        if self.passed:
            return f"{self.kind} passed: {self.subject} (largest error / allowance {self.worst_ratio:.2g})"
        r = self.failed[0]
        where = f"{r.worst_param}^[{r.worst_layer}]" if r.worst_layer is not None else r.worst_leaf
        text = (
            f"{self.kind} FAILED at {where}: {r.method} error {fmt(r.error)} > threshold "
            f"{r.threshold:.0e} + noise {fmt(r.noise)}"
        )
        if len(self.failed) > 1:
            text += f" (also {', '.join(o.method for o in self.failed[1:])})"
        if r.worst_entries:
            e = r.worst_entries[0]
            text += f"; worst entry {e.where()}: {e.manual:.8g} under test vs {e.reference:.8g}"
        if r.reasons:
            text += f"; why: {r.reasons[0]}"
        return text

    def raise_if_failed(self) -> None:
        """Raise ``GradientCheckError`` (an ``AssertionError``) if any method failed.

        Its message is ``headline`` on the first line (pytest's short summary shows it), then the
        located report (``str(self)``); the exception's ``report`` attribute is this report.
        """
        __tracebackhide__ = True  # pytest shows the caller's line, then the report
        if not self.passed:
            err = GradientCheckError(f"{self.headline}\n\n{self}")
            err.report = self
            raise err

    def __str__(self) -> str:
        head = f"{self.kind}: {self.subject}" + (f", m = {self.m}" if self.m is not None else "")
        head += f", {'params' if self.m is not None else 'primals'} {self.dtype}, eps = {self.eps:g}"
        if self.m is not None:
            head += f", J = {self.cost:.6g}"
        rows = [
            [r.method, r.dtype, fmt(r.error), fmt(r.noise), f"{r.threshold:.0e}", r.status, _compared(r)]
            for r in self.results
        ]
        header = ["method", "dtype", "error", "noise bound", "threshold", "result", "compared"]
        out = [head, table(header, rows)]
        out.append(
            "A method passes when error <= threshold + noise bound (the floating-point noise "
            "estimated for this problem, conventions §3), overall and in every leaf."
        )
        if self.results and self.results[0].leaf_errors:
            leaves = [name for name, _, _ in self.results[0].leaf_errors]
            cols = [{n: f"{fmt(e)} ({fmt(s)})" for n, e, s in r.leaf_errors} for r in self.results]
            out.append(
                table(
                    ["leaf", *(f"{r.method} (noise)" for r in self.results)],
                    [[leaf, *(c.get(leaf, "-") for c in cols)] for leaf in leaves],
                )
            )
        for r in self.results:
            out.append(f"{r.method}: {r.strategy}." + (f" {r.note}" if r.note else ""))
        if self.coverage:
            out.append("Pre-activations exercised (a derivative is tested only where Z was):")
            out.append(
                table(
                    ["layer", "min Z", "max Z", "share |z| > 4"],
                    [
                        [str(c.layer), f"{c.z_min:.3g}", f"{c.z_max:.3g}", f"{c.beyond_4:.0%}"]
                        for c in self.coverage
                    ],
                )
            )
        for r in self.failed:
            if r.worst_layer is not None:
                out.append(
                    f"{r.method} FAILED: the error enters the backward pass at layer {r.worst_layer} "
                    f"(the highest layer over threshold + noise; layers below inherit it), worst leaf "
                    f"{r.worst_param}^[{r.worst_layer}] (leaves over threshold + noise: "
                    f"{', '.join(r.failed_leaves) or 'none alone'}). Largest differences:"
                )
            else:
                out.append(
                    f"{r.method} FAILED at {r.worst_leaf} (leaves over threshold + noise: "
                    f"{', '.join(r.failed_leaves) or 'none alone'}). Largest differences:"
                )
            out.append(
                table(
                    ["where", "under test", "reference", "|diff|", "noise"],
                    [
                        [e.where(), f"{e.manual:.8e}", f"{e.reference:.8e}", fmt(e.abs_error), fmt(e.noise)]
                        for e in r.worst_entries
                    ],
                )
            )
            out += [f"  why: {why}" for why in r.reasons]
        out.append("PASSED" if self.passed else "FAILED")
        return "\n".join(out)


def fmt(x: float | None) -> str:
    """``"1.23e-04"``, or ``"nan"`` for None / nan.

    Args:
      x: the number.

    >>> fmt(0.000123), fmt(None)
    ('1.23e-04', 'nan')
    """
    return "nan" if x is None or x != x else f"{x:.2e}"


def _abs_or_inf(e: Entry) -> float:
    d = e.abs_error
    return math.inf if d != d else d


def _method_ratio(r: MethodResult) -> float:
    """error / (threshold + noise), overall and per leaf, the largest; inf for a nan error."""
    pairs = [(r.error, r.noise), *((err, noise) for _, err, noise in r.leaf_errors)]
    worst = 0.0
    for err, noise in pairs:
        if err != err or noise != noise:
            return math.inf
        worst = max(worst, err / max(r.threshold + noise, 1e-300))
    return worst


def _compared(r: MethodResult) -> str:
    if not r.excluded:
        return str(r.compared)
    if r.method == "finite_difference":
        return f"{r.compared} ({r.excluded} excluded near a kink)"
    return f"{r.compared} ({r.excluded} examples left out)"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table with aligned columns.

    Args:
      header: the column titles.
      rows: the cells, row by row.

    >>> print(table(["a", "b"], [["1", "22"]]))
    | a | b  |
    | - | -- |
    | 1 | 22 |
    """
    cells = [list(map(str, header)), *[list(map(str, r)) for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join(
        [line(cells[0]), "| " + " | ".join("-" * w for w in widths) + " |", *map(line, cells[1:])]
    )
