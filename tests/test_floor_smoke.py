"""The smoke subset CI's floor job runs on the oldest jax / jaxlib / optax / chex that pyproject.toml
allows (.ci/floor-constraints.txt); it also runs in the main suite, on the newest.

One path through each wing: the formulas and the hand-derived backward pass against ``jax.grad``
(float32 and float64, conventions §3), ``check_vjp`` on a small custom_vjp (a right rule passes,
a planted bug is caught), ``check_gradients``, ``fit`` for two epochs with optax's Adam, and a
checkpoint save / restore round trip. Public names only. Shapes stay tiny: it must stay fast.
"""

import ast
import functools
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from jaxnn.core.compat import enable_x64, savez_no_pickle

jax.config.update("jax_numpy_rank_promotion", "raise")

NET = jaxnn.Network((3, 5, 4, 2), ("tanh", "relu", "softmax"), "cross_entropy")


def _data(m=12, dtype=jnp.float32):
    k1, k2 = jax.random.split(jax.random.key(0))
    X = jax.random.normal(k1, (3, m), dtype)
    Y = jax.nn.one_hot(jax.random.randint(k2, (m,), 0, 2), 2, dtype=dtype).T
    return X, Y


def _rel(g1, g2) -> float:
    """conventions §3's normwise relative error, in NumPy float64 (the measuring instrument)."""
    a, b = (np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(g)])
            for g in (g1, g2))
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-30))


@functools.partial(jax.jit, static_argnums=3)
def _both_grads(params, X, Y, net):
    """(J, hand-derived grads) and (J, jax.grad's): one compiled program per dtype."""
    return jaxnn.value_and_manual_grad(params, X, Y, net), jax.value_and_grad(jaxnn.cost)(params, X, Y, net)


@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-5), ("float64", 1e-10)])
def test_backward_matches_jax_grad(dtype, rtol):
    with enable_x64(dtype == "float64"):
        X, Y = _data(dtype=dtype)
        params = jaxnn.init_params(jax.random.key(1), NET, dtype=dtype)
        (J, grads), (J_ref, grads_ref) = jax.tree.map(np.asarray, _both_grads(params, X, Y, NET))
    assert grads[0]["W"].dtype == grads_ref[0]["W"].dtype == np.dtype(dtype)
    assert abs(float(J) - float(J_ref)) <= rtol * abs(float(J_ref))
    assert _rel(grads, grads_ref) <= rtol
    # the measure is not blind: one layer's gradient 1% off is far outside rtol
    wrong = [dict(g) for g in grads]
    wrong[0]["W"] = wrong[0]["W"] * 1.01
    assert _rel(wrong, grads_ref) > 100 * rtol


@jax.custom_vjp
def _softplus(x):
    return jnp.logaddexp(x, 0.0)


def _softplus_fwd(x):
    return _softplus(x), x


def _softplus_bwd(x, c):
    return (c * jax.nn.sigmoid(x),)


_softplus.defvjp(_softplus_fwd, _softplus_bwd)


def test_check_vjp_passes_a_right_rule_and_catches_a_wrong_one():
    x = jnp.linspace(-3.0, 3.0, 7)
    report = jaxnn.check_vjp(_softplus, (x,), reference=lambda x: jnp.logaddexp(x, 0.0))
    assert report.passed, str(report)
    bad = jaxnn.check_vjp(_softplus, (x,), vjp=lambda p, c: (c * jax.nn.sigmoid(p[0]) * 1.001,),
                          reference=lambda x: jnp.logaddexp(x, 0.0))
    assert not bad.passed
    with pytest.raises(jaxnn.GradientCheckError):
        bad.raise_if_failed()


def test_check_gradients_passes_and_a_planted_bug_fails():
    X, Y = _data()
    params = jaxnn.init_params(jax.random.key(2), NET)
    assert jaxnn.check_gradients(params, X, Y, NET).passed

    def off_by_two(params, cache, Y, net):
        grads = jaxnn.backward(params, cache, Y, net)
        return [dict(g, b=2 * g["b"]) if i == 1 else g for i, g in enumerate(grads)]

    report = jaxnn.check_gradients(params, X, Y, NET, backward=off_by_two)
    assert not report.passed and "2" in report.worst_leaf, str(report)


