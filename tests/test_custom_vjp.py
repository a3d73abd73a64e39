"""cost_with_manual_vjp: jax.grad of it IS the hand-derived backward pass (formulas §4)."""

import chex
import jax
import jax.numpy as jnp
import optax
import pytest
from conftest import relative_error_np

import jaxnn
import jaxnn.core.custom_vjp as custom_vjp_module
from jaxnn.check import make_problem
from jaxnn.core.custom_vjp import cost_with_manual_vjp
from jaxnn.core.per_example import per_example_grads

jax.config.update("jax_numpy_rank_promotion", "raise")

CASES = [
    (("relu", "softmax"), "cross_entropy"),
    (("tanh", "sigmoid"), "bce"),
    (("leaky_relu", "sigmoid", "identity"), "mse"),
    (("softmax", "softmax"), "mse"),
]


def problem(acts, loss, dtype="float32", m=8, seed=0):
    net = jaxnn.Network((4,) * (len(acts) + 1), acts, loss)
    return (net, *make_problem(net, m, dtype, seed))


@jax.jit
def three_gradients(params, X, Y, net):
    """(J, grad of cost_with_manual_vjp), (J, value_and_manual_grad), (J, jax.grad of cost)."""
    return (
        jax.value_and_grad(cost_with_manual_vjp)(params, X, Y, net),
        jaxnn.value_and_manual_grad(params, X, Y, net),
        jax.value_and_grad(jaxnn.cost)(params, X, Y, net),
    )


@pytest.mark.parametrize("acts, loss", CASES)
def test_gradient_is_backward_and_equals_autodiff(acts, loss, x64):
    net, params, X, Y = problem(acts, loss, "float64")
    (J, g), (J_manual, g_manual), (J_auto, g_auto) = three_gradients(params, X, Y, net)
    chex.assert_trees_all_close(g, g_manual, rtol=1e-14, atol=1e-16)  # the very same computation
    assert float(J) == pytest.approx(float(J_auto), rel=1e-14)
    assert relative_error_np(g, g_auto) <= 1e-10


def test_float32_eager():
    net, params, X, Y = problem(("relu", "softmax"), "cross_entropy")
    g = jax.grad(cost_with_manual_vjp)(params, X, Y, net)  # eagerly: the point of this test
    assert g[0]["W"].dtype == jnp.float32
    _, (_, g_manual), (_, g_auto) = three_gradients(params, X, Y, net)  # the references, compiled
    assert relative_error_np(g, g_manual) <= 1e-7
    assert relative_error_np(g, g_auto) <= 1e-5


def test_a_planted_bug_shows_the_gradient_really_is_the_manual_one(x64):
    bad = jaxnn.make_activation("tanh_105", jnp.tanh, lambda z: 1.05 * (1 - jnp.tanh(z) ** 2))
    net, params, X, Y = problem((bad, "identity"), "mse", "float64")
    (_, g), (_, g_manual), (_, g_auto) = three_gradients(params, X, Y, net)
    chex.assert_trees_all_close(g, g_manual, rtol=1e-14, atol=1e-16)
    assert relative_error_np(g, g_auto) > 1e-3


def test_composes_with_jit_and_vmap(x64):
    net, params, X, Y = problem(("tanh", "softmax"), "cross_entropy", "float64")

    @jax.jit
    def everything(params, X, Y):
        # vmap over examples: per-example gradients, as in jaxnn.per_example_grads
        one = lambda p, x, y: jax.grad(cost_with_manual_vjp)(p, x[:, None], y[:, None], net)  # noqa: E731
        stacked = jax.vmap(one, in_axes=(None, 1, 1))(params, X, Y)
        # vmap over an ensemble of params
        ensemble = jax.tree.map(lambda a: jnp.stack([a, 0.5 * a]), params)
        g_ens = jax.vmap(jax.grad(cost_with_manual_vjp), in_axes=(0, None, None, None))(ensemble, X, Y, net)
        half = jax.tree.map(lambda a: 0.5 * a, params)
        return stacked, per_example_grads(params, X, Y, net), g_ens, jax.grad(jaxnn.cost)(half, X, Y, net)

    stacked, per_example, g_ens, g_half = everything(params, X, Y)
    chex.assert_trees_all_close(stacked, per_example, rtol=1e-12, atol=1e-15)
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[1], g_ens), g_half, rtol=1e-10, atol=1e-14)


def test_an_optax_step_is_the_seed_update():
    net, params, X, Y = problem(("relu", "sigmoid"), "bce")
    opt = optax.sgd(0.1)

    @jax.jit
    def steps(params):
        grads = jax.grad(cost_with_manual_vjp)(params, X, Y, net)
        updates, _ = opt.update(grads, opt.init(params), params)
        _, manual = jaxnn.value_and_manual_grad(params, X, Y, net)
        return optax.apply_updates(params, updates), jaxnn.sgd_update(params, manual, 0.1)

    with_optax, seed_update = steps(params)
    chex.assert_trees_all_close(with_optax, seed_update, rtol=1e-6, atol=1e-7)


def test_l2_and_every_cotangent(x64):
    net, params, X, Y = problem(("tanh", "identity"), "mse", "float64")

    @jax.jit
    def grads(params, X, Y, l2):
        of = lambda f: jax.grad(f, argnums=(0, 1, 2, 3))(params, X, Y, l2)  # noqa: E731
        return (
            of(lambda p, X, Y, l2: cost_with_manual_vjp(p, X, Y, net, l2=l2)),
            of(lambda p, X, Y, l2: jaxnn.cost(p, X, Y, net, l2=l2)),
        )

    manual, auto = grads(params, X, Y, 0.7)
    # params: the hand-derived backward with its λ/m W term; X, Y, λ: exact too
    chex.assert_trees_all_close(manual, auto, rtol=1e-10, atol=1e-15)
    assert float(manual[3]) > 0


def test_params_gradient_runs_no_autodiff(monkeypatch):
    # X/Y cotangents come from jax.vjp of cost, only when X or Y is differentiated
    calls = []
    real_cost = custom_vjp_module.cost

    def counting_cost(*args, **kwargs):
        calls.append(1)
        return real_cost(*args, **kwargs)

    monkeypatch.setattr(custom_vjp_module, "cost", counting_cost)
    net, params, X, Y = problem(("relu", "identity"), "mse")
    jax.grad(cost_with_manual_vjp)(params, X, Y, net)
    assert calls == []
    jax.grad(cost_with_manual_vjp, argnums=1)(params, X, Y, net)
    assert calls


def test_bad_arguments():
    net, params, X, Y = problem(("relu", "identity"), "mse")
    with pytest.raises(ValueError, match="jaxnn.Network"):
        cost_with_manual_vjp(params, X, Y, "net")
    with pytest.raises(ValueError, match="l2"):
        cost_with_manual_vjp(params, X, Y, net, l2=-1.0)
    with pytest.raises(ValueError, match=r"layer 1: W has shape"):
        jax.grad(cost_with_manual_vjp)([dict(params[0], W=params[0]["W"][:, :2]), params[1]], X, Y, net)
