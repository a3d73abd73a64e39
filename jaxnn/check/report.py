"""``GradientReport`` (per method, per leaf, worst entries) and ``FunctionReport``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import jax

Array = jax.Array


class GradientCheckError(AssertionError):
    """Raised by ``raise_if_failed``; the message is the report's table."""


# --- reports -------------------------------------------------------------------------------


class Entry(NamedTuple):
    """One compared number: an entry of W^[l] or b^[l], or one random direction v_k.

    ``manual`` is the hand-derived value, ``reference`` the method's (autodiff,
    finite difference or jvp). For a direction both are directional derivatives
    <g, v_k>.
    """

    layer: int
    param: str
    index: tuple[int, ...]
    manual: float
    reference: float
    kind: str = "entry"

    @property
    def abs_error(self) -> float:
        return abs(self.manual - self.reference)

    def where(self) -> str:
        if self.kind == "direction":
            return f"{self.param}^[{self.layer}]·v{self.index[0]}"
        return f"{self.param}^[{self.layer}][{', '.join(str(i) for i in self.index)}]"


class MethodResult(NamedTuple):
    """The comparison of the manual gradient with one reference method.

    Attributes:
      method: ``"autodiff"``, ``"finite_difference"`` or ``"jvp"``.
      dtype: the dtype both sides were computed in.
      error: normwise relative error over the whole gradient (conventions §3);
        nan when a side is not finite or nothing was compared.
      threshold: the pass/fail threshold used.
      status: ``"pass"``, ``"FAIL"`` or ``"skipped"`` (nothing left to compare).
      strategy: how the reference was computed.
      param_errors: ``((l, "W", err), (l, "b", err), ...)`` for l = 1..L.
      layer_errors: error of each layer's (W, b) together, layer 1 first.
      worst_layer: when failed, the highest layer whose error exceeds the
        threshold. A wrong derivative in layer l corrupts dZ^[l] and, through
        the recursion dZ^[l-1] = W^T dZ^[l] ⊙ g'(Z^[l-1]), every layer below
        it; the error enters the backward pass at the highest failing layer.
      worst_param: ``"W"`` or ``"b"``, the worse of the two in ``worst_layer``.
      worst_entries: the entries (or directions) with the largest |manual -
        reference|, largest first.
      compared: how many entries / directions were compared.
      excluded: how many were left out because a ±ε step would cross a kink
        (finite differences), or examples left out because a pre-activation
        sits exactly on a kink of a custom activation (autodiff, jvp).
      note: anything else worth knowing (non-finite values, exclusions).
    """

    method: str
    dtype: str
    error: float
    threshold: float
    status: str
    strategy: str
    param_errors: tuple[tuple[int, str, float], ...]
    layer_errors: tuple[float, ...]
    worst_layer: int | None
    worst_param: str | None
    worst_entries: tuple[Entry, ...]
    compared: int
    excluded: int
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.status != "FAIL"


@dataclasses.dataclass(frozen=True)
class GradientReport:
    """The result of ``check_gradients``: immutable; ``str(report)`` is a table.

    Attributes:
      network: ``net.describe()``-style text of the checked network.
      m: batch size.
      dtype: dtype of the caller's params.
      eps: finite-difference step ε.
      cost: J at the params, in float64.
      results: one ``MethodResult`` per method, in the order requested.
    """

    network: str
    m: int
    dtype: str
    eps: float
    cost: float
    results: tuple[MethodResult, ...]

    @property
    def passed(self) -> bool:
        """True when no method failed and at least one actually compared something."""
        return all(r.passed for r in self.results) and any(r.status == "pass" for r in self.results)

    @property
    def errors(self) -> dict[str, float]:
        """``{method: overall error}`` (a fresh dict)."""
        return {r.method: r.error for r in self.results}

    def __getitem__(self, method: str) -> MethodResult:
        for r in self.results:
            if r.method == method:
                return r
        raise KeyError(f"{method!r} was not among the methods checked ({', '.join(self.errors)}).")

    @property
    def failed(self) -> tuple[MethodResult, ...]:
        return tuple(r for r in self.results if r.status == "FAIL")

    @property
    def worst_layer(self) -> int | None:
        """Where the error enters the backward pass (see ``MethodResult.worst_layer``), from the
        first failing method; None when all passed."""
        return self.failed[0].worst_layer if self.failed else None

    @property
    def worst_param(self) -> str | None:
        """``"W^[l]"`` or ``"b^[l]"``: the worse leaf of ``worst_layer``; None when all passed."""
        if not self.failed:
            return None
        r = self.failed[0]
        return f"{r.worst_param}^[{r.worst_layer}]"

    def raise_if_failed(self) -> None:
        """Raise ``GradientCheckError`` (an ``AssertionError``) with the table if any method failed."""
        if not self.passed:
            raise GradientCheckError("\n" + str(self))

    def __str__(self) -> str:
        head = (
            f"check_gradients: {self.network}, m = {self.m}, params {self.dtype}, "
            f"eps = {self.eps:g}, J = {self.cost:.6g}"
        )
        rows = [
            [r.method, r.dtype, fmt(r.error), f"{r.threshold:.0e}", r.status, _compared(r)]
            for r in self.results
        ]
        out = [head, table(["method", "dtype", "error", "threshold", "result", "compared"], rows)]
        if self.results and self.results[0].param_errors:
            leaves = [f"{p}^[{l}]" for l, p, _ in self.results[0].param_errors]
            cols = [[fmt(e) for _, _, e in r.param_errors] for r in self.results]
            out.append(
                table(
                    ["leaf", *(r.method for r in self.results)],
                    [[leaf, *(c[i] for c in cols)] for i, leaf in enumerate(leaves)],
                )
            )
        for r in self.results:
            out.append(f"{r.method}: {r.strategy}." + (f" {r.note}" if r.note else ""))
        for r in self.failed:
            out.append(
                f"{r.method} FAILED: the error enters the backward pass at layer {r.worst_layer} "
                f"(the highest layer over the threshold; layers below inherit it), worst leaf "
                f"{r.worst_param}^[{r.worst_layer}]. Largest differences:"
            )
            out.append(
                table(
                    ["where", "manual", "reference", "|diff|"],
                    [
                        [e.where(), f"{e.manual:.8e}", f"{e.reference:.8e}", fmt(e.abs_error)]
                        for e in r.worst_entries
                    ],
                )
            )
        out.append("PASSED" if self.passed else "FAILED")
        return "\n".join(out)


