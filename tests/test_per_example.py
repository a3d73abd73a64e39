"""per_example_grads / per_example_grad_norms against jax.vmap(jax.grad(...)) (formulas §4)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import relative_error_np

import jaxnn
from jaxnn.check import make_problem
from jaxnn.core.per_example import per_example_grad_norms, per_example_grads

jax.config.update("jax_numpy_rank_promotion", "raise")

CASES = [
    (("relu", "softmax"), "cross_entropy"),
    (("tanh", "leaky_relu", "sigmoid"), "bce"),
    (("sigmoid", "softmax", "identity"), "mse"),
    (("identity",), "mse"),
]


def problem(acts, loss, dtype="float64", m=8, seed=0):
    net = jaxnn.Network((4,) * (len(acts) + 1), acts, loss)
    return (net, *make_problem(net, m, dtype, seed))


@jax.jit
def autodiff_per_example(params, X, Y, net):
    one = lambda p, x, y: jax.grad(jaxnn.cost)(p, x[:, None], y[:, None], net)  # noqa: E731
    return jax.vmap(one, in_axes=(None, 1, 1))(params, X, Y)


@jax.jit
def manual_everything(params, X, Y, net):
    """per_example_grads, their norms, and the batch gradient, in one program."""
    return (
        per_example_grads(params, X, Y, net),
        per_example_grad_norms(params, X, Y, net),
        jaxnn.value_and_manual_grad(params, X, Y, net)[1],
    )


def materialised_norms(grads):
    return jnp.sqrt(sum(jnp.sum(a.reshape(a.shape[0], -1) ** 2, axis=1) for a in jax.tree.leaves(grads)))


@pytest.mark.parametrize("acts, loss", CASES)
def test_per_example_grads_and_norms_match_vmap_of_jax_grad(acts, loss, x64):
    net, params, X, Y = problem(acts, loss)
    got, norms, batch = manual_everything(params, X, Y, net)
    want = autodiff_per_example(params, X, Y, net)
    for g, p in zip(got, params):
        chex.assert_shape(g["W"], (8, *p["W"].shape))
        chex.assert_shape(g["b"], (8, *p["b"].shape))
    assert relative_error_np(got, want) <= 1e-10
    # their mean is the batch gradient (the cost is a mean over examples)
    mean = jax.tree.map(lambda a: np.mean(np.asarray(a), axis=0), got)
    assert relative_error_np(mean, batch) <= 1e-12
    # the norms, without the stacked gradient, equal the norms of the stacked one
    chex.assert_shape(norms, (8,))
    np.testing.assert_allclose(np.asarray(norms), np.asarray(materialised_norms(want)), rtol=1e-12)


def test_float32():
    net, params, X, Y = problem(("relu", "softmax"), "cross_entropy", dtype="float32")
    got, norms, _ = manual_everything(params, X, Y, net)
    assert got[0]["W"].dtype == norms.dtype == jnp.float32
    assert relative_error_np(got, autodiff_per_example(params, X, Y, net)) <= 1e-5
    np.testing.assert_allclose(norms, materialised_norms(got), rtol=1e-5)


def test_single_example(x64):
    net, params, X, Y = problem(("tanh", "sigmoid"), "bce", m=1)
    got, norms, batch = manual_everything(params, X, Y, net)
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[0], got), batch, rtol=1e-14, atol=1e-16)
    assert float(norms[0]) == pytest.approx(float(jaxnn.tree_norm(batch)), rel=1e-12)


def test_norms_never_build_the_stacked_gradient():
    # one 256 x 256 layer, m = 32: the stacked dW alone would be 32 * 256 * 256 * 4 bytes = 8 MiB
    net = jaxnn.Network((256, 256, 4), ("relu", "softmax"), "cross_entropy")
    params, X, Y = make_problem(net, 32)
    compiled = jax.jit(per_example_grad_norms).lower(params, X, Y, net).compile()
    stats = compiled.memory_analysis()
    assert stats is not None
    assert stats.temp_size_in_bytes < 32 * 256 * 256 * 4 / 8


def test_bad_input():
    net, params, X, Y = problem(("relu", "softmax"), "cross_entropy", dtype="float32")
    with pytest.raises(ValueError, match="per_example_grads: X has shape"):
        per_example_grads(params, X[:, :4].T.reshape(4, 4)[:3], Y, net)
    with pytest.raises(ValueError, match=r"per_example_grad_norms: Y has shape"):
        per_example_grad_norms(params, X, Y[:, :3], net)
    with pytest.raises(ValueError, match="params has 1 layers"):
        per_example_grads(params[:1], X, Y, net)
