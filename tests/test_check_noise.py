"""Noise-aware verdicts of check_gradients: no false alarm where a correct gradient is tiny, sensitivity kept.

Converged models (least squares at its optimum, logistic regression after
many GD steps, a trained (4,8,3) tanh/softmax net), saturated networks
(|Z| ~ 30) and a leaf emptied by the kink exclusion must pass with the
default rtol of conventions §3: the estimated noise bound, printed beside the
error, is what absorbs the rounding. And a derivative scaled by 1 + δ must
still fail for δ = 1e-5 (float32 model) and δ = 1e-9 (float64).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import run_at_xla_defaults

import jaxnn
from jaxnn.check import check_gradients

jax.config.update("jax_numpy_rank_promotion", "raise")

ALL = ("autodiff", "finite_difference", "jvp")


def assert_passes_by_its_noise_floor(report, needs_floor=True):
    assert report.passed, str(report)
    assert "noise bound" in str(report)
    for r in report.results:
        assert r.error <= r.threshold + r.noise
    if needs_floor:  # a purely relative verdict (rtol alone) would cry wolf here
        assert any(r.error > r.threshold for r in report.results), str(report)
    return report


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_least_squares_at_its_optimum(dtype):
    rng = np.random.default_rng(0)
    m = 64
    X = 10 * rng.standard_normal((3, m))
    Y = (np.array([[1.0, -2.0, 0.5]]) @ X + 100 + 0.01 * rng.standard_normal((1, m)))
    A = np.vstack([X, np.ones((1, m))])
    w = np.linalg.lstsq(A.T, Y.ravel(), rcond=None)[0]
    net = jaxnn.Network((3, 1), ("identity",), "mse")
    with jax.enable_x64(dtype == "float64"):
        params = [{"W": jnp.asarray(w[None, :3], dtype), "b": jnp.asarray(w[3:, None], dtype)}]
        report = check_gradients(params, jnp.asarray(X, dtype), jnp.asarray(Y, dtype), net, methods=ALL)
    assert_passes_by_its_noise_floor(report)


def test_logistic_regression_after_many_gd_steps():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((4, 128)).astype(np.float32)
    # noisy labels: a finite optimum, where the gradient tends to 0 and rounding is what is left
    Y = (X[:1] + 0.5 * X[1:2] + 0.7 * rng.standard_normal((1, 128)) > 0).astype(np.float32)
    net = jaxnn.Network((4, 1), ("sigmoid",), "bce")
    params = jaxnn.init_params(jax.random.key(0), net)
    step = jaxnn.make_train_step(net, 2.0)
    for _ in range(1500):
        params, J = step(params, X, Y)
    assert_passes_by_its_noise_floor(check_gradients(params, X, Y, net, methods=ALL))


def test_trained_tanh_softmax_net_at_small_cost():
    rng = np.random.default_rng(2)
    labels = np.arange(48) % 3
    centers = 3 * rng.standard_normal((4, 3))
    X = (centers[:, labels] + 0.3 * rng.standard_normal((4, 48))).astype(np.float32)
    Y = np.eye(3, dtype=np.float32)[:, labels]
    net = jaxnn.Network((4, 8, 3), ("tanh", "softmax"), "cross_entropy")
    params = jaxnn.init_params(jax.random.key(3), net)
    step = jaxnn.make_train_step(net, 0.5)
    for _ in range(6000):
        params, J = step(params, X, Y)
    assert float(J) < 0.01
    report = assert_passes_by_its_noise_floor(check_gradients(params, X, Y, net, methods=ALL))
    assert "noise bound" in str(report)


@pytest.mark.parametrize("out, loss", [("tanh", "mse"), ("softmax", "mse"), ("softmax", "cross_entropy")])
def test_saturated_network(out, loss):
    net = jaxnn.Network((4, 6, 3), ("tanh", out), loss)
    params, X, Y = jaxnn.check.make_problem(net, 16, "float32", seed=4)
    params = [{"W": 30 * p["W"], "b": p["b"]} for p in params]  # |Z| ~ 30: g' ~ e^-60
    report = check_gradients(params, X, Y, net, methods=ALL)
    Z1 = report.coverage[0]
    assert Z1.beyond_4 > 0.5 and max(abs(Z1.z_min), abs(Z1.z_max)) > 20
    assert_passes_by_its_noise_floor(report, needs_floor=(out, loss) == ("tanh", "mse"))


def test_kink_exclusion_removing_most_of_a_leaf(x64):
    net = jaxnn.Network((4, 5, 2), ("relu", "identity"), "mse")
    params, X, Y = jaxnn.check.make_problem(net, 8, "float64", seed=5)
    # every unit of layer 1 has a pre-activation within 1e-7 of the kink on example 0:
    # each perturbation of W^[1] or b^[1] would straddle it
    Z0 = params[0]["W"] @ X[:, :1]
    params[0]["b"] = 1e-7 - Z0
    # targets the network fits up to 1e-9: what the exclusion leaves is below finite-difference noise
    AL, _ = jaxnn.forward(params, X, net)
    Y = AL + 1e-9 * jnp.asarray(np.random.default_rng(6).standard_normal(AL.shape))
    report = check_gradients(params, X, Y, net, methods=ALL)
    fd = report["finite_difference"]
    assert fd.excluded >= 25  # all of b^[1] and W^[1]
    assert [e for name, e, _ in fd.leaf_errors[:2]] == [0.0, 0.0] and fd.status == "pass"
    assert_passes_by_its_noise_floor(report, needs_floor=False)
    assert report.worst_leaf is None


# --- sensitivity: the noise floor does not hide small derivation errors ------------------------------


def scaled_tanh(scale):
    return jaxnn.make_activation(f"tanh_x{scale!r}", jnp.tanh, lambda z: scale * (1 - jnp.tanh(z) ** 2))


@pytest.mark.parametrize("dtype, delta", [("float32", 1e-5), ("float64", 1e-9)])
def test_small_scaling_errors_are_still_caught(dtype, delta):
    with jax.enable_x64(dtype == "float64"):
        net = jaxnn.Network((4, 8, 8, 3), (scaled_tanh(1 + delta), "tanh", "softmax"), "cross_entropy")
        params, X, Y = jaxnn.check.make_problem(net, 16, dtype, seed=0)
        report = check_gradients(params, X, Y, net, methods=ALL)
        assert not report.passed, str(report)
        assert report.worst_layer == 1
        ok = jaxnn.Network(net.layer_sizes, (scaled_tanh(1.0), "tanh", "softmax"), "cross_entropy")
        assert check_gradients(params, X, Y, ok, methods=ALL).passed


README_EXAMPLE = """
import jax, jax.numpy as jnp, jaxnn
bad_tanh = jaxnn.make_activation("bad_tanh_readme", jnp.tanh, lambda Z: 1.001 * (1 - jnp.tanh(Z) ** 2))
net = jaxnn.Network((4, 8, 8, 3), (bad_tanh, "tanh", "softmax"), "cross_entropy")
params = jaxnn.init_params(jax.random.key(0), net)
X = jax.random.normal(jax.random.key(1), (4, 16))
Y = jax.nn.one_hot(jnp.arange(16) % 3, 3).T
report = jaxnn.check_gradients(params, X, Y, net)
RESULT = {"passed": report.passed, "worst_layer": report.worst_layer, "text": str(report),
          "results": [(r.status, [(n, float(e), float(s)) for n, e, s in r.leaf_errors])
                      for r in report.results]}
