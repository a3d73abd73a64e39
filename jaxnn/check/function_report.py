"""The report of ``check_activation`` / ``check_loss``: ``FunctionReport``, one ``PointMethod`` per method."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from jaxnn.check.report import GradientCheckError, fmt


class PointReport(NamedTuple):
    """The worst input of an activation or loss check.

    Attributes:
      where: the input (``z`` for an elementwise activation, a column of Z, or an AL column for a loss).
      manual: the hand-written derivative there.
      reference: the method's derivative there.
    """

    where: str
    manual: str
    reference: str


class PointMethod(NamedTuple):
    """One method of ``check_activation`` / ``check_loss``.

    Attributes:
      method: ``"autodiff"`` (jax.vjp / jax.grad), ``"finite_difference"`` or ``"jvp"``.
      error: normwise relative error over the inputs (largest per example for losses).
      noise: the estimated floating-point noise bound, in the units of ``error``.
      threshold: rtol; passed when error <= threshold + noise.
      status: ``"pass"``, ``"FAIL"`` or ``"skipped"``.
      worst: the input with the largest disagreement.
      strategy: what was compared with what.
    """

    method: str
    error: float
    noise: float
    threshold: float
    status: str
    worst: PointReport | None
    strategy: str


@dataclasses.dataclass(frozen=True)
class FunctionReport:
    """Result of ``check_activation`` / ``check_loss``; ``str(report)`` is readable.

    Attributes:
      kind: ``"activation"`` or ``"loss"``.
      name: the activation's or loss's name.
      dtype: dtype of the check (float64 by default).
      error: the decisive method's error (the first failing one, else the
        first): normwise relative error; nan if a manual derivative is not
        finite where the function is.
      threshold: that method's threshold.
      n_points: number of inputs compared.
      n_skipped: inputs outside the function's domain (its value, or the
        reference, is not finite there) and so not compared.
      worst: the decisive method's worst input (a non-finite manual
        derivative first).
      strategy: what that method compared.
      noise: that method's noise bound (units of ``error``).
      grid: the inputs the derivative was tested on: it is tested nowhere else.
      results: every method's ``PointMethod``.
      report: the engine's ``GradientReport`` behind it (``check_vjp`` of the rule on the inputs:
        per-leaf errors, worst entries, reasons), or None when no input was inside the domain.
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
    noise: float = 0.0
    grid: str = ""
    results: tuple[PointMethod, ...] = ()
    report: object = None

    @property
    def passed(self) -> bool:
        """True when inputs were compared and no method failed."""
        if not self.results:
            return self.n_points > 0 and self.error <= self.threshold + self.noise
        return (
            self.n_points > 0
            and all(r.status != "FAIL" for r in self.results)
            and any(r.status == "pass" for r in self.results)
        )

    def raise_if_failed(self) -> None:
        """Raise ``GradientCheckError`` with ``str(self)`` unless passed."""
        if not self.passed:
            raise GradientCheckError("\n" + str(self))

    def __str__(self) -> str:
        lines = [
            f"check_{self.kind}({self.name!r}): {'PASSED' if self.passed else 'FAILED'} over "
            f"{self.n_points} inputs, {self.n_skipped} skipped outside the domain ({self.dtype}).",
            f"  inputs: {self.grid}." if self.grid else "",
        ]
        for r in self.results or (
            PointMethod("", self.error, self.noise, self.threshold, "", self.worst, self.strategy),
        ):
            lines.append(
                f"  {r.method}: {r.status}: error {fmt(r.error)}, noise bound {fmt(r.noise)}, threshold "
                f"{r.threshold:.0e}; {r.strategy}."
            )
            if r.worst is not None and r.status != "skipped":
                lines.append(f"    worst input: {r.worst.where}")
                lines.append(f"      manual:    {r.worst.manual}")
                lines.append(f"      reference: {r.worst.reference}")
        if self.report is not None:  # the engine's located report, in the one text format
            lines.append(str(self.report))
        return "\n".join(line for line in lines if line)


ActivationReport = FunctionReport
LossReport = FunctionReport
