"""Forward pass and cost against an independent NumPy implementation of formulas §1-§3."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import OUTPUT_PAIRINGS

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


HIDDEN4 = ("sigmoid", "tanh", "relu", "leaky_relu")
FORWARD_CASES = [(h, o, loss) for o, loss in OUTPUT_PAIRINGS for h in HIDDEN4]


def _host_params(net, seed, dtype=jnp.float32):
    """Xavier-scaled W and small nonzero b (so b is checked too), drawn with NumPy.

    Eager jax.random / init_params would compile its kernels anew for every shape.
    """
    rng = np.random.default_rng(seed)
    return [
        {
            "W": jnp.asarray(rng.standard_normal((n, n_prev)) * np.sqrt(2 / (n + n_prev)), dtype),
            "b": jnp.asarray(0.1 * rng.standard_normal((n, 1)), dtype),
        }
        for n_prev, n in zip(net.layer_sizes[:-1], net.layer_sizes[1:])
    ]


def _case(hidden, output, loss):
    """(net, params, X, Y), all on the host: no eager op compiled per case."""
    net = jaxnn.Network((4, 6, 5, 3), (hidden, hidden, output), loss)
    params = _host_params(net, 0)
    rng = np.random.default_rng(1)
    X = jnp.asarray(rng.standard_normal((4, 9)), jnp.float32)
    if loss == "cross_entropy":
        Y = np.eye(3)[:, rng.integers(0, 3, 9)]
    elif loss == "bce":
        Y = (rng.random((3, 9)) < 0.5).astype(np.float64)
    else:
        Y = rng.standard_normal((3, 9))
    return net, params, X, jnp.asarray(Y, jnp.float32)


@functools.partial(jax.jit, static_argnums=1)
def _forward_and_cost_all(problems, nets):
    return [(jaxnn.forward(p, X, net), jaxnn.cost(p, X, Y, net)) for (p, X, Y), net in zip(problems, nets)]


@functools.cache
def _compiled_results():
    """Every case's (forward, cost) from ONE compiled program, not two programs per case."""
    cases = [_case(*c) for c in FORWARD_CASES]
    out = _forward_and_cost_all([c[1:] for c in cases], tuple(c[0] for c in cases))
    return dict(zip(FORWARD_CASES, jax.device_get(out)))


@pytest.mark.parametrize("hidden", HIDDEN4)
@pytest.mark.parametrize("output, loss", OUTPUT_PAIRINGS)
def test_forward_and_cost_match_numpy(hidden, output, loss):
    # eagerly (op by op; every case has the same shapes, so the primitives are compiled
    # once) and compiled under jax.jit: the same numbers, against NumPy
    net, params, X, Y = _case(hidden, output, loss)
    expected = numpy_forward(params, X, net.activations)
    J_expected = NP_LOSS[loss](expected, np.asarray(Y, np.float64))
    eager = (jaxnn.forward(params, X, net), jaxnn.cost(params, X, Y, net))
    for (AL, cache), J in (eager, _compiled_results()[hidden, output, loss]):
        np.testing.assert_allclose(AL, expected, rtol=2e-5, atol=1e-6)
        assert J.shape == ()
        np.testing.assert_allclose(J, J_expected, rtol=2e-5)
        # the cache holds the quantities layer by layer
        assert [set(c) for c in cache] == [{"A_prev", "Z", "A"}] * 3
        np.testing.assert_array_equal(cache[0]["A_prev"], X)
        np.testing.assert_allclose(cache[1]["A_prev"], cache[0]["A"])
        np.testing.assert_allclose(
            cache[2]["Z"], np.asarray(params[2]["W"]) @ cache[1]["A"] + np.asarray(params[2]["b"]), rtol=1e-6
        )


def test_l2_term_in_the_cost(x64):
    net = jaxnn.Network((3, 4, 1), ("tanh", "identity"), "mse")
    params = _host_params(net, 0, x64)
    rng = np.random.default_rng(1)
    X = jnp.asarray(rng.standard_normal((3, 5)), x64)
    Y = jnp.asarray(rng.standard_normal((1, 5)), x64)
    lam = 0.7
    penalty = lam / (2 * 5) * sum(float(jnp.sum(p["W"] ** 2)) for p in params)
    assert float(jaxnn.cost(params, X, Y, net, l2=lam)) == pytest.approx(
        float(jaxnn.cost(params, X, Y, net)) + penalty, rel=1e-14
    )
    with pytest.raises(ValueError, match="l2 = -1.*>= 0"):
        jaxnn.cost(params, X, Y, net, l2=-1.0)


def test_inverted_dropout_masks_hidden_layers_only():
    net = jaxnn.Network((50, 400, 400, 3), ("relu", "relu", "softmax"), "cross_entropy")
    params = _host_params(net, 0)
    X = jnp.asarray(np.random.default_rng(1).standard_normal((50, 64)), jnp.float32)
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
