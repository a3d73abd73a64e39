"""search_vjp / search_grad: the input search finds bugs that live in one branch of a rule.

Three rules written in our own JAX code after public ones, each with a bug confined to a
branch that N(0, 1) points never reach:

* log_ndtr (after jax.scipy.special.log_ndtr's three segments): the middle segment
  -20 <= x < -5, exp(log φ(x) - log Φ(x)), scaled by 1 + 1e-4 (the bounds' extremes, in the
  series segment x < -20 and at x = 35, miss it);
* softsign x / (1 + |x|), a saturating activation: the |x| > 20 branch uses the asymptote
  1 / x² for 1 / (1 + |x|)²;
* a mean Huber loss (δ = 5, after optax.huber_loss), gradient by ``check_grad``: the outer
  branch |r| > δ forgets the mean's 1 / n.

Each buggy rule passes the same checker at five fixed random N(0, 1) points and is failed by a
search of BUDGET = 64 points of its domain, at a point in the buggy branch; each correct rule
passes the same search. Measured (2026-12-04, 2-core Xeon shared with other jobs, float64, x of
shape (8,)): about 2-4 s per search of 64 points, of which about 1 s compiling the first check;
the search's first bad point comes from the extremes or the top decades (within its first 20).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.scipy.special import erfc, log_ndtr, ndtr

from jaxnn.check import GradientCheckError, check_grad, check_vjp, search_grad, search_vjp
from jaxnn.check.search_points import leaf_template, parse_bounds, planned_points

BUDGET = 64
LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)
DELTA = 5.0


def make_log_ndtr(far_scale):
    @jax.custom_vjp
    def f(x):
        return log_ndtr(x)

    def fwd(x):
        y = log_ndtr(x)
        return y, (x, y)

    def bwd(res, g):
        x, y = res
        # d log Φ / dx = φ / Φ in three segments, as jax.scipy.special.log_ndtr has: Φ underflows
        # long before log Φ does (x < -5), and below -20 the Mills-ratio series is exact to 1e-11
        x2 = 1 / x**2
        series = -x / (1 - x2 * (1 - 3 * x2 * (1 - 5 * x2 * (1 - 7 * x2 * (1 - 9 * x2)))))
        middle = jnp.exp(-0.5 * x**2 - LOG_SQRT_2PI - y) * far_scale
        near = jnp.exp(-0.5 * x**2 - LOG_SQRT_2PI) / ndtr(x)
        return (jnp.where(x < -20, series, jnp.where(x < -5, middle, near)) * g,)

    f.defvjp(fwd, bwd)
    return f


def log_ndtr_erfc(x):
    """log Φ(x) = log(erfc(-x / √2) / 2): the reference, accurate to float64 rounding down to x = -37
    (jax.scipy.special.log_ndtr's own series below -20 has a gradient 3e-9 off at x = -20.5)."""
    return jnp.log(0.5 * erfc(-x / np.sqrt(2.0)))


def softsign(x):
    return x / (1 + jnp.abs(x))


def make_softsign(asymptote):
    @jax.custom_vjp
    def f(x):
        return softsign(x)

    def bwd(x, g):
        near = 1 / (1 + jnp.abs(x)) ** 2
        far = 1 / x**2 if asymptote else near
        return (jnp.where(jnp.abs(x) > 20, far, near) * g,)

    f.defvjp(lambda x: (softsign(x), x), bwd)
    return f


def huber_mean(r):
    inner = 0.5 * r**2
    outer = DELTA * (jnp.abs(r) - 0.5 * DELTA)
    return jnp.mean(jnp.where(jnp.abs(r) <= DELTA, inner, outer))


def make_huber_grad(forget_mean):
    def grad(r):
        n = r.size
        outer = DELTA * jnp.sign(r) * (1.0 if forget_mean else 1.0 / n)
        return jnp.where(jnp.abs(r) <= DELTA, r / n, outer)

    return grad


# (name, check, search, f, rule keyword, buggy rule, correct rule, reference, domain, in the branch)
RULES = {
    "log_ndtr": (check_vjp, search_vjp, None, "vjp", make_log_ndtr(1 + 1e-4), make_log_ndtr(1.0),
                 log_ndtr_erfc, (-35.0, 35.0), lambda x: (-20 <= x) & (x < -5)),
    "softsign": (check_vjp, search_vjp, None, "vjp", make_softsign(True), make_softsign(False),
                 softsign, (-1e3, 1e3), lambda x: np.abs(x) > 20),
    "huber": (check_grad, search_grad, huber_mean, "grad", make_huber_grad(True), make_huber_grad(False),
              huber_mean, (-100.0, 100.0), lambda x: np.abs(x) > DELTA),
}


def run(name, which, *, search, **kw):
    check, searcher, f, key, bad, good, reference, domain, _ = RULES[name]
    rule = bad if which == "bad" else good
    # a custom_vjp rule is f itself (vjp=None); a gradient is passed as grad=
    f, rule_kw = (rule, {}) if f is None else (f, {key: rule})
    if search:
        return searcher(f, (jnp.zeros(8),), reference=reference, domain=domain, **rule_kw, **kw)
    return check(f, kw.pop("primals"), reference=reference, **rule_kw, **kw)


@pytest.mark.parametrize("name", sorted(RULES))
def test_fixed_random_points_miss_the_branch_bug_the_search_finds_it(x64, name):
    for seed in range(5):  # the usual test: a few random N(0, 1) points
        x = jax.random.normal(jax.random.key(seed), (8,), jnp.float64)
        assert run(name, "bad", search=False, primals=(x,)).passed, seed
    found = run(name, "bad", search=True, budget=BUDGET)
    assert not found.passed and found.ratio > 1 and found.tried == BUDGET and found.refused == 0
    assert found.failed_leaves == ("primals[0]",)
    # the worst entry is an entry of the buggy branch, and the report states the point
    in_branch = RULES[name][-1]
    worst = found.worst_entries[0]
    assert in_branch(np.asarray(found.point[0])[worst.index])
    assert "points searched over" in found.report.subject and "primals[0] = [" in found.report.subject
    with pytest.raises(GradientCheckError, match=r"FAILED at primals\[0\].*search: worst of 64 points") as e:
        found.raise_if_failed()
    assert e.value.report is found and "Search: 64 points over" in str(e.value)
    # the ratio is the report's: > 1 exactly where the check fails
    assert found.ratio == found.report.worst_ratio == max(r for r in found.ratios if r == r)
    assert sum(r > 1 for r in found.ratios) >= 3  # not one lucky point


@pytest.mark.parametrize("name", sorted(RULES))
def test_the_search_never_fails_a_correct_rule(x64, name):
    report = run(name, "good", search=True, budget=BUDGET)
    assert report.passed and report.ratio <= 1 and report.tried == BUDGET
    assert all(r <= 1 for r in report.ratios)
    report.raise_if_failed()  # no exception


def test_a_sampler_domain_and_the_time_limit(x64):
    bad = RULES["log_ndtr"][4]
    calls = []

    def sampler(rng):  # the user's own distribution: a mixture reaching the far tail
        calls.append(1)
        return (rng.normal(0.0, 10.0, 8),)

    found = search_vjp(bad, (jnp.zeros(8),), reference=log_ndtr_erfc, domain=sampler, budget=16)
    assert not found.passed and found.tried == len(calls) == 16 and found.domain == "a sampler"
    # a time limit stops the search early (the first point, compiled or not, is always checked)
    quick = search_vjp(bad, (jnp.zeros(8),), reference=log_ndtr_erfc, domain=(-35.0, 35.0),
                       budget=10_000, seconds=0.5)
    assert 1 <= quick.tried < 10_000 and len(quick.ratios) == quick.tried


def test_points_where_f_is_not_finite_are_refused_and_counted(x64):
    # log(x) on [-1, 1]: every point with a negative entry makes f nan, which the checker refuses
    rule = lambda p, c: (c / p[0],)  # noqa: E731
    report = search_vjp(jnp.log, (jnp.ones(2),), vjp=rule, reference=jnp.log, domain=(-1.0, 1.0), budget=12)
    assert report.passed and 0 < report.refused < report.tried == 12
    assert "NaN" in report.refused_reason or "finite" in report.refused_reason
    assert sum(r != r for r in report.ratios) == report.refused
    assert np.all(np.asarray(report.point[0]) > 0)
    with pytest.raises(ValueError, match="refused every one of the 2 points"):
        search_vjp(jnp.log, (jnp.ones(2),), vjp=rule, domain=(-2.0, -1.0), budget=2)


def test_per_leaf_bounds_and_static_arguments_are_respected():
    primals = ({"W": jnp.zeros((2, 3)), "b": jnp.zeros(2)}, 3)
    template = leaf_template(primals, (1,))
    bounds = parse_bounds("search_vjp", ({"W": (-1e3, 1e3), "b": (0.5, 2.0)}, None), primals, template)
    assert bounds == [(-1e3, 1e3), (0.5, 2.0), None]
    with pytest.raises(ValueError, match=r"domain entry \{'W': \(-1.0, 1.0\)\} does not match its primal's"):
        parse_bounds("search_vjp", ({"W": (-1.0, 1.0)}, None), primals, template)
    points = planned_points(template, bounds, seed=0)
    for _ in range(40):
        W, b, static = next(points)
        assert W.shape == (2, 3) and W.dtype == np.float32 and np.all(np.abs(W) <= 1e3)
        assert np.all((0.5 <= b) & (b <= 2.0)) and static is None
    # the decades are visited: magnitudes from 1e3 down to 1e-4 appear among the first points
    points = planned_points(template, bounds, seed=0)
    mags = {int(np.floor(np.log10(np.abs(next(points)[0]).max()))) for _ in range(20)}
    assert {3, 2, 1, 0, -1, -2, -3, -4} <= mags


def test_a_gradient_search_over_per_leaf_bounds_keeps_static_arguments(x64):
    def f(p, k):
        return jnp.sum(p["b"] * p["a"] ** k)

    def grad(p, k):  # one cotangent per primal: None at the static position
        return {"a": k * p["b"] * p["a"] ** (k - 1), "b": p["a"] ** k}, None

    template = ({"a": jnp.zeros(3), "b": jnp.zeros(3)}, 3)
    domain = ({"a": (-3.0, 3.0), "b": (0.5, 2.0)}, None)
    report = search_grad(f, template, grad=grad, reference=f, domain=domain, budget=24, static_argnums=1)
    assert report.passed and report.tried == 24 and report.refused == 0 and report.domain == "per-leaf bounds"
    a, b = np.asarray(report.point[0]["a"]), np.asarray(report.point[0]["b"])
    assert report.point[1] == 3 and np.all(np.abs(a) <= 3) and np.all((0.5 <= b) & (b <= 2))
    assert "primals[0]['a'] = [" in report.report.subject and "primals[1] =" not in report.report.subject
    def bad(p, k):  # da 1% off where b > 1.5: a bug of one leaf, triggered by another
        g, _ = grad(p, k)
        return {"a": g["a"] * jnp.where(p["b"] > 1.5, 1.01, 1.0), "b": g["b"]}, None

    found = search_grad(f, template, grad=bad, reference=f, domain=domain, budget=24, static_argnums=1)
    assert not found.passed and found.failed_leaves == ("primals[0]['a']",)
    assert np.any(np.asarray(found.point[0]["b"]) > 1.5)


@settings(max_examples=60, deadline=None)
@given(lo=st.floats(-1e30, 1e30), width=st.floats(1e-6, 1e30), seed=st.integers(0, 2**32 - 1))
def test_every_planned_point_lies_in_its_bounds_with_the_template_dtype(lo, width, seed):
    hi = lo + width
    if not hi > lo:  # width lost to rounding next to a large lo
        return
    template = [((4,), np.dtype("float64")), None, ((2, 2), np.dtype("float32"))]
    bounds = [(lo, hi), None, (-1.0, 1.0)]
    points = planned_points(template, bounds, seed)
    for _ in range(40):
        x, static, y = next(points)
        assert static is None and x.dtype == np.float64 and y.dtype == np.float32 and y.shape == (2, 2)
        assert np.all((lo <= x) & (x <= hi)) and np.all(np.abs(y) <= 1.0), (lo, hi, x)


@pytest.mark.parametrize("kw, match", [
    ({"domain": (1.0, -1.0)}, r"domain for primals\[0\] is \(1.0, -1.0\).*lo < hi"),
    ({"domain": (0.0, float("inf"))}, r"finite"),
    ({"domain": "wide"}, r"domain = 'wide' is neither a pair"),
    ({"domain": ((0.0, 1.0), (0.0, 1.0))}, r"one entry per primal \(1 here\)"),
    ({"domain": ({"W": (0.0, 1.0)},)},
     r"domain gives \{'W': \(0.0, 1.0\)\} for primals\[0\]; expected a pair"),
    ({"domain": (-1.0, 1.0), "budget": 0}, r"budget = 0 must be the number of points"),
    ({"domain": (-1.0, 1.0), "budget": 2.5}, r"budget = 2.5"),
    ({"domain": (-1.0, 1.0), "seconds": -1}, r"seconds = -1"),
    ({"domain": (-1.0, 1.0), "refine": 1.0}, r"refine = 1.0"),
    ({"domain": lambda rng: (np.zeros(3),)},
     r"primals\[0\] of shape \(3,\) and dtype float64.*\(2,\) float32"),
    ({"domain": lambda rng: np.zeros(2)}, r"a sampler returns primals"),
])
def test_bad_domain_or_budget_is_a_value_error_naming_it(kw, match):
    rule = lambda p, c: (2 * p[0] * c,)  # noqa: E731
    with pytest.raises(ValueError, match=match):
        search_vjp(jnp.square, (jnp.zeros(2),), vjp=rule, **kw)
