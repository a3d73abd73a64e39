"""Gradient descent (formulas §5) and the compiled training step."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import relative_error_np

import jaxnn


# Data and initial params are drawn with NumPy on the host: eager jax.random
# compiles its kernels anew for every shape, which costs more than these tests.
def _toy(m=64):
    """Two Gaussian blobs, linearly separable: (X (2, m), Y (1, m))."""
    rng = np.random.default_rng(0)
    labels = rng.random(m) < 0.5
    centers = np.where(labels, 2.0, -2.0)
    X = np.stack([centers, -centers]) + 0.5 * rng.standard_normal((2, m))
    return jnp.asarray(X, jnp.float32), jnp.asarray(labels[None, :], jnp.float32)


def _init(net, seed):
    """Xavier-scaled W ~ N(0, 2 / (n_{l-1} + n_l)), b = 0: the init_params layout."""
    rng = np.random.default_rng(seed)
    return [
        {
            "W": jnp.asarray(rng.standard_normal((n, n_prev)) * np.sqrt(2 / (n + n_prev)), jnp.float32),
            "b": jnp.zeros((n, 1), jnp.float32),
        }
        for n_prev, n in zip(net.layer_sizes[:-1], net.layer_sizes[1:])
    ]


def test_one_sgd_update_is_exactly_the_seed_formula():
    net = jaxnn.Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    params = _init(net, 1)
    X, Y = _toy(8)
    _, grads = jax.jit(jaxnn.value_and_manual_grad, static_argnums=3)(params, X, Y, net)
    alpha = 0.37
    new = jaxnn.sgd_update(params, grads, alpha)
    for p, g, n in zip(params, grads, new):
        for k in ("W", "b"):
            expected = np.asarray(p[k]) - np.float32(alpha) * np.asarray(g[k])
            np.testing.assert_array_equal(n[k], expected)
    assert jax.tree.structure(new) == jax.tree.structure(params)


@pytest.mark.parametrize("grad", ["manual", "autodiff"])
def test_train_step_drives_the_cost_down_on_a_separable_problem(grad):
    net = jaxnn.Network((2, 4, 1), ("tanh", "sigmoid"), "bce")
    params = _init(net, 2)
    X, Y = _toy()
    step = jaxnn.make_train_step(net, 0.5, grad=grad)
    costs = []
    for _ in range(200):
        params, J = step(params, X, Y)
        costs.append(float(J))
    assert costs[-1] < 0.05 < costs[0]
    assert all(b <= a + 1e-6 for a, b in zip(costs, costs[1:]))  # full-batch GD, small alpha: monotone
    accuracy = np.mean((np.asarray(jaxnn.predict(params, X, net)) > 0.5) == (np.asarray(Y) > 0.5))
    assert float(accuracy) == 1.0


def test_manual_and_autodiff_steps_follow_the_same_trajectory():
    net = jaxnn.Network((2, 5, 5, 1), ("relu", "tanh", "sigmoid"), "bce")
    p1 = p2 = _init(net, 3)
    X, Y = _toy(32)
    s1, s2 = jaxnn.make_train_step(net, 0.1), jaxnn.make_train_step(net, 0.1, grad="autodiff")
    for _ in range(20):
        p1, _ = s1(p1, X, Y)
        p2, _ = s2(p2, X, Y)
    assert relative_error_np(p1, p2) <= 1e-5


def test_donated_step_and_l2():
    net = jaxnn.Network((2, 4, 1), ("relu", "sigmoid"), "bce")
    params = _init(net, 4)
    X, Y = _toy(16)
    step = jaxnn.make_train_step(net, 0.1, l2=0.5, donate=True)
    copy = jax.tree.map(jnp.array, params)
    new, J = step(copy, X, Y)

    @jax.jit
    def expected_step(params):
        _, grads = jaxnn.value_and_manual_grad(params, X, Y, net, l2=0.5)
        return jaxnn.sgd_update(params, grads, 0.1)

    expected = expected_step(params)
    assert relative_error_np(new, expected) <= 1e-6


@pytest.mark.parametrize("lr", [math.nan, math.inf, 0.0, -0.1])
def test_bad_learning_rates(lr):
    net = jaxnn.Network((2, 1), ("sigmoid",), "bce")
    params = _init(net, 0)
    with pytest.raises(ValueError, match="learning_rate = .* must be a finite number > 0"):
        jaxnn.make_train_step(net, lr)
    with pytest.raises(ValueError, match="learning_rate"):
        jaxnn.sgd_update(params, params, lr)


def test_sgd_update_refuses_mismatched_grads_and_accepts_traced_rates():
    net = jaxnn.Network((2, 3, 1), ("relu", "sigmoid"), "bce")
    params = _init(net, 0)
    with pytest.raises(ValueError, match="structure"):
        jaxnn.sgd_update(params, params[:1], 0.1)
    with pytest.raises(ValueError, match=r"\[0\]\['W'\] has shape \(3, 2\)"):
        jaxnn.sgd_update(params, [dict(params[0], W=jnp.ones((2, 3))), params[1]], 0.1)
    with pytest.raises(ValueError, match="scalar"):
        jaxnn.sgd_update(params, params, jnp.ones(2))
    rates = jnp.array([0.1, 0.2])
    out = jax.vmap(lambda a: jaxnn.sgd_update(params, params, a))(rates)
    np.testing.assert_allclose(out[0]["W"][1], params[0]["W"] * 0.8, rtol=1e-6)
    with pytest.raises(ValueError, match="grad = 'numeric'"):
        jaxnn.make_train_step(net, 0.1, grad="numeric")
