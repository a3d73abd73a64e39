"""Reports that explain (issue: reports that explain): the output named, the reason said, kinks left out.

Every rule here is our own JAX code written after a public one (jax.nn.relu's
derivative, a tanh layer, gradient clipping as in optax.clip, a
straight-through rounding estimator, a two-output layer like a Flax module
returning a dict). Each planted departure is checked twice: the verdict
fails, and the report says why in words; correct rules get no reason.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn.check import GradientCheckError, check_grad, check_vjp
from jaxnn.check.compare import Block
from jaxnn.check.diagnose import kink_entries, leaf_reasons


def _with_rule(fn, bwd):
    g = jax.custom_vjp(fn)
    g.defvjp(lambda *x: (fn(*x), x), bwd)
    return g


X = jnp.array([-1.3, 0.0, 0.7, 2.2, 0.0, -0.4, 1.1, -2.5])


def _layer(x, W):  # two outputs, as a layer returning {"a": activations, "c": a penalty}
    return {"a": jnp.tanh(W @ x), "c": jnp.sum(x**2) * W}


def _layer_rule(bug_in):
    def bwd(res, c):
        x, W = res
        _, vjp = jax.vjp(_layer, x, W)
        dx, dW = vjp(c)
        if bug_in == "c":  # a wrong term in out['c']'s derivative only
            dx = dx + 0.01 * jnp.sum(c["c"] * W) * x
        elif bug_in == "a":
            dW = dW * (1 + 0.01 * jnp.sum(jnp.abs(c["a"])))
        return dx, dW

    return _with_rule(_layer, bwd)


W0 = jnp.arange(6.0).reshape(2, 3) / 5
X0 = jnp.array([0.3, -0.5, 0.8])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bug_in", ["a", "c"])
def test_a_wrong_term_is_located_to_its_output_and_input(dtype, bug_in):
    with jax.enable_x64(dtype == "float64"):
        x, W = X0.astype(dtype), W0.astype(dtype)
        report = check_vjp(_layer_rule(bug_in), (x, W), reference=_layer)
        assert not report.passed
        for r in report.failed:
            worst = r.worst_entries[0]
            assert worst.output == f"out['{bug_in}']"
            assert worst.where().startswith(f"d out['{bug_in}'] / d primals[")
        # the other output's cotangents show no error: the located output is the only one
        for r in report.failed:
            blamed = {e.output for e in r.worst_entries}
            assert blamed == {f"out['{bug_in}']"}
        assert f"d out['{bug_in}'] / d primals[" in report.headline
        with pytest.raises(GradientCheckError, match=rf"d out\['{bug_in}'\] / d primals"):
            report.raise_if_failed()


def test_a_correct_rule_with_several_outputs_passes_and_names_them_in_the_subject():
    report = check_vjp(_layer_rule(None), (X0, W0), reference=_layer)
    assert report.passed, str(report)
    assert "on each of 2 outputs alone: 3 random" in report.subject
    assert all(r.reasons == () for r in report.results)


RELU = _with_rule(jax.nn.relu, lambda x, c: (jnp.where(x[0] > 0, c, 0.0),))


def test_a_kink_is_said_and_exclude_leaves_it_out():
    report = check_vjp(RELU, (X,), reference=jax.nn.relu)
    fd = report["finite_difference"]
    assert fd.status == "FAIL" and "kink" in " ".join(fd.reasons)
    # the failing entries are exactly the two exact zeros
    assert {e.index for e in fd.worst_entries} <= {(1,), (4,)}
    kept = check_vjp(RELU, (X,), reference=jax.nn.relu, exclude=lambda x: x == 0)
    assert kept.passed, str(kept)
    assert "2 entries left out by exclude=" in kept.subject
    assert kept["finite_difference"].compared == 3 * (X.size - 2)  # 3 cotangents x the kept entries
    # exclude does not hide a real bug elsewhere
    bad = _with_rule(jax.nn.relu, lambda x, c: (jnp.where(x[0] > 0, 1.001 * c, 0.0),))
    assert not check_vjp(bad, (X,), reference=jax.nn.relu, exclude=lambda x: x == 0).passed


def test_exclude_works_for_large_leaves_compared_along_directions():
    x = jnp.asarray(np.random.default_rng(0).standard_normal(64)).at[::7].set(0.0)
    report = check_vjp(RELU, (x,), reference=jax.nn.relu, exclude=lambda x: x == 0, max_entries=16)
    assert report.passed, str(report)
    assert "random unit directions" in report["finite_difference"].strategy


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_scaled_rule_is_said_to_differ_by_its_constant_factor(dtype):
    with jax.enable_x64(dtype == "float64"):
        half = _with_rule(jnp.tanh, lambda x, c: (0.5 * (1 - jnp.tanh(x[0]) ** 2) * c,))
        report = check_vjp(half, (X.astype(dtype),), reference=jnp.tanh)
        assert not report.passed
        for r in report.failed:
            assert any("the rule is 0.5 x the reference" in why for why in r.reasons), r.reasons
        assert "0.5 x the reference" in str(report)


def test_gradient_clipping_is_said_to_cap_the_magnitude():
    cube = lambda x: x**3  # noqa: E731
    clipped = _with_rule(cube, lambda x, c: (jnp.clip(3 * x[0] ** 2 * c, -1.0, 1.0),))
    report = check_grad(lambda x: jnp.sum(clipped(x)), (X,), reference=lambda x: jnp.sum(cube(x)))
    assert not report.passed
    assert all(any("capped" in why for why in r.reasons) for r in report.failed), str(report)


def test_a_straight_through_estimator_is_said_where_f_is_flat():
    rnd = lambda x: jnp.round(x)  # noqa: E731
    ste = _with_rule(rnd, lambda x, c: (c,))
    report = check_vjp(ste, (X + 0.25,), reference=rnd)
    assert not report.passed
    assert all(any("straight-through" in why for why in r.reasons) for r in report.failed), str(report)


def test_a_stop_gradient_is_said_to_be_zero_where_the_reference_is_not():
    f = lambda x: jnp.sin(x) * x  # noqa: E731
    stopped = _with_rule(
        f, lambda x, c: (jnp.where(x[0] > 1, 0.0, (jnp.cos(x[0]) * x[0] + jnp.sin(x[0])) * c),)
    )
    report = check_vjp(stopped, (X,), reference=f)
    assert not report.passed
    assert all(any("exactly zero" in why for why in r.reasons) for r in report.failed), str(report)


def test_a_failure_of_no_recognisable_shape_gets_no_reason():
    f = lambda x: jnp.sin(x) + x  # noqa: E731
    missing = _with_rule(f, lambda x, c: (jnp.cos(x[0]) * c,))  # the "+ 1" term is missing
    report = check_vjp(missing, (X,), reference=f)
    assert not report.passed
    assert all(r.reasons == () for r in report.results)


def test_the_diagnosis_is_strict():
    g = np.array([0.5, 1.0, -1.5, 2.0])
    r = np.array([1.0, 2.0, -3.0, 4.0])
    ok = np.ones(4, bool)
    assert "0.5 x" in leaf_reasons(Block("x", "entry", g, r, np.zeros(4), ok), 1e-6)[0]
    # one entry off the constant factor: no "constant factor" claim
    g2 = g.copy()
    g2[3] = 2.5
    assert not any(
        "x the reference" in w for w in leaf_reasons(Block("x", "entry", g2, r, np.zeros(4), ok), 1e-6)
    )
    # nothing failing: nothing said
    assert leaf_reasons(Block("x", "entry", r, r, np.zeros(4), ok), 1e-6) == []
    # kinks: the one-sided quotients jump only at the kink
    fwd, bwd = np.array([[1.0], [2.0]]), np.array([[0.0], [2.0 + 1e-9]])
    assert kink_entries(fwd, bwd, np.array([1e-16]), 1e-6)[:, 0].tolist() == [True, False]


@pytest.mark.parametrize(
    "exclude, match",
    [
        ("x == 0", "must be a function"),
        (lambda x: (x == 0).astype(float), "boolean array"),
        (lambda x: jnp.zeros(3, bool), "shape"),
        (lambda x: 1 / 0, "exclude\\(\\*primals\\) failed"),
    ],
)
def test_a_bad_exclude_is_refused_naming_it(exclude, match):
    with pytest.raises(ValueError, match=match):
        check_vjp(RELU, (X,), reference=jax.nn.relu, exclude=exclude)
