"""Forward pass and cost against an independent NumPy implementation of seed §1-§3."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import OUTPUT_PAIRINGS, make_targets

import jaxnn

NP_ACT = {
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z >= 0, z, 0.01 * z),
    "identity": lambda z: z,
    "softmax": lambda z: np.exp(z - z.max(0)) / np.exp(z - z.max(0)).sum(0),
}
NP_LOSS = {
    "bce": lambda A, Y: -np.sum(Y * np.log(A) + (1 - Y) * np.log(1 - A)) / Y.shape[1],
    "mse": lambda A, Y: np.sum((Y - A) ** 2) / Y.shape[1],
    "cross_entropy": lambda A, Y: -np.sum(Y * np.log(A)) / Y.shape[1],
}


def numpy_forward(params, X, activations):
    A = np.asarray(X, np.float64)
    for p, g in zip(params, activations):
        A = NP_ACT[g](np.asarray(p["W"], np.float64) @ A + np.asarray(p["b"], np.float64))
    return A


@pytest.mark.parametrize("hidden", ["sigmoid", "tanh", "relu", "leaky_relu"])
@pytest.mark.parametrize("output, loss", OUTPUT_PAIRINGS)
def test_forward_and_cost_match_numpy(hidden, output, loss, jit):
    net = jaxnn.Network((4, 6, 5, 3), (hidden, hidden, output), loss)
    params = jaxnn.init_params(jax.random.key(0), net, init="xavier")
    X = jax.random.normal(jax.random.key(1), (4, 9))
    Y = make_targets(jax.random.key(2), net, 9)
    AL, cache = jit(jaxnn.forward)(params, X, net)
    expected = numpy_forward(params, X, net.activations)
    np.testing.assert_allclose(AL, expected, rtol=2e-5, atol=1e-6)
    J = jit(jaxnn.cost)(params, X, Y, net)
    assert J.shape == ()
    np.testing.assert_allclose(J, NP_LOSS[loss](expected, np.asarray(Y, np.float64)), rtol=2e-5)
    # the cache holds the seed's quantities layer by layer
    assert [set(c) for c in cache] == [{"A_prev", "Z", "A"}] * 3
    np.testing.assert_array_equal(cache[0]["A_prev"], X)
    np.testing.assert_allclose(cache[1]["A_prev"], cache[0]["A"])
    np.testing.assert_allclose(cache[2]["Z"], params[2]["W"] @ cache[1]["A"] + params[2]["b"], rtol=1e-6)


def test_l2_term_in_the_cost(x64):
    net = jaxnn.Network((3, 4, 1), ("tanh", "identity"), "mse")
    params = jaxnn.init_params(jax.random.key(0), net, dtype=x64)
    X = jax.random.normal(jax.random.key(1), (3, 5), x64)
    Y = jax.random.normal(jax.random.key(2), (1, 5), x64)
    lam = 0.7
    penalty = lam / (2 * 5) * sum(float(jnp.sum(p["W"] ** 2)) for p in params)
    assert float(jaxnn.cost(params, X, Y, net, l2=lam)) == pytest.approx(
        float(jaxnn.cost(params, X, Y, net)) + penalty, rel=1e-14
    )
    with pytest.raises(ValueError, match="l2 = -1.*>= 0"):
        jaxnn.cost(params, X, Y, net, l2=-1.0)


def test_inverted_dropout_masks_hidden_layers_only():
    net = jaxnn.Network((50, 400, 400, 3), ("relu", "relu", "softmax"), "cross_entropy")
    params = jaxnn.init_params(jax.random.key(0), net)
    X = jax.random.normal(jax.random.key(1), (50, 64))
    AL, cache = jaxnn.forward(params, X, net, key=jax.random.key(2), keep_prob=0.8)
    assert "D" in cache[0] and "D" in cache[1] and "D" not in cache[2]
    D = np.asarray(cache[0]["D"])
    assert set(np.unique(D)) == {0.0, np.float32(1 / 0.8)}
    assert float(np.mean(D > 0)) == pytest.approx(0.8, abs=0.01)
    np.testing.assert_allclose(cache[1]["A_prev"], cache[0]["A"] * cache[0]["D"])
    # the same key gives the same masks; evaluation (no key) has none
    _, again = jaxnn.forward(params, X, net, key=jax.random.key(2), keep_prob=0.8)
    np.testing.assert_array_equal(again[0]["D"], cache[0]["D"])
    AL_eval, eval_cache = jaxnn.forward(params, X, net)
    assert all("D" not in c for c in eval_cache)
    np.testing.assert_allclose(jnp.sum(AL, axis=0), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="needs a PRNG key"):
        jaxnn.forward(params, X, net, keep_prob=0.5)
    with pytest.raises(ValueError, match=r"keep_prob = 1.5 must be in \(0, 1\]"):
        jaxnn.forward(params, X, net, key=jax.random.key(0), keep_prob=1.5)
    del AL_eval
