"""The assert form for test suites: ``assert_vjp`` / ``assert_grad``, one line per rule in a pytest test.

Each runs ``check_vjp`` / ``check_grad`` (or, given ``domain=``, the input
search ``search_vjp`` / ``search_grad``) and raises ``GradientCheckError`` (an
``AssertionError``) when the check fails. The exception's first line is the
report's ``headline`` (what failed, at which leaf, the worst entry), which
pytest's short test summary shows; the rest is the located report. On
success the report is returned.

    def test_my_rule():
        assert_vjp(my_op, (x,), reference=plain_op)                       # at x
        assert_vjp(my_op, (x,), reference=plain_op, domain=(-30.0, 30.0))  # searched
"""

from __future__ import annotations

from collections.abc import Callable

from jaxnn.check.report import GradientReport
from jaxnn.check.search import SearchReport, search_grad, search_vjp
from jaxnn.check.vjp import check_grad, check_vjp


def assert_vjp(
    f: Callable,
    primals: tuple,
    *,
    domain=None,
    budget: int | None = None,
    seconds: float | None = None,
    **check_kw,
) -> GradientReport | SearchReport:
    """Check a VJP rule and raise ``GradientCheckError`` with the located report if it fails.

    Args:
      f: the function, as in ``check_vjp``.
      primals: the point of the check (the template of every point when searching).
      domain: None checks at ``primals``; bounds or a sampler search that domain for the worst
        point first (``search_vjp``).
      budget: with ``domain``: how many points to search (default 64).
      seconds: with ``domain``: a time limit for the search (default none).
      **check_kw: the options of ``check_vjp`` (``vjp=``, ``reference=``, ``methods=``, ...).

    Returns:
      The passing report (a ``SearchReport`` when searching).

    Raises:
      GradientCheckError: the check (or the search's worst point) failed; the message's first
        line names the leaf, the method's error against its allowance and the worst entry.
      ValueError: as ``check_vjp`` / ``search_vjp``; ``budget`` or ``seconds`` without ``domain``.

    >>> rule = lambda p, c: (2 * p[0] * c,)
    >>> assert_vjp(jnp.square, (jnp.arange(1.0, 4.0),), vjp=rule).passed
    True
    >>> assert_vjp(jnp.square, (jnp.arange(1.0, 4.0),), vjp=lambda p, c: (2.01 * p[0] * c,))
    Traceback (most recent call last):
    ...
    jaxnn.check.report.GradientCheckError: check_vjp FAILED at primals[0]: finite_difference error ...
    """
    __tracebackhide__ = True  # pytest's traceback ends at the test's own line
    return _assert("assert_vjp", check_vjp, search_vjp, f, primals, domain, budget, seconds, check_kw)


def assert_grad(
    f: Callable,
    primals,
    *,
    domain=None,
    budget: int | None = None,
    seconds: float | None = None,
    **check_kw,
) -> GradientReport | SearchReport:
    """Check a gradient of a scalar function and raise ``GradientCheckError`` if it fails.

    Args:
      f: the scalar function, as in ``check_grad``.
      primals: the point of the check (the template of every point when searching).
      domain: None checks at ``primals``; bounds or a sampler search that domain (``search_grad``).
      budget: with ``domain``: how many points to search (default 64).
      seconds: with ``domain``: a time limit for the search (default none).
      **check_kw: the options of ``check_grad`` (``grad=``, ``reference=``, ...).

    Returns:
      The passing report (a ``SearchReport`` when searching).

    Raises:
      GradientCheckError: as ``assert_vjp``.
      ValueError: as ``check_grad`` / ``search_grad``; ``budget`` or ``seconds`` without ``domain``.

    >>> f = lambda x: jnp.sum(x ** 3)
    >>> assert_grad(f, (jnp.arange(1.0, 4.0),), grad=lambda x: 3 * x ** 2, reference=f).passed
    True
    """
    __tracebackhide__ = True
    return _assert("assert_grad", check_grad, search_grad, f, primals, domain, budget, seconds, check_kw)


def _assert(who, check, search, f, primals, domain, budget, seconds, check_kw):
    __tracebackhide__ = True
    if domain is None:
        if budget is not None or seconds is not None:
            raise ValueError(
                f"{who}: budget= and seconds= size an input search; pass domain=(lo, hi) (or a sampler) "
                "to search, or leave them out to check at primals."
            )
        report = check(f, primals, **check_kw)
    else:
        report = search(
            f, primals, domain=domain, budget=64 if budget is None else budget, seconds=seconds, **check_kw
        )
    report.raise_if_failed()
    return report
