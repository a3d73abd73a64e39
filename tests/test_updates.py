"""Gradient descent (seed §5) and the compiled training step."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn


def _toy(m=64):
    """Two Gaussian blobs, linearly separable: (X (2, m), Y (1, m))."""
    k1, k2 = jax.random.split(jax.random.key(0))
    labels = jax.random.bernoulli(k1, 0.5, (m,))
    centers = jnp.where(labels, 2.0, -2.0)
    X = jnp.stack([centers, -centers]) + 0.5 * jax.random.normal(k2, (2, m))
    return X, labels[None, :].astype(jnp.float32)


def test_one_sgd_update_is_exactly_the_seed_formula():
    net = jaxnn.Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    params = jaxnn.init_params(jax.random.key(1), net)
    X, Y = _toy(8)
    _, grads = jaxnn.value_and_manual_grad(params, X, Y, net)
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
    params = jaxnn.init_params(jax.random.key(2), net, init="xavier")
    X, Y = _toy()
    step = jaxnn.make_train_step(net, 0.5, grad=grad)
    costs = []
    for _ in range(200):
        params, J = step(params, X, Y)
        costs.append(float(J))
    assert costs[-1] < 0.05 < costs[0]
    assert all(b <= a + 1e-6 for a, b in zip(costs, costs[1:]))  # full-batch GD, small alpha: monotone
    accuracy = jnp.mean((jaxnn.predict(params, X, net) > 0.5) == (Y > 0.5))
    assert float(accuracy) == 1.0


def test_manual_and_autodiff_steps_follow_the_same_trajectory():
    net = jaxnn.Network((2, 5, 5, 1), ("relu", "tanh", "sigmoid"), "bce")
    p1 = p2 = jaxnn.init_params(jax.random.key(3), net)
    X, Y = _toy(32)
    s1, s2 = jaxnn.make_train_step(net, 0.1), jaxnn.make_train_step(net, 0.1, grad="autodiff")
    for _ in range(20):
        p1, _ = s1(p1, X, Y)
        p2, _ = s2(p2, X, Y)
    assert float(jaxnn.relative_error(p1, p2)) <= 1e-5


def test_donated_step_and_l2():
    net = jaxnn.Network((2, 4, 1), ("relu", "sigmoid"), "bce")
    params = jaxnn.init_params(jax.random.key(4), net)
    X, Y = _toy(16)
    step = jaxnn.make_train_step(net, 0.1, l2=0.5, donate=True)
    copy = jax.tree.map(jnp.array, params)
    new, J = step(copy, X, Y)
    _, grads = jaxnn.value_and_manual_grad(params, X, Y, net, l2=0.5)
    expected = jaxnn.sgd_update(params, grads, 0.1)
    assert float(jaxnn.relative_error(new, expected)) <= 1e-6


@pytest.mark.parametrize("lr", [math.nan, math.inf, 0.0, -0.1])
def test_bad_learning_rates(lr):
    net = jaxnn.Network((2, 1), ("sigmoid",), "bce")
    params = jaxnn.init_params(jax.random.key(0), net)
    with pytest.raises(ValueError, match="learning_rate = .* must be a finite number > 0"):
        jaxnn.make_train_step(net, lr)
    with pytest.raises(ValueError, match="learning_rate"):
        jaxnn.sgd_update(params, params, lr)


def test_sgd_update_refuses_mismatched_grads_and_accepts_traced_rates():
    net = jaxnn.Network((2, 3, 1), ("relu", "sigmoid"), "bce")
    params = jaxnn.init_params(jax.random.key(0), net)
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
