"""The hand-derived backward pass against jax.grad (seed §4; CONVENTIONS §3).

The grid: every hidden activation x every output activation/loss pairing, depths
1 to 4, batch sizes 1 and 37, float32 (<= 1e-5) and float64 (<= 1e-10).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import HIDDEN, OUTPUT_PAIRINGS, make_targets

import jaxnn

TOL = {jnp.float32: 1e-5, jnp.float64: 1e-10}


def _cases():
    # Depth 1 has no hidden layer; depth 2 pairs every hidden activation with every
    # output pairing; depths 3 and 4 rotate through the hidden activations so that
    # each one appears at each depth (checked below) without the full product.
    for i, (output, loss) in enumerate(OUTPUT_PAIRINGS):
        yield (output,), loss
        for h in HIDDEN:
            yield (h, output), loss
        for depth in (3, 4):
            hidden = tuple(HIDDEN[(i * (depth - 1) + k) % len(HIDDEN)] for k in range(depth - 1))
            yield (*hidden, output), loss


CASES = list(_cases())
SIZES = (5, 4, 6, 3, 4)


def _problem(acts, loss, m, dtype, seed=0):
    sizes = (SIZES[0], *SIZES[1 : len(acts)], 3)
    net = jaxnn.Network(sizes, acts, loss)
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    params = jaxnn.init_params(k1, net, init="xavier", dtype=dtype)
    # biases away from zero so db and the softmax/identity paths are exercised
    params = [
        dict(p, b=0.1 * jax.random.normal(k, p["b"].shape, dtype))
        for p, k in zip(params, jax.random.split(k3, net.L))
    ]
    # a positive output bias keeps ReLU outputs alive even for m = 1
    params[-1]["b"] = params[-1]["b"] + 0.5
    X = jax.random.normal(k2, (sizes[0], m), dtype)
    Y = make_targets(k3, net, m, dtype)
    return net, params, X, Y


@jax.jit
def _manual_vs_autodiff(params, X, Y, net):
    # One compiled program per case: much faster than op-by-op dispatch of both passes.
    J1, g1 = jaxnn.value_and_manual_grad(params, X, Y, net)
    J2, g2 = jaxnn.value_and_autodiff_grad(params, X, Y, net)
    return J1, J2, g1, jaxnn.relative_error(g1, g2), jaxnn.tree_norm(g2)


def _compare(acts, loss, dtype):
    for m in (1, 37):
        net, params, X, Y = _problem(acts, loss, m, dtype)
        J1, J2, g1, err, norm = _manual_vs_autodiff(params, X, Y, net)
        assert jax.tree.structure(g1) == jax.tree.structure(params)
        assert all(a.dtype == dtype for a in jax.tree.leaves(g1))
        assert float(err) <= TOL[dtype], f"{acts}/{loss} m={m}: relative error {float(err):.2e}"
        np.testing.assert_allclose(J1, J2, rtol=10 * TOL[dtype])
        assert float(norm) > 0  # a vacuous all-zero comparison would prove nothing


@pytest.mark.parametrize("acts, loss", CASES, ids=lambda v: "-".join(v) if isinstance(v, tuple) else v)
def test_manual_equals_autodiff_float32(acts, loss):
    _compare(acts, loss, jnp.float32)


@pytest.mark.parametrize("acts, loss", CASES, ids=lambda v: "-".join(v) if isinstance(v, tuple) else v)
def test_manual_equals_autodiff_float64(acts, loss, x64):
    _compare(acts, loss, jnp.float64)


def test_grid_covers_every_activation_pairing_and_depth():
    assert {acts[-1] + "/" + loss for acts, loss in CASES} == {o + "/" + l for o, l in OUTPUT_PAIRINGS}
    assert {len(acts) for acts, _ in CASES} == {1, 2, 3, 4}
    for depth in (2, 3, 4):
        assert set(HIDDEN) <= {h for acts, _ in CASES if len(acts) == depth for h in acts[:-1]}


@pytest.mark.parametrize("pair", [("sigmoid", "bce"), ("softmax", "cross_entropy")])
def test_saturated_logits_stay_finite_float32(pair):
    """|Z^[L]| = 100 in float32: cost and both gradients finite, and equal."""
    output, loss = pair
    net = jaxnn.Network((2, 3, 2), ("tanh", output), loss)
    params = [
        {"W": jnp.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), "b": jnp.zeros((3, 1))},
        {"W": jnp.array([[50.0, 50.0, 0.0], [-50.0, -50.0, 0.0]]), "b": jnp.zeros((2, 1))},
    ]
    X = jnp.array([[30.0, -30.0, 30.0], [30.0, -30.0, -30.0]])  # tanh saturates: Z^[L] = ±100
    Y = jnp.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    _, cache = jaxnn.forward(params, X, net)
    assert float(jnp.max(jnp.abs(cache[-1]["Z"]))) == pytest.approx(100.0, rel=1e-3)
    J1, g1 = jaxnn.value_and_manual_grad(params, X, Y, net)
    J2, g2 = jaxnn.value_and_autodiff_grad(params, X, Y, net)
    leaves = [J1, J2, *jax.tree.leaves(g1), *jax.tree.leaves(g2)]
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)
    assert float(J1) > 50  # confidently wrong examples cost a lot, but finitely
    assert float(jaxnn.relative_error(g1, g2)) <= 1e-5


@pytest.mark.parametrize("hidden", ["relu", "tanh"])
def test_l2_and_dropout_gradients_match_autodiff(hidden, x64):
    net, params, X, Y = _problem((hidden, hidden, "softmax"), "cross_entropy", 37, x64)
    kwargs = dict(l2=0.3, key=jax.random.key(7), keep_prob=0.75)
    _, g1 = jaxnn.value_and_manual_grad(params, X, Y, net, **kwargs)
    _, g2 = jaxnn.value_and_autodiff_grad(params, X, Y, net, **kwargs)
    assert float(jaxnn.relative_error(g1, g2)) <= 1e-10
    # L2 decays W only: db is unchanged by l2
    _, g0 = jaxnn.value_and_manual_grad(params, X, Y, net, key=jax.random.key(7), keep_prob=0.75)
    for a, b, p in zip(g1, g0, params):
        np.testing.assert_allclose(a["b"], b["b"], rtol=1e-14)
        np.testing.assert_allclose(a["W"] - b["W"], 0.3 / 37 * p["W"], rtol=1e-9, atol=1e-15)


def test_traced_l2_under_vmap():
    net, params, X, Y = _problem(("tanh", "identity"), "mse", 8, jnp.float32)
    lams = jnp.array([0.0, 0.5, 2.0])
    manual = jax.vmap(lambda lam: jaxnn.value_and_manual_grad(params, X, Y, net, l2=lam)[1])(lams)
    autodiff = jax.vmap(lambda lam: jaxnn.value_and_autodiff_grad(params, X, Y, net, l2=lam)[1])(lams)
    assert float(jaxnn.relative_error(manual, autodiff)) <= 1e-5


def test_backward_is_jittable_and_vmappable_over_an_ensemble(jit):
    net, params, X, Y = _problem(("relu", "sigmoid"), "bce", 11, jnp.float32)
    stacked = jax.vmap(lambda k: jaxnn.init_params(k, net))(jax.random.split(jax.random.key(3), 4))
    f = jit(jax.vmap(jaxnn.value_and_manual_grad, in_axes=(0, None, None, None)))
    g = jax.vmap(jaxnn.value_and_autodiff_grad, in_axes=(0, None, None, None))
    (J1, g1), (J2, g2) = f(stacked, X, Y, net), g(stacked, X, Y, net)
    assert J1.shape == (4,)
    np.testing.assert_allclose(J1, J2, rtol=1e-6)
    assert float(jaxnn.relative_error(g1, g2)) <= 1e-5


def test_backward_checks_its_inputs():
    net, params, X, Y = _problem(("relu", "sigmoid"), "bce", 6, jnp.float32)
    _, cache = jaxnn.forward(params, X, net)
    with pytest.raises(ValueError, match="cache must be the list of 2"):
        jaxnn.backward(params, cache[:1], Y, net)
    with pytest.raises(ValueError, match=r"Y has shape \(6, 3\).*pass Y\.T"):
        jaxnn.backward(params, cache, Y.T, net)
