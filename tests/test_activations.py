"""Every hand-written activation derivative against jax.vjp of its forward (formulas §2, §4)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import relative_error_np

import jaxnn
from jaxnn import activations as A

NAMES = tuple(jaxnn.ACTIVATIONS)


@functools.partial(jax.jit, static_argnums=0)
def _vjp_reference(act, Z, dA):
    # compiled: one program per activation and shape, not one per primitive
    _, vjp = jax.vjp(act.forward, Z)
    return vjp(dA)[0]


def _inputs(seed, dtype, shape=(5, 7)):
    """(Z, dA), drawn with NumPy (eager jax.random would compile per shape and dtype)."""
    rng = np.random.default_rng(seed)
    # Mix ordinary values with saturated ones (|z| up to 30).
    Z = rng.standard_normal(shape) * np.array([[0.5], [1.0], [3.0], [10.0], [30.0]])
    return jnp.asarray(Z, dtype), jnp.asarray(rng.standard_normal(shape), dtype)


@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_vjp_float32(name, jit):
    act = jaxnn.ACTIVATIONS[name]
    Z, dA = _inputs(0, jnp.float32)
    manual = jit(lambda dA, Z: act.backward(dA, Z, act.forward(Z)))(dA, Z)
    reference = _vjp_reference(act, Z, dA)
    assert manual.shape == Z.shape and manual.dtype == Z.dtype
    assert relative_error_np(manual, reference) <= 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_vjp_float64(name, x64):
    act = jaxnn.ACTIVATIONS[name]
    Z, dA = _inputs(1, x64)
    manual = act.backward(dA, Z, act.forward(Z))
    reference = _vjp_reference(act, Z, dA)
    assert manual.dtype == jnp.float64
    assert relative_error_np(manual, reference) <= 1e-13


@pytest.mark.parametrize("name", ["relu", "leaky_relu"])
def test_kink_convention_matches_jax(name):
    """At Z = 0 the derivative follows jax.nn's convention (ReLU: 0, leaky ReLU: 1)."""
    act = jaxnn.ACTIVATIONS[name]
    Z = jnp.zeros((2, 3))
    dA = jnp.ones((2, 3))
    np.testing.assert_array_equal(act.backward(dA, Z, act.forward(Z)), _vjp_reference(act, Z, dA))
    assert act.kinks == (0.0,)


def test_elementwise_derivative_values(x64):
    """Closed forms of formulas §2 at a few points, checked against exact numbers."""
    Z = jnp.array([[-2.0, 0.0, 3.0]], x64)
    one = jnp.ones_like(Z)
    s = 1 / (1 + np.exp(-np.array([-2.0, 0.0, 3.0])))
    np.testing.assert_allclose(A.sigmoid_backward(one, Z, A.sigmoid(Z))[0], s * (1 - s), rtol=1e-13)
    t = np.tanh([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(A.tanh_backward(one, Z, A.tanh(Z))[0], 1 - t**2, rtol=1e-13)
    np.testing.assert_array_equal(A.relu_backward(one, Z, A.relu(Z))[0], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(A.leaky_relu_backward(one, Z, None)[0], [0.01, 1.0, 1.0])
    np.testing.assert_array_equal(A.identity_backward(one, Z, Z), one)


def test_softmax_is_columnwise_and_not_elementwise():
    Z = jnp.array([[1.0, 5.0], [2.0, -1.0], [3.0, 0.0]])
    S = A.softmax(Z)
    np.testing.assert_allclose(jnp.sum(S, axis=0), [1.0, 1.0], rtol=1e-6)
    # The elementwise formula dA * s(1 - s) is NOT the softmax derivative.
    dA = jnp.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    wrong = dA * S * (1 - S)
    right = A.softmax_backward(dA, Z, S)
    assert float(jnp.max(jnp.abs(wrong - right))) > 1e-2
    np.testing.assert_allclose(right, _vjp_reference(A.SOFTMAX, Z, dA), rtol=1e-5, atol=1e-7)
    assert not A.SOFTMAX.elementwise


@pytest.mark.parametrize("name", NAMES)
def test_saturated_inputs_stay_finite(name):
    act = jaxnn.ACTIVATIONS[name]
    Z = jnp.array([[-100.0, -30.0, 0.0, 30.0, 100.0]] * 2, jnp.float32)
    out = act.forward(Z)
    dZ = act.backward(jnp.ones_like(Z), Z, out)
    assert bool(jnp.all(jnp.isfinite(out))) and bool(jnp.all(jnp.isfinite(dZ)))


def test_make_activation_builds_a_usable_activation():
    swish = jaxnn.make_activation(
        "swish",
        lambda z: z * jax.nn.sigmoid(z),
        lambda z: jax.nn.sigmoid(z) * (1 + z * (1 - jax.nn.sigmoid(z))),
    )
    Z, dA = _inputs(2, jnp.float32)
    manual = swish.backward(dA, Z, swish.forward(Z))
    assert relative_error_np(manual, _vjp_reference(swish, Z, dA)) <= 1e-6
    net = jaxnn.Network((3, 4, 1), (swish, "identity"), "mse")
    assert net.layer_activations[0] is swish
    hash(net)


def test_get_activation_errors_list_valid_names():
    with pytest.raises(ValueError, match="Unknown activation 'gelu'.*sigmoid, tanh, relu"):
        jaxnn.get_activation("gelu")
    with pytest.raises(ValueError, match="built-in"):
        jaxnn.make_activation("relu", jnp.abs, jnp.sign)
    with pytest.raises(ValueError, match="callables"):
        jaxnn.make_activation("mine", jnp.abs, 3)
