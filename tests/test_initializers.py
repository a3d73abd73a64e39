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
    with pytest.raises(ValueError, match="init_params: unknown init 'kaiming'.*he, xavier"):
        jaxnn.init_params(jax.random.key(0), NET, init="kaiming")
    with pytest.raises(ValueError, match="floating point"):
        jaxnn.init_params(jax.random.key(0), NET, dtype=jnp.int32)
    with pytest.raises(ValueError, match="must be a jaxnn.Network"):
        jaxnn.init_params(jax.random.key(0), (3, 2))
    with pytest.raises(ValueError, match="init_ensemble: unknown init 'kaiming'"):
        jaxnn.init_ensemble(jax.random.key(0), NET, 2, init="kaiming")


# --- the numbers are jax.nn.initializers', from a few shared programs (jaxnn/core/initializers.py) ---

def reference_params(key, net, init, dtype):
    """What init_params documents: INITIALIZERS[init] of the l-th of split(key, L), b = 0."""
    keys = jax.random.split(key, net.L)
    return [{"W": jaxnn.INITIALIZERS[init](k, s["W"], dtype), "b": jnp.zeros(s["b"], dtype)}
            for k, s in zip(keys, net.param_shapes())]


def assert_same(got, want):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(np.asarray(g, np.float64), np.asarray(w, np.float64))


# every name on a deep net with odd sizes (each draw rounded up to 256 values), a layer over
# HOST_MAX, and bfloat16; the reference compiles one program per shape (~0.3 s each): few shapes
CASES = [((5, 17, 33, 2), init, jnp.float32) for init in jaxnn.INITIALIZERS] + [
    ((1100, 1000, 1), "xavier", jnp.float32),  # over HOST_MAX: drawn at its size, on the device
    ((5, 17, 33, 2), "he", jnp.bfloat16)]


@pytest.mark.parametrize("sizes, init, dtype", CASES, ids=str)
def test_weights_are_jax_nn_initializers_bit_for_bit(sizes, init, dtype):
    net = jaxnn.Network(sizes, ("relu",) * (len(sizes) - 2) + ("sigmoid",), "bce")
    key = jax.random.key(sum(sizes))
    assert_same(jaxnn.init_params(key, net, init, dtype), reference_params(key, net, init, dtype))


def test_float64_ensemble_and_traced_keys_are_the_same_numbers(x64):
    net = jaxnn.Network((5, 17, 33, 2), ("relu", "tanh", "sigmoid"), "bce")
    key = jax.random.key(3)
    assert_same(jaxnn.init_params(key, net, "he", x64), reference_params(key, net, "he", x64))
    # under jit (a traced key) and for an ensemble: member i is init_params(keys[i])
    traced = jax.jit(lambda k: jaxnn.init_params(k, net))(key)
    assert_same(traced, reference_params(key, net, "he", jnp.float32))
    keys = jax.random.split(jax.random.key(4), 2)
    ensemble = jaxnn.init_ensemble(jax.random.key(4), net, 2)
    for i in range(2):
        member = [{k: v[i] for k, v in p.items()} for p in ensemble]
        assert_same(member, reference_params(keys[i], net, "he", jnp.float32))


def test_networks_of_other_sizes_share_the_compiled_draw():
    # the draw program depends on the layers' lengths rounded up to powers of two (>= 256), so
    # these three networks (every layer <= 256 entries) need one program between them
    from jaxnn.core import initializers

    nets = [jaxnn.Network(s, ("tanh", "sigmoid"), "bce") for s in [(3, 11, 2), (4, 9, 1), (6, 20, 5)]]
    jaxnn.init_params(jax.random.key(0), nets[0], "xavier")
    before = initializers._standard_draw._cache_size()
    for net in nets[1:]:
        jaxnn.init_params(jax.random.key(0), net, "xavier")
    assert initializers._standard_draw._cache_size() == before


def test_the_tests_draw_helper_gives_jax_randoms_numbers():
    # conftest.draw (the test data of many files) relies on the same prefix property
    from conftest import draw

    for shape in [(7,), (3, 37), (13, 300)]:
        key = jax.random.key(sum(shape))
        np.testing.assert_array_equal(draw(jax.random.normal, key, shape), jax.random.normal(key, shape))
        np.testing.assert_array_equal(draw(jax.random.randint, key, shape, minval=0, maxval=5),
                                      jax.random.randint(key, shape, 0, 5))
        np.testing.assert_array_equal(draw(jax.random.bernoulli, key, shape, p=0.5),
                                      jax.random.bernoulli(key, 0.5, shape))
