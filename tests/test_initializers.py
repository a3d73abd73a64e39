"""Initialisation: shapes, dtypes and the documented variances."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn

NET = jaxnn.Network((400, 300, 10), ("relu", "softmax"), "cross_entropy")


@pytest.mark.parametrize("init", tuple(jaxnn.INITIALIZERS))
def test_shapes_and_zero_biases(init):
    params = jaxnn.init_params(jax.random.key(0), NET, init=init)
    for p, shapes in zip(params, NET.param_shapes()):
        assert p["W"].shape == shapes["W"] and p["b"].shape == shapes["b"]
        assert p["W"].dtype == jnp.float32
        np.testing.assert_array_equal(p["b"], 0.0)


@pytest.mark.parametrize(
    "init, variance",
    [
        ("he", lambda n_out, n_in: 2.0 / n_in),
        ("xavier", lambda n_out, n_in: 2.0 / (n_in + n_out)),
        ("glorot", lambda n_out, n_in: 2.0 / (n_in + n_out)),
        ("small_normal", lambda n_out, n_in: 1e-4),
    ],
)
def test_weight_variance_uses_the_seed_layout_fans(init, variance):
    """W^[l] is (n_l, n_{l-1}): fan_in is the LAST axis (a transposed fan would be 10x off here)."""
    W = jaxnn.init_params(jax.random.key(1), NET, init=init)[0]["W"]
    expected = variance(*W.shape)
    assert float(jnp.var(W)) == pytest.approx(expected, rel=0.03)


def test_float64_and_errors(x64):
    params = jaxnn.init_params(jax.random.key(0), NET, dtype=x64)
    assert params[0]["W"].dtype == jnp.float64
    with pytest.raises(ValueError, match="Unknown init 'kaiming'.*he, xavier"):
        jaxnn.init_params(jax.random.key(0), NET, init="kaiming")
    with pytest.raises(ValueError, match="floating point"):
        jaxnn.init_params(jax.random.key(0), NET, dtype=jnp.int32)
    with pytest.raises(ValueError, match="must be a jaxnn.Network"):
        jaxnn.init_params(jax.random.key(0), (3, 2))
