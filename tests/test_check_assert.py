"""The assert form for test suites: assert_vjp / assert_grad, the report's failed_leaves,
worst_entries, worst_ratio and headline, and GradientCheckError's text in pytest's output."""

import textwrap

import jax
import jax.numpy as jnp
import pytest

from jaxnn.check import GradientCheckError, GradientReport, SearchReport, assert_grad, assert_vjp, check_vjp

pytest_plugins = ["pytester"]


def layer(params, x):
    return jnp.tanh(params["W"] @ x + params["b"])


def layer_vjp(scale_W):
    """The VJP of tanh(W x + b); scale_W != 1 plants a bug in dW only."""

    def vjp(primals, c):
        params, x = primals
        dz = c * (1 - layer(params, x) ** 2)
        return {"W": scale_W * jnp.outer(dz, x), "b": dz}, params["W"].T @ dz

    return vjp


PRIMALS = ({"W": jnp.array([[0.5, -1.0, 0.25], [1.5, 0.5, -0.75]]), "b": jnp.array([0.1, -0.2])},
           jnp.array([1.0, -0.5, 2.0]))


def test_a_passing_rule_returns_its_report(x64):
    report = assert_vjp(layer, PRIMALS, vjp=layer_vjp(1.0), reference=layer)
    assert isinstance(report, GradientReport) and report.passed
    assert report.failed_leaves == () and report.worst_ratio <= 1
    assert report.headline.startswith("check_vjp passed")
    f = lambda x: jnp.sum(jnp.sin(x) ** 2)  # noqa: E731
    report = assert_grad(f, (jnp.linspace(-1.0, 2.0, 5),), grad=lambda x: jnp.sin(2 * x), reference=f)
    assert report.passed and report.kind == "check_grad"


def test_a_failing_rule_raises_with_the_leaf_and_the_entry(x64):
    with pytest.raises(GradientCheckError) as e:
        assert_vjp(layer, PRIMALS, vjp=layer_vjp(1.001), reference=layer)
    text = str(e.value)
    first = text.splitlines()[0]
    # the first line: verdict, leaf, the method's error against its allowance, the worst entry
    assert first.startswith("check_vjp FAILED at primals[0]['W']: reference error ")
    assert "> threshold 1e-05 + noise" in first  # float32 primals and "worst entry primals[0]['W'][" in first
    assert "under test vs" in first
    # then the whole located report: tables, the leaf table, the worst entries, the verdict
    assert "| primals[0]['W']" in text and "| primals[0]['b']" in text and text.endswith("FAILED")
    report = e.value.report
    assert isinstance(e.value, AssertionError) and not report.passed
    assert report.failed_leaves == ("primals[0]['W']",)  # b and x are right
    assert report.worst_ratio > 1
    worst = report.worst_entries
    assert worst and all(w.leaf == "primals[0]['W']" for w in worst)
    assert [w.abs_error for w in worst] == sorted((w.abs_error for w in worst), reverse=True)
    # every entry appears once though both methods report it
    assert len({(w.leaf, w.index, w.cotangent) for w in worst}) == len(worst)


def test_the_report_attributes_gather_across_methods(x64):
    report = check_vjp(layer, PRIMALS, vjp=layer_vjp(1.001), reference=layer,
                       methods=("reference", "finite_difference", "jvp"))
    per_method = {leaf for r in report.results for leaf in r.failed_leaves}
    assert set(report.failed_leaves) == per_method == {"primals[0]['W']"}
    largest = max((e for r in report.failed for e in r.worst_entries), key=lambda e: e.abs_error)
    assert report.worst_entries[0].abs_error == largest.abs_error
    # worst_ratio > 1 exactly where a method fails
    def ratio(r):
        return max([r.error / (r.threshold + r.noise)] + [e / (r.threshold + n) for _, e, n in r.leaf_errors])

    for r in report.results:
        assert (ratio(r) > 1) == (r.status == "FAIL")
    assert report.worst_ratio == pytest.approx(max(ratio(r) for r in report.results))


def test_assert_with_a_domain_searches_it(x64):
    @jax.custom_vjp
    def softsign(x):
        return x / (1 + jnp.abs(x))

    # the |x| > 20 branch is wrong: random N(0, 1) points pass, a search of [-1e3, 1e3] fails it
    softsign.defvjp(lambda x: (softsign(x), x),
                    lambda x, g: (jnp.where(jnp.abs(x) > 20, 1 / x**2, 1 / (1 + jnp.abs(x)) ** 2) * g,))
    plain = lambda x: x / (1 + jnp.abs(x))  # noqa: E731
    x = jax.random.normal(jax.random.key(0), (8,), jnp.float64)
    assert assert_vjp(softsign, (x,), reference=plain).passed
    searched = r"FAILED at primals\[0\].*\[search: worst of 32 points"
    with pytest.raises(GradientCheckError, match=searched) as e:
        assert_vjp(softsign, (x,), reference=plain, domain=(-1e3, 1e3), budget=32)
    assert isinstance(e.value.report, SearchReport) and "points searched over [-1000, 1000]" in str(e.value)
    ok = assert_vjp(plain, (x,), vjp=lambda p, c: (c / (1 + jnp.abs(p[0])) ** 2,), reference=plain,
                    domain=(-1e3, 1e3), budget=16)
    assert isinstance(ok, SearchReport) and ok.passed and ok.tried == 16