def fmt(x: float | None) -> str:
    return "nan" if x is None or x != x else f"{x:.2e}"


def _compared(r: MethodResult) -> str:
    if not r.excluded:
        return str(r.compared)
    if r.method == "finite_difference":
        return f"{r.compared} ({r.excluded} excluded near a kink)"
    return f"{r.compared} ({r.excluded} examples left out)"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table with aligned columns."""
    cells = [list(map(str, header)), *[list(map(str, r)) for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join(
        [line(cells[0]), "| " + " | ".join("-" * w for w in widths) + " |", *map(line, cells[1:])]
    )


# --- check_activation / check_loss ---------------------------------------------------------


class PointReport(NamedTuple):
    """The worst input of an activation or loss check.

    ``where`` is the input (``z`` for an elementwise activation, a column of Z,
    or ``AL``/``Y`` columns for a loss); ``manual`` and ``reference`` the two
    derivatives there.
    """

    where: str
    manual: str
    reference: str


@dataclasses.dataclass(frozen=True)
class FunctionReport:
    """Result of ``check_activation`` / ``check_loss``; ``str(report)`` is readable.

    Attributes:
      kind: ``"activation"`` or ``"loss"``.
      name: the activation's or loss's name.
      dtype: dtype of the check (float64 by default).
      error: largest relative error (see the function's docstring); nan if a
        manual derivative is not finite where the function is.
      threshold: pass/fail threshold.
      n_points: number of inputs compared.
      n_skipped: inputs outside the function's domain (its value, or the
        autodiff reference, is not finite there) and so not compared.
      worst: the input with the largest disagreement (a non-finite manual
        derivative first).
      strategy: what was compared with what.
    """

    kind: str
    name: str
    dtype: str
    error: float
    threshold: float
    n_points: int
    n_skipped: int
    worst: PointReport | None
    strategy: str

    @property
    def passed(self) -> bool:
        return self.n_points > 0 and self.error <= self.threshold

    def raise_if_failed(self) -> None:
        """Raise ``GradientCheckError`` with ``str(self)`` unless passed."""
        if not self.passed:
            raise GradientCheckError("\n" + str(self))

    def __str__(self) -> str:
        lines = [
            f"check_{self.kind}({self.name!r}): {'PASSED' if self.passed else 'FAILED'}: error "
            f"{fmt(self.error)} (threshold {self.threshold:.0e}, {self.dtype}) over {self.n_points} "
            f"inputs, {self.n_skipped} skipped outside the domain.",
            f"  compared: {self.strategy}.",
        ]
        if self.worst is not None:
            lines.append(f"  worst input: {self.worst.where}")
            lines.append(f"    manual:    {self.worst.manual}")
            lines.append(f"    reference: {self.worst.reference}")
        return "\n".join(lines)


ActivationReport = FunctionReport
LossReport = FunctionReport

# Inputs for check_activation: a dense grid where activations bend, then large |z|
# (saturation, overflow of exp) up to where float64 exp overflows.
