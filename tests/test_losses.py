"""Every loss's hand-written dL/dA against jax.grad; fused outputs against the general path (formulas §3)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import relative_error_np

import jaxnn
from jaxnn import losses

N_L, M = 4, 6


def _case(name, seed, dtype):
    """(AL, Y) in the domain where the loss is meaningful.

    Drawn with NumPy: eager jax.random would compile its kernels for every shape and dtype.
    """
    rng = np.random.default_rng(seed)
    Z = 2 * rng.standard_normal((N_L, M))
    if name == "bce":
        AL, Y = 1 / (1 + np.exp(-Z)), (rng.random((N_L, M)) < 0.5).astype(np.float64)
    elif name == "cross_entropy":
        AL, Y = np.exp(Z) / np.exp(Z).sum(axis=0), np.eye(N_L)[:, rng.integers(0, N_L, M)]
    else:
        AL, Y = Z, rng.standard_normal((N_L, M))
    return jnp.asarray(AL, dtype), jnp.asarray(Y, dtype)


@functools.partial(jax.jit, static_argnums=0)
def _grad_reference(loss, AL, Y):
    # Summing per-example losses makes d(sum)/dAL[:, i] = d(loss_i)/dAL[:, i]: no 1/m.
    # Compiled: one program instead of a dozen eagerly compiled primitives.
    return jax.grad(lambda A: jnp.sum(loss.forward(A, Y)))(AL)


@pytest.mark.parametrize("name", tuple(jaxnn.LOSSES))
def test_backward_matches_grad_of_per_example_loss(name, x64):
    loss = jaxnn.LOSSES[name]
    AL, Y = _case(name, 0, x64)
    reference = _grad_reference(loss, AL, Y)
    manual = loss.backward(AL, Y)
    assert manual.shape == (N_L, M)
    assert relative_error_np(manual, reference) <= 1e-13


@pytest.mark.parametrize("name", tuple(jaxnn.LOSSES))
def test_backward_matches_grad_float32(name, jit):
    loss = jaxnn.LOSSES[name]
    AL, Y = _case(name, 1, jnp.float32)
    reference = _grad_reference(loss, AL, Y)
    assert relative_error_np(jit(loss.backward)(AL, Y), reference) <= 1e-6


def test_loss_values_against_numpy():
    """formulas §3, recomputed independently in NumPy float64."""
    rng = np.random.default_rng(0)
    A = rng.uniform(0.05, 0.95, (3, 5))
    Y = rng.integers(0, 2, (3, 5)).astype(float)
    np.testing.assert_allclose(
        losses.bce(jnp.asarray(A), jnp.asarray(Y)),
        -np.sum(Y * np.log(A) + (1 - Y) * np.log(1 - A), axis=0),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        losses.mse(jnp.asarray(A), jnp.asarray(Y)), np.sum((Y - A) ** 2, axis=0), rtol=1e-5
    )
    P = A / A.sum(axis=0)
    Yc = np.eye(3)[:, [0, 1, 2, 0, 1]]
    np.testing.assert_allclose(
        losses.cross_entropy(jnp.asarray(P), jnp.asarray(Yc)), -np.sum(Yc * np.log(P), axis=0), rtol=1e-5
    )


@pytest.mark.parametrize("pair", [("sigmoid", "bce"), ("softmax", "cross_entropy")])
def test_fused_output_agrees_with_general_path(pair, x64):
    act_name, loss_name = pair
    net = jaxnn.Network((2, N_L), (act_name,), loss_name)
    Z = jnp.asarray(3 * np.random.default_rng(2).standard_normal((N_L, M)), x64)
    _, Y = _case(loss_name, 3, x64)
    AL = net.layer_activations[0].forward(Z)
    fused = jaxnn.output_delta(Z, AL, Y, net)
    general = jaxnn.output_delta(Z, AL, Y, net, fused=False)
    np.testing.assert_allclose(fused, AL - Y, rtol=1e-14)
    assert relative_error_np(fused, general) <= 1e-12
    # and the from-logits cost equals the direct formula where the latter is finite
    pair_fns = jaxnn.FUSED[pair]
    np.testing.assert_allclose(pair_fns.from_logits(Z, Y), net.loss_fn.forward(AL, Y), rtol=1e-12)


def test_soft_labels_use_the_exact_softmax_ce_gradient(x64):
    """Columns of Y that do not sum to 1: dZ = A Σy - Y is still jax.grad's answer."""
    rng = np.random.default_rng(4)
    Z = jnp.asarray(rng.standard_normal((3, 4)), x64)
    Y = jnp.asarray(rng.random((3, 4)), x64)
    reference = jax.grad(lambda Z: jnp.sum(losses.cross_entropy_from_logits(Z, Y)))(Z)
    manual = losses.softmax_cross_entropy_dZ(Z, jax.nn.softmax(Z, axis=0), Y)
    assert relative_error_np(manual, reference) <= 1e-13


@pytest.mark.parametrize("pair", [("sigmoid", "bce"), ("softmax", "cross_entropy")])
def test_fused_paths_finite_at_saturation_float32(pair):
    act_name, loss_name = pair
    Z = jnp.array([[-100.0, 100.0, 50.0, -50.0], [100.0, -100.0, 0.0, 20.0]], jnp.float32)
    Y = jnp.array([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0]], jnp.float32)
    fns = jaxnn.FUSED[pair]
    values = fns.from_logits(Z, Y)
    grad = jax.grad(lambda Z: jnp.sum(fns.from_logits(Z, Y)))(Z)
    assert bool(jnp.all(jnp.isfinite(values))) and bool(jnp.all(jnp.isfinite(grad)))
    # two confidently wrong logits of ±100 cost about 200 (not inf, not a clipped log(eps))
    assert float(values[0]) == pytest.approx(200.0, rel=1e-6)


def test_make_loss_and_errors():
    huber = jaxnn.make_loss(
        "huber",
        lambda A, Y: jnp.sum(jnp.where(jnp.abs(A - Y) < 1, 0.5 * (A - Y) ** 2, jnp.abs(A - Y) - 0.5), axis=0),
        lambda A, Y: jnp.clip(A - Y, -1.0, 1.0),
    )
    AL, Y = _case("mse", 6, jnp.float32)
    reference = jax.grad(lambda A: jnp.sum(huber.forward(A, Y)))(AL)
    assert relative_error_np(huber.backward(AL, Y), reference) <= 1e-6
    assert jaxnn.Network((2, 1), ("identity",), huber).loss_fn is huber
    with pytest.raises(ValueError, match="Unknown loss 'hinge'.*bce, mse, cross_entropy"):
        jaxnn.get_loss("hinge")
    with pytest.raises(ValueError, match="built-in"):
        jaxnn.make_loss("mse", losses.mse, losses.mse_backward)