def test_fit_two_epochs_then_checkpoint_round_trip(tmp_path):
    X, Y = _data(m=20)
    params = jaxnn.init_params(jax.random.key(3), NET)
    # adam, minibatches of 8 (a partial last one): optax's state and the data order both matter;
    # epochs_per_call=1: every call below runs the one compiled epoch
    kw = dict(optimizer="adam", batch_size=8, progress=False, epochs_per_call=1)
    trained, history = jaxnn.fit(params, NET, (X, Y), epochs=2, key=jax.random.key(4),
                                 learning_rate=1e-2, **kw)
    np.testing.assert_array_equal(history["epoch"], [1, 2])
    assert np.all(np.isfinite(history["cost"]))
    assert float(jaxnn.cost(trained, X, Y, NET)) < float(jaxnn.cost(params, X, Y, NET))

    state = jaxnn.init_state(params, jax.random.key(4), optimizer="adam", learning_rate=1e-2)
    state, _ = jaxnn.train_epochs(state, NET, (X, Y), epochs=2, **kw)
    assert int(state.step) == 2 * 3  # ceil(20 / 8) updates per epoch
    chex.assert_trees_all_equal(state.params, trained)  # fit is train_epochs from init_state

    path = jaxnn.checkpoint.save(tmp_path, state, NET, config={"floor": True})
    like = jaxnn.init_state(jaxnn.init_params(jax.random.key(9), NET), jax.random.key(9),
                            optimizer="adam", learning_rate=1e-2)
    back = jaxnn.checkpoint.restore(path, NET, like=like)  # every value comes from the file
    plain = [s._replace(key=jax.random.key_data(s.key)) for s in (state, back)]
    chex.assert_trees_all_equal(*plain, strict=True)  # every leaf bit for bit, dtypes included
    # the restored state trains on exactly as the original does
    s1, h1 = jaxnn.train_epochs(state, NET, (X, Y), epochs=1, **kw)
    s2, h2 = jaxnn.train_epochs(back, NET, (X, Y), epochs=1, **kw)
    np.testing.assert_array_equal(h1["cost"], h2["cost"])
    chex.assert_trees_all_equal(s1.params, s2.params)


def test_savez_no_pickle_stores_only_the_arrays_and_refuses_objects(tmp_path):
    # NumPy < 2.2 has no savez(allow_pickle=): passed anyway, it became an array of that name
    savez_no_pickle(tmp_path / "a.npz", W=np.ones((2, 3)), b=np.zeros((2, 1)))
    with np.load(tmp_path / "a.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["W", "b"] and npz["W"].shape == (2, 3)
    with pytest.raises(ValueError, match="[Oo]bject"):
        savez_no_pickle(tmp_path / "b.npz", W=np.array([{"W": 1}], dtype=object))


# What jaxnn.core.compat stands in for: spelled out anywhere else in jaxnn, the floor breaks
# (jax < 0.8 has no jax.enable_x64, NumPy < 2.2 no np.savez(allow_pickle=)).
NEWER = {"jax.enable_x64": "enable_x64"}


def _newer_api_uses(source: str):
    for node in sorted(ast.walk(ast.parse(source)), key=lambda n: getattr(n, "lineno", 0)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            name = f"{node.value.id}.{node.attr}"
            if name in NEWER:
                yield node.lineno, name, NEWER[name]
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "savez"
                and any(k.arg == "allow_pickle" for k in node.keywords)):
            yield node.lineno, "np.savez(allow_pickle=...)", "savez_no_pickle"


def test_newer_apis_come_from_compat_only():
    root = Path(jaxnn.__file__).parent
    found = [f"{path.relative_to(root.parent)}:{line}: {name} -> from jaxnn.core.compat import {fix}"
             for path in sorted(root.rglob("*.py")) if path.name != "compat.py"
             for line, name, fix in _newer_api_uses(path.read_text())]
    assert not found, "\n".join(found)
    # the detector is not blind
    planted = "import jax\nwith jax.enable_x64(True):\n    pass\nnp.savez(f, allow_pickle=False)\n"
    found = [name for _, name, _ in _newer_api_uses(planted)]
    assert found == ["jax.enable_x64", "np.savez(allow_pickle=...)"]
