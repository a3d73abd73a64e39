"""jaxnn.check verdicts (conventions §3): a verdict per leaf, bounds a bug cannot inflate, margin.

* A 0.1% bug in a leaf whose gradient is 1e-3 of another leaf's is invisible
  in the normwise error over everything; the verdict per leaf catches it.
* The noise bound of each entry comes from f's own evaluations, the reference
  and the rounding of the rule's output magnitude, never from the rule under
  test: a bug confined to one branch of a ``jnp.where`` (the float32 recomputation
  takes another branch) cannot widen it.
* Correct rules where the gradient is small next to its terms (converged
  softmax cross-entropy, saturated tanh, layer norm at x ~ 1e3) pass with
  error / bound <= 0.5, not on a razor edge.
Everything runs eagerly (``jit=False``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from jaxnn.check import check_activation, check_grad, check_gradients, check_vjp

jax.config.update("jax_numpy_rank_promotion", "raise")

ALL = ("reference", "finite_difference", "jvp")


# --- a verdict per leaf ----------------------------------------------------------------------------


def two_scales(w, x):
    # d/dw ~ 1, d/dx ~ 1e-3: x's leaf is 1e-3 of w's in norm
    return jnp.sum(jnp.tanh(w)) + 1e-3 * jnp.sum(jnp.sin(x))


def two_scales_grad(scale_x):
    def grad(w, x):
        return 1 - jnp.tanh(w) ** 2, scale_x * 1e-3 * jnp.cos(x)

    return grad


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_small_leaf_bug_caught_by_its_own_verdict(dtype):
    with jax.enable_x64(dtype == jnp.float64):
        rng = np.random.default_rng(1)
        primals = (jnp.asarray(rng.standard_normal(8), dtype), jnp.asarray(rng.standard_normal(8), dtype))
        ok = check_grad(two_scales, primals, grad=two_scales_grad(1.0), reference=two_scales, methods=ALL,
                        jit=False)
        bad = check_grad(two_scales, primals, grad=two_scales_grad(1.001), reference=two_scales, methods=ALL,
                         jit=False)
    assert ok.passed, str(ok)
    assert not bad.passed, str(bad)
    for r in bad.results:
        assert r.status == "FAIL" and r.failed_leaves == ("primals[1]",), (r.method, str(bad))
        assert r.worst_leaf == "primals[1]"
        (_, e_leaf, n_leaf), = [t for t in r.leaf_errors if t[0] == "primals[1]"]
        assert e_leaf > 1e-4 and e_leaf > 10 * (r.threshold + n_leaf)
    assert bad.worst_leaf == "primals[1]"
    # the normwise error over both leaves alone would have passed (for at least one method)
    assert any(r.error <= r.threshold + r.noise for r in bad.results), str(bad)
    assert "primals[1]" in str(bad)


# --- bounds a bug cannot inflate ---------------------------------------------------------------------


def log_ndtr_prime(scale_low=1.0):
    """d/dx log Φ(x) = φ(x)/Φ(x) with two branches, cut where jax's log_ndtr cuts: the cut depends on
    the dtype (x < -5 in float64, x < -10 in float32), so a float32 recomputation of this rule takes
    the other branch on (-10, -5); ``scale_low`` plants a bug confined to the float64 low branch."""

    def prime(x):
        cut = -5.0 if x.dtype == jnp.float64 else -10.0
        direct = jax.scipy.stats.norm.pdf(x) / jax.scipy.special.ndtr(x)
        via_log = jnp.exp(-0.5 * x**2 - 0.5 * jnp.log(2 * jnp.pi) - jax.scipy.special.log_ndtr(x))
        return jnp.where(x < cut, scale_low * via_log, direct)

    return prime


def log_ndtr_report(scale_low):
    prime = log_ndtr_prime(scale_low)
    with jax.enable_x64(True):
        x = jnp.linspace(-9.0, 3.0, 25, dtype=jnp.float64)
        return check_vjp(
            jax.scipy.special.log_ndtr,
            (x,),
            vjp=lambda p, c: (c * prime(p[0]),),
            reference=jax.scipy.special.log_ndtr,
            methods=ALL,
            jit=False,
        )


def test_branch_confined_bug_caught_and_bound_not_inflated():
    ok, bad = log_ndtr_report(1.0), log_ndtr_report(1 + 1e-6)
    assert ok.passed, str(ok)
    assert not bad.passed, str(bad)
    assert bad["reference"].status == "FAIL" and bad["jvp"].status == "FAIL", str(bad)
    for r_ok, r_bad in zip(ok.results, bad.results):
        assert r_bad.noise <= 10 * r_ok.noise, (r_bad.method, r_bad.noise, r_ok.noise)
        # caught at the stated float64 sensitivity: the bug is far above what the bound allows
        if r_bad.method != "finite_difference":
            assert r_bad.error > 100 * (r_bad.threshold + r_bad.noise), str(bad)


def branchy_softplus(scale_high=1.0):
    # softplus' = sigmoid, computed as exp(z)/(1+exp(z)) below a dtype-dependent cut, 1/(1+exp(-z)) above
    def prime(z):
        cut = 2.0 if z.dtype == jnp.float64 else 6.0
        return jnp.where(z > cut, scale_high / (1 + jnp.exp(-z)), jnp.exp(z) / (1 + jnp.exp(z)))

    return jaxnn.make_activation(f"softplus_branch_{scale_high!r}", jax.nn.softplus, prime)


def test_branch_confined_bug_in_an_activation_derivative():
    grid = jnp.asarray(np.linspace(-6.0, 6.0, 49)[None, :])
    methods = ("autodiff", "finite_difference", "jvp")
    ok = check_activation(branchy_softplus(1.0), Z=grid, methods=methods)
    bad = check_activation(branchy_softplus(1 + 1e-6), Z=grid, methods=methods)
    assert ok.passed, str(ok)
    assert not bad.passed, str(bad)
    status = {r.method: r.status for r in bad.results}
    assert status["autodiff"] == "FAIL" and status["jvp"] == "FAIL", str(bad)
    for r_ok, r_bad in zip(ok.results, bad.results):
        assert r_bad.noise <= 10 * r_ok.noise, (r_bad.method, r_bad.noise, r_ok.noise)


# --- margin: correct rules where the gradient is small next to its terms --------------------------------

RNG = np.random.default_rng(0)


def assert_margin(report, at_most=0.5):
    """Passed, with error <= at_most x (threshold + noise) for every method and every leaf."""
    assert report.passed, str(report)
    for r in report.results:
        assert r.error <= at_most * (r.threshold + r.noise), (r.method, str(report))
        for name, e, s in r.leaf_errors:
            assert e <= at_most * (r.threshold + s), (r.method, name, str(report))


def test_converged_softmax_cross_entropy_backward_has_margin():
    n, m = 10, 32
    Y = np.eye(n)[:, RNG.integers(0, n, m)]
    # p(target) = 1 - 1e-6: logit gap log((n - 1) / 1e-6)
    Z = jnp.asarray(0.01 * RNG.standard_normal((n, m)) + np.log((n - 1) / 1e-6) * Y, jnp.float32)
    Yj = jnp.asarray(Y, jnp.float32)
    p_target = jnp.sum(jax.nn.softmax(Z, axis=0) * Yj, axis=0)
    assert float(jnp.min(p_target)) > 1 - 2e-6

    def ce(z):
        return -jnp.mean(jnp.sum(Yj * jax.nn.log_softmax(z, axis=0), axis=0))

    def ce_vjp(p, c):
        return (c * (jax.nn.softmax(p[0], axis=0) - Yj) / p[0].shape[1],)

    assert_margin(check_vjp(ce, (Z,), vjp=ce_vjp, reference=ce, methods=ALL, jit=False))
    # the same as a network: one softmax layer whose logits are W x, p(target) = 1 - 1e-6
    net = jaxnn.Network((n, n), ("softmax",), "cross_entropy")
    labels = np.arange(16) % n
    X = jnp.asarray(np.eye(n)[:, labels] + 0.01 * RNG.standard_normal((n, 16)), jnp.float32)
    params = [{"W": jnp.asarray(np.log((n - 1) / 1e-6) * np.eye(n), jnp.float32), "b": jnp.zeros((n, 1))}]
    assert_margin(check_gradients(params, X, jnp.asarray(np.eye(n)[:, labels], jnp.float32), net,
                                  methods=("autodiff", "finite_difference", "jvp")))


def test_saturated_tanh_has_margin():
    x = jnp.asarray(RNG.choice([-1, 1], 64) * RNG.uniform(4, 9, 64), jnp.float32)
    report = check_vjp(jnp.tanh, (x,), vjp=lambda p, c: (c * (1 - jnp.tanh(p[0]) ** 2),),
                       reference=lambda x: jnp.tanh(x), methods=ALL, jit=False)
    assert_margin(report)


def layer_norm(x, gamma, beta):
    mu = x.mean(-1, keepdims=True)
    s = jnp.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5)
    return gamma * (x - mu) / s + beta


def layer_norm_vjp(primals, c):
    x, gamma, _ = primals
    mu = x.mean(-1, keepdims=True)
    s = jnp.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5)
    xh, gh = (x - mu) / s, c * gamma
    dx = (gh - gh.mean(-1, keepdims=True) - xh * (gh * xh).mean(-1, keepdims=True)) / s
    return dx, (c * xh).sum(0, keepdims=True), c.sum(0, keepdims=True)


@pytest.mark.parametrize("offset", [True, False])
def test_layer_norm_at_1e3_has_margin(offset):
    x = 1e3 + RNG.standard_normal((4, 6)) if offset else 1e3 * RNG.standard_normal((4, 6))
    gamma, beta = RNG.standard_normal((1, 6)), RNG.standard_normal((1, 6))
    primals = tuple(jnp.asarray(a, jnp.float32) for a in (x, gamma, beta))
    report = check_vjp(layer_norm, primals, vjp=layer_norm_vjp, reference=layer_norm, methods=ALL, jit=False)
    assert_margin(report)


def saturated_softmax_mse(scale, seed, m=4):
    rng = np.random.default_rng(seed)
    net = jaxnn.Network((4, 8, 3), ("tanh", "softmax"), "mse")
    W1, W2 = scale * rng.standard_normal((8, 4)), scale * rng.standard_normal((3, 8))
    params = [
        {"W": jnp.asarray(W1, jnp.float32), "b": jnp.zeros((8, 1), jnp.float32)},
        {"W": jnp.asarray(W2, jnp.float32), "b": jnp.zeros((3, 1), jnp.float32)},
    ]
    X = jnp.asarray(rng.standard_normal((4, m)), jnp.float32)
    AL, _ = jaxnn.forward(params, X, net)
    return net, params, X, jax.nn.one_hot(jnp.argmax(AL, axis=0), 3).T


@pytest.mark.parametrize("scale, seed", [(20, 18), (30, 6), (30, 23)])
def test_fully_saturated_float32_network_no_false_alarm(scale, seed):
    net, params, X, Y = saturated_softmax_mse(scale, seed)
    grads = jax.grad(jaxnn.cost)(params, X, Y, net)
    # every float32 gradient is exactly 0
    assert all(float(jnp.max(jnp.abs(g))) == 0.0 for g in jax.tree.leaves(grads))
    report = check_gradients(params, X, Y, net, methods=("autodiff", "finite_difference", "jvp"))
    assert report.passed, str(report)


@pytest.mark.parametrize("sizes, scale, seed", [((4, 8, 3), 30, 3), ((2, 4, 2), 30, 2), ((4, 8, 3), 20, 3)])
def test_saturated_float32_softmax_mse_networks_no_false_alarm(sizes, scale, seed):
    # softmax saturated in float32; float64 finite differences and jvp see gradients of 1e-11 whose
    # float64 rounding (1 - p with p within u of 1) the float32 recomputation cannot reveal
    net = jaxnn.Network(sizes, ("tanh", "softmax"), "mse")
    params, X, Y = jaxnn.check.make_problem(net, 8, "float32", seed=seed)
    params = [{"W": scale * p["W"], "b": p["b"]} for p in params]
    report = check_gradients(params, X, Y, net, methods=("autodiff", "finite_difference", "jvp"))
    assert report.passed, str(report)