"""


def test_readme_example_0p1_percent_tanh_bug_caught_at_layer_1():
    # docs/checking.md's example as a user runs it: in a process at XLA's default flags
    # (tests/conftest.py), where jax.random.normal and init_params give the docs' inputs
    report = run_at_xla_defaults(README_EXAMPLE)
    assert not report["passed"] and report["worst_layer"] == 1
    assert {status for status, _ in report["results"]} == {"FAIL"}
    for _, leaf_errors in report["results"]:  # the bug is 1000x the noise floor of the leaves it enters
        leaves = {name: (e, s) for name, e, s in leaf_errors}
        for name in ("W^[1]", "b^[1]"):
            assert leaves[name][0] > 1e3 * leaves[name][1], (name, report["text"])


def test_bfloat16_params():
    net = jaxnn.Network((4, 8, 3), ("tanh", "softmax"), "cross_entropy")
    params, X, Y = jaxnn.check.make_problem(net, 16, "float32", seed=0)
    bf = lambda tree: jax.tree.map(lambda a: a.astype(jnp.bfloat16), tree)  # noqa: E731
    report = check_gradients(bf(params), bf(X), bf(Y), net, methods=ALL)
    assert report.dtype == "bfloat16" and report.passed, str(report)
    bad = jaxnn.make_activation("tanh_5pc", jnp.tanh, lambda z: 1.05 * (1 - jnp.tanh(z) ** 2))
    report = check_gradients(bf(params), bf(X), bf(Y), jaxnn.Network(net.layer_sizes, (bad, "softmax"),
                                                                    "cross_entropy"))
    assert not report.passed and report.worst_layer == 1  # by the float64 finite differences
    assert report["finite_difference"].status == "FAIL"
