"""The one train-step builder (jaxnn.train.step.make_train_step) and its deprecated aliases.

Every form (a learning rate, an optax optimizer, bfloat16 compute, a mesh, an ensemble) is
the same ``train_step``; each is compared with a hand loop over the public formulas
(``value_and_manual_grad`` then ``sgd_update`` or ``optax``), and each retired name warns
and gives exactly what the builder gives.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import draw

import jaxnn
from jaxnn.devices import mesh as devices_mesh
from jaxnn.train import optimizers

NET = jaxnn.Network((3, 5, 2), ("tanh", "softmax"), "cross_entropy")


@pytest.fixture(scope="module")
def problem():
    params = jaxnn.init_params(jax.random.key(0), NET)
    X = draw(jax.random.normal, jax.random.key(1), (3, 8))
    Y = jax.nn.one_hot(jnp.arange(8) % 2, 2).T
    return params, X, Y


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def test_learning_rate_step_is_formulas_5(problem):
    # compiled vs eager: XLA may fuse and reorder, so agreement is to float32 rounding
    params, X, Y = problem
    J_ref, grads = jaxnn.value_and_manual_grad(params, X, Y, NET)
    ref = jaxnn.sgd_update(params, grads, 0.3)
    for train in (jaxnn.make_train_step(NET, 0.3), jaxnn.make_train_step(NET, learning_rate=0.3)):
        new, J = train(params, X, Y)
        assert float(jaxnn.relative_error(new, ref)) <= 1e-6
        assert float(J) == pytest.approx(float(J_ref), rel=1e-6)
        # the (init, step) form of the same builder takes the same step
        p, s = train.init(params)
        p, s, J2 = train.step(p, s, X, Y)
        assert float(jaxnn.relative_error(p, new)) <= 1e-7 and float(J2) == pytest.approx(float(J))


def test_gradient_descent_is_defined_once(problem):
    # the optax transformation and sgd_update are the same update (p + (-α g) == p - α g)
    params, X, Y = problem
    _, grads = jaxnn.value_and_manual_grad(params, X, Y, NET)
    tx = jaxnn.gradient_descent(0.3)
    updates, _ = tx.update(grads, tx.init(params))
    assert same(optax.apply_updates(params, updates), jaxnn.sgd_update(params, grads, 0.3))
    assert optimizers.as_optimizer(0.3).init(params).learning_rate == pytest.approx(0.3)


def test_optax_optimizer_uses_init_and_step(problem):
    params, X, Y = problem
    opt = optax.adam(1e-2)
    train = jaxnn.make_train_step(NET, opt)
    p, s = train.init(params)
    ref_p, ref_s = params, opt.init(params)
    for _ in range(3):
        p, s, _ = train.step(p, s, X, Y)
        _, g = jaxnn.value_and_manual_grad(ref_p, X, Y, NET)
        u, ref_s = opt.update(g, ref_s, ref_p)
        ref_p = optax.apply_updates(ref_p, u)
    assert float(jaxnn.relative_error(p, ref_p)) <= 1e-6
    with pytest.raises(ValueError, match=r"carries state.*train\.init\(params\)"):
        train(params, X, Y)


def test_ensemble_without_a_mesh_is_vmap(problem):
    params, X, Y = problem
    P0 = jax.vmap(lambda k: jaxnn.init_params(k, NET))(jax.random.split(jax.random.key(5), 3))
    train = jaxnn.make_train_step(NET, 0.3, ensemble=True)
    assert train.stateless is None
    p, s = train.init(P0)
    p, s, J = train.step(p, s, X, Y)
    ref, J_ref = jax.vmap(jaxnn.make_train_step(NET, 0.3), in_axes=(0, None, None))(P0, X, Y)
    assert J.shape == (3,) and float(jaxnn.relative_error(p, ref)) <= 1e-6


@pytest.mark.parametrize("kwargs, match", [
    ({}, "needs an optimizer"),
    ({"optimizer": 0.1, "learning_rate": 0.1}, "not both"),
    ({"learning_rate": "abc"}, "learning_rate"),
    ({"optimizer": "abc"}, "optimizer = 'abc'"),
    ({"optimizer": 0.1, "ensemble": "yes"}, "ensemble must be True or False"),
    ({"optimizer": 0.1, "grad": "numeric"}, "grad = 'numeric'"),
])
def test_builder_errors_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        jaxnn.make_train_step(NET, **kwargs)


def test_deprecated_builders_warn_and_are_the_builder(problem):
    params, X, Y = problem
    ref, J_ref = jaxnn.make_train_step(NET, 0.3, compute_dtype=jnp.bfloat16)(params, X, Y)
    with pytest.deprecated_call(match="make_mixed_precision_train_step is deprecated"):
        step = jaxnn.make_mixed_precision_train_step(NET, 0.3)
    new, state, J = step(params, (), X, Y)
    assert float(jaxnn.relative_error(new, ref)) <= 1e-7 and state == ()
    assert float(J) == pytest.approx(float(J_ref))
    mesh = jaxnn.make_mesh(jax.devices()[:1])
    with pytest.deprecated_call(match="make_sharded_train_step is deprecated"):
        train = jaxnn.make_sharded_train_step(NET, 0.3, mesh)
    assert isinstance(train, jaxnn.TrainStep)
    new_mesh = jaxnn.make_train_step(NET, 0.3, mesh=mesh)(params, X, Y)[0]
    assert float(jaxnn.relative_error(train(params, X, Y)[0], new_mesh)) <= 1e-7
    with pytest.deprecated_call(match="constant_gradient_descent is deprecated"):
        tx = optimizers.constant_gradient_descent(0.3)
    _, grads = jaxnn.value_and_manual_grad(params, X, Y, NET)
    updates, s = tx.update(grads, tx.init(params))
    assert s == () and same(optax.apply_updates(params, updates), jaxnn.sgd_update(params, grads, 0.3))
    with pytest.deprecated_call(match="shard_host_batch is deprecated"):
        Xh, _ = devices_mesh.shard_host_batch(np.asarray(X), np.asarray(Y), mesh)
    assert np.array_equal(np.asarray(Xh), np.asarray(X))
