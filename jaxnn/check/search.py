"""Input search: the primals where a rule is furthest over its allowance (conventions §3).

``check_vjp`` tests a rule at the points it is given; a bug confined to one
branch (``x < -5`` in a log_ndtr rule, ``|x| > 20`` in a saturating activation)
passes at every point that misses the branch. ``search_vjp`` / ``search_grad``
go looking, in the spirit of property-based testing: they run the same checker
at ``budget`` points of an input ``domain`` and keep the point where the
largest error / (threshold + noise bound) (``GradientReport.worst_ratio``,
above 1 exactly where a check fails) is largest.

The points, for per-leaf bounds (lo, hi), every entry of a leaf in one
regime (an entry of a normwise error is not averaged away by its neighbours
in another region):

1. the bounds' extremes: every entry at lo, then at hi;
2. log-spaced magnitudes: for each decade [10^k, 10^(k+1)) from the largest
   |bound| down 8 decades, and each sign the bounds allow, entries
   log-uniform in that decade (intersected with the bounds);
3. random points: entries uniform in (lo, hi), or one random decade with
   random signs, or within 1e-3 (hi - lo) of a bound;
4. refinement (the last ``refine`` share of the budget): random steps around
   the worst point so far, shrinking from 0.5 to 1e-3 of each entry's size,
   a step kept when it raises the ratio.

A sampler ``domain(rng) -> primals`` replaces 1-4 (no refinement). Every
point has the template's shapes and dtypes, so every check after the first
reuses the compiled programs (about 0.01 s a check). A point where the
checker refuses the input (f not finite there) is counted as refused and
skipped.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import time
from collections.abc import Callable

import numpy as np

from jaxnn.check.inputs import check_static_argnums
from jaxnn.check.report import GradientCheckError, GradientReport
from jaxnn.check.search_points import (
    assemble,
    describe_bounds,
    leaf_template,
    named_leaves,
    parse_bounds,
    planned_points,
    refine_step,
    sampled_points,
)
from jaxnn.check.vjp import check_grad, check_vjp


@dataclasses.dataclass(frozen=True, eq=False)
class SearchReport:
    """What ``search_vjp`` / ``search_grad`` return: the report at the worst point found.

    Attributes:
      report: the ``GradientReport`` of the check at ``point`` (its subject states the point
        and the search).
      point: the worst primals found (the template's structure, shapes and dtypes).
      ratio: ``report.worst_ratio`` there: the largest error / (threshold + noise), > 1 failed.
      tried: how many points were checked (refused ones included).
      refused: how many the checker refused (f not finite there, ...), with ``refused_reason``.
      seconds: the search's wall time, compiling included.
      domain: the domain searched, in words.
      ratios: every checked point's ratio, in order (nan for a refused one).
      refused_reason: the first refused point's error message ("" if none).
    """

    report: GradientReport
    point: tuple
    ratio: float
    tried: int
    refused: int
    seconds: float
    domain: str
    ratios: tuple[float, ...]
    refused_reason: str = ""

    @property
    def passed(self) -> bool:
        """True when the worst point found passes its check."""
        return self.report.passed

    @property
    def failed_leaves(self) -> tuple[str, ...]:
        """The leaves over their allowance at the worst point."""
        return self.report.failed_leaves

    @property
    def worst_entries(self) -> tuple:
        """The worst entries at the worst point, across methods."""
        return self.report.worst_entries

    @property
    def worst_leaf(self) -> str | None:
        """The leaf furthest over its allowance at the worst point (None when passed)."""
        return self.report.worst_leaf

    @property
    def headline(self) -> str:
        """The report's one-line verdict, with the search's size."""
        return f"{self.report.headline} [search: worst of {self.tried} points, {self.seconds:.1f} s]"

    def raise_if_failed(self) -> None:
        """Raise ``GradientCheckError`` (headline, then the located report) if the worst point fails."""
        __tracebackhide__ = True  # pytest shows the caller's line, then the report
        if not self.passed:
            err = GradientCheckError(f"{self.headline}\n\n{self}")
            err.report = self
            raise err

    def __str__(self) -> str:
        refused = f", {self.refused} refused (first: {self.refused_reason})" if self.refused else ""
        return (
            f"{self.report}\nSearch: {self.tried} points over {self.domain} in {self.seconds:.2f} s"
            f"{refused}; worst error / allowance {self.ratio:.3g} at the point above."
        )


def search_vjp(
    f: Callable,
    primals: tuple,
    *,
    vjp: Callable | None = None,
    reference: Callable | None = None,
    domain,
    budget: int = 64,
    seconds: float | None = None,
    seed: int = 0,
    refine: float = 0.25,
    **check_kw,
) -> SearchReport:
    """Search a domain for the primals where ``check_vjp`` finds a rule furthest over its allowance.

    Args:
      f: the function, as in ``check_vjp``.
      primals: the template: a tuple of pytrees whose structure, shapes and dtypes every point
        has (its values are not checked). Positions in ``static_argnums`` keep their values.
      vjp: the rule under test, as in ``check_vjp`` (None: f's own custom_vjp rule).
      reference: a plain implementation of f, as in ``check_vjp``.
      domain: ``(lo, hi)`` for every float leaf; or a tuple with one entry per primal, each a
        pair or a pytree of pairs with that primal's structure (None at a static position);
        or a sampler ``domain(rng) -> primals`` (rng a ``numpy.random.Generator``).
      budget: how many points to check (an int >= 1).
      seconds: stop after this many seconds even if ``budget`` is not spent (None: no limit).
      seed: seed of the points, and of the checker's cotangents and directions.
      refine: the share of ``budget`` spent refining around the worst point (0 <= refine < 1;
        not with a sampler).
      **check_kw: any other option of ``check_vjp`` (methods, thresholds, eps, static_argnums, ...).

    Returns:
      A ``SearchReport``: the worst point's ``GradientReport``, the point, its ratio, the number
      of points tried and the time.

    Raises:
      ValueError: a bad domain, budget, seconds or refine (naming it and the fix); a sampler
        returning primals of another structure, shape or dtype; every point refused.

    >>> with jax.enable_x64(True):
    ...     r = search_vjp(jnp.sin, (jnp.zeros(4),), vjp=lambda p, c: (jnp.cos(p[0]) * c,),
    ...                    reference=jnp.sin, domain=(-10.0, 10.0), budget=8)
    >>> r.passed, r.tried
    (True, 8)
    """
    run = lambda p: check_vjp(f, p, vjp=vjp, reference=reference, seed=seed, **check_kw)  # noqa: E731
    return _search("search_vjp", run, primals, domain, budget, seconds, seed, refine, check_kw)


def search_grad(
    f: Callable,
    primals: tuple,
    *,
    grad: Callable | None = None,
    reference: Callable | None = None,
    domain,
    budget: int = 64,
    seconds: float | None = None,
    seed: int = 0,
    refine: float = 0.25,
    **check_kw,
) -> SearchReport:
    """Search a domain for the primals where ``check_grad`` finds a gradient furthest over its allowance.

    Args:
      f: the scalar function, as in ``check_grad``.
      primals: the template, as in ``search_vjp``.
      grad: the gradient under test, as in ``check_grad``.
      reference: a plain implementation of f.
      domain: bounds or a sampler, as in ``search_vjp``.
      budget: how many points to check.
      seconds: a time limit (None: none).
      seed: seed of the points and the checker.
      refine: the share of ``budget`` spent refining around the worst point.
      **check_kw: any other option of ``check_grad``.

    Returns:
      A ``SearchReport`` (see ``search_vjp``).

    Raises:
      ValueError: as ``search_vjp``.

    >>> f = lambda x: jnp.sum(jnp.log1p(x ** 2))
    >>> with jax.enable_x64(True):
    ...     r = search_grad(f, (jnp.zeros(3),), grad=lambda x: 2 * x / (1 + x ** 2), reference=f,
    ...                     domain=(-100.0, 100.0), budget=8)
    >>> r.passed
    True
    """
    run = lambda p: check_grad(f, p, grad=grad, reference=reference, seed=seed, **check_kw)  # noqa: E731
    return _search("search_grad", run, primals, domain, budget, seconds, seed, refine, check_kw)


def _search(who, run, primals, domain, budget, seconds, seed, refine, check_kw) -> SearchReport:
    if not isinstance(primals, tuple | list):
        raise ValueError(
            f"{who}: primals must be a tuple of pytrees (the template of every point); got "
            f"{type(primals).__name__}. For one array x write (x,)."
        )
    primals = tuple(primals)
    budget, seconds, refine = _check_budget(who, budget, seconds, refine)
    static = check_static_argnums(check_kw.get("static_argnums", ()), len(primals), who)
    template = leaf_template(primals, static)
    if callable(domain):
        bounds, described, refine_at = None, "a sampler", budget
        points = sampled_points(who, domain, primals, template, seed)
    else:
        bounds = parse_bounds(who, domain, primals, template)
        described = describe_bounds(bounds)
        points, refine_at = planned_points(template, bounds, seed), budget - int(refine * budget)
    rng = np.random.default_rng([seed, 1])
    start, best, ratios, refused, reason = time.perf_counter(), None, [], 0, ""
    for i in range(budget):
        if i and seconds is not None and time.perf_counter() - start > seconds:
            break
        if i < refine_at or best is None:
            leaves = next(points)
        else:
            leaves = refine_step(best[1], bounds, i, refine_at, budget, rng)
        point = assemble(primals, leaves)
        try:
            report = run(point)
        except ValueError as e:  # the checker refuses this input (f not finite there, ...)
            refused, reason = refused + 1, reason or str(e)
            ratios.append(math.nan)
            continue
        ratios.append(report.worst_ratio)
        if best is None or ratios[-1] > best[0].worst_ratio:
            best = (report, leaves, point)
    elapsed = time.perf_counter() - start
    if best is None:
        raise ValueError(
            f"{who}: the checker refused every one of the {len(ratios)} points of {described}; the "
            f"first: {reason} Fix: a domain where f and the rule are defined and finite."
        )
    report, _, point = best
    where = "; ".join(f"{n} = {_short(x)}" for n, x in named_leaves(point, static))
    subject = (
        f"{report.subject}; the worst of {len(ratios)} points searched over {described} "
        f"({elapsed:.1f} s): {where}"
    )
    return SearchReport(
        report=dataclasses.replace(report, subject=subject),
        point=point,
        ratio=report.worst_ratio,
        tried=len(ratios),
        refused=refused,
        seconds=elapsed,
        domain=described,
        ratios=tuple(ratios),
        refused_reason=reason,
    )


def _check_budget(who, budget, seconds, refine):
    if isinstance(budget, bool) or not isinstance(budget, numbers.Integral) or budget < 1:
        raise ValueError(
            f"{who}: budget = {budget!r} must be the number of points to check, an int >= 1 "
            "(e.g. budget=64; a time limit is seconds=...)."
        )
    if seconds is not None and (
        isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not 0 < seconds < math.inf
    ):
        raise ValueError(f"{who}: seconds = {seconds!r} must be a positive number of seconds, or None.")
    if isinstance(refine, bool) or not isinstance(refine, numbers.Real) or not 0 <= refine < 1:
        raise ValueError(
            f"{who}: refine = {refine!r} must be the share of the budget spent near the worst point, "
            "0 <= refine < 1 (0: no refinement)."
        )
    return int(budget), seconds, float(refine)


def _short(x) -> str:
    return np.array2string(np.asarray(x), precision=6, threshold=8, max_line_width=10**6)