@pytest.mark.parametrize("kw", [{"budget": 8}, {"seconds": 1.0}])
def test_search_options_without_a_domain_are_refused(kw):
    with pytest.raises(ValueError, match=r"assert_vjp: budget= and seconds= size an input search; pass"):
        assert_vjp(jnp.sin, (jnp.zeros(2),), vjp=lambda p, c: (jnp.cos(p[0]) * c,), **kw)


def test_the_failure_reads_well_in_pytests_output(pytester, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # pytest cuts the summary line at the terminal's width
    pytester.makepyfile(test_rules=textwrap.dedent("""
        import jax.numpy as jnp
        from jaxnn.check import assert_vjp

        def rule(primals, c):
            W, x = primals
            return 1.01 * jnp.outer(c, x), W.T @ c      # dW planted 1% off

        def test_matvec_rule():
            W, x = jnp.array([[1.0, 2.0], [3.0, 4.0]]), jnp.array([0.5, -1.0])
            assert_vjp(lambda W, x: W @ x, (W, x), vjp=rule)
    """))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-o", "addopts=", "-rf")
    result.assert_outcomes(failed=1)
    # the short summary line names the check, the leaf, the allowance and the worst entry
    result.stdout.re_match_lines([
        r"FAILED test_rules.py::test_matvec_rule - jaxnn.check.report.GradientCheckError: check_vjp "
        r"FAILED at primals\[0\]: finite_difference error .* > threshold 1e-06 \+ noise .*; "
        r"worst entry primals\[0\]\[\d, \d\].*under test vs",
    ])
    # and the body shows the located report's tables
    result.stdout.fnmatch_lines(["E * | method *| dtype *| error *",
                                 "E * finite_difference FAILED at primals?0? (leaves over*"])  # ?: [ and ]
    # jaxnn's own frames are hidden: the traceback ends at the test's line
    assert "def raise_if_failed" not in result.stdout.str() and "def _assert" not in result.stdout.str()
    result.stdout.fnmatch_lines([">*assert_vjp(lambda W, x: W @ x, (W, x), vjp=rule)"])


RULES_FILE = """
import jax.numpy as jnp
from jaxnn.check import assert_vjp, check_vjp

W, x = jnp.array([[1.0, 2.0], [3.0, 4.0]]), jnp.array([0.5, -1.0])
matvec = lambda W, x: W @ x

def test_dW_off():
    assert_vjp(matvec, (W, x), vjp=lambda p, c: (1.01 * jnp.outer(c, p[1]), p[0].T @ c))

def test_dx_off():
    check_vjp(matvec, (W, x), vjp=lambda p, c: (jnp.outer(c, p[1]), 0.5 * p[0].T @ c)).raise_if_failed()

def test_right():
    assert_vjp(matvec, (W, x), vjp=lambda p, c: (jnp.outer(c, p[1]), p[0].T @ c))

def test_not_a_check():
    assert 1 == 2
"""


@pytest.mark.parametrize("workers", [[], ["-p", "xdist", "-n", "2"]], ids=["one process", "xdist"])
def test_the_plugin_writes_every_failed_check_to_one_file(pytester, workers):
    pytester.makepyfile(test_rules=RULES_FILE)
    out = pytester.path / "checks.md"
    out.write_text("from an earlier session\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-o", "addopts=", *workers,
                                           "-p", "jaxnn.check.pytest_plugin", "--jaxnn-report", str(out))
    result.assert_outcomes(failed=3, passed=1)
    text = out.read_text()
    assert "earlier session" not in text  # rewritten per session
    sections = text.split("## ")[1:]
    assert sorted(s.splitlines()[0] for s in sections) == [
        "test_rules.py::test_dW_off (call)", "test_rules.py::test_dx_off (call)"]
    dW = next(s for s in sections if "test_dW_off" in s)
    dx = next(s for s in sections if "test_dx_off" in s)
    assert "finite_difference FAILED at primals[0] " in dW and "| primals[0][" in dW
    assert dW.rstrip().endswith("FAILED")
    assert "finite_difference FAILED at primals[1] " in dx
    assert text.endswith("2 gradient-check failure(s) recorded.\n")
    # without the option the plugin writes nothing
    again = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-o", "addopts=", "-p",
                                          "jaxnn.check.pytest_plugin", "-k", "right")
    again.assert_outcomes(passed=1, deselected=3)
