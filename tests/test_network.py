"""Network description and the trace-time input checks: every bad input names what is wrong."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn

NET = jaxnn.Network((3, 5, 2), ("relu", "softmax"), "cross_entropy")


def test_network_is_hashable_static_pytree():
    same = jaxnn.Network([3, 5, 2], ["relu", "softmax"], "cross_entropy")
    assert NET == same and hash(NET) == hash(same)
    assert jax.tree.leaves(NET) == []
    assert (NET.L, NET.n_x, NET.n_L, NET.fused) == (2, 3, 2, True)
    assert NET.param_shapes() == [{"W": (5, 3), "b": (5, 1)}, {"W": (2, 5), "b": (2, 1)}]
    assert NET.describe() == {
        "layer_sizes": [3, 5, 2],
        "activations": ["relu", "softmax"],
        "loss": "cross_entropy",
    }
    with pytest.raises(dataclasses_error()):
        NET.loss = "mse"


def dataclasses_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_network_passes_through_jit_grad_vmap_as_a_plain_argument():
    traces = []

    @jax.jit
    def f(params, X, net):
        traces.append(net)
        return jaxnn.predict(params, X, net)

    params = _params()
    X = jnp.ones((3, 4))
    f(params, X, NET)
    f(params, X, jaxnn.Network((3, 5, 2), ("relu", "softmax"), "cross_entropy"))
    assert len(traces) == 1  # an equal Network reuses the compilation
    f(params, X, jaxnn.Network((3, 5, 2), ("tanh", "softmax"), "cross_entropy"))
    assert len(traces) == 2
    # grad and vmap take it as a plain argument too (each compiled once, under jit, where
    # the Network is also passed as an argument: eager grad/vmap would compile every primitive)
    Y = jnp.asarray(np.eye(2)[:, [0, 1, 0, 1]], jnp.float32)
    g = jax.jit(jax.grad(lambda p, net: jaxnn.cost(p, X, Y, net)))(params, NET)
    assert jax.tree.structure(g) == jax.tree.structure(params)
    out = jax.jit(jax.vmap(jaxnn.predict, in_axes=(None, 1, None), out_axes=1))(params, X[:, None, :], NET)
    assert out.shape == (2, 1, 4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(layer_sizes=(3,), activations=(), loss="mse"), "at least one layer"),
        (
            dict(layer_sizes=(3, 0, 1), activations=("relu", "identity"), loss="mse"),
            r"layer_sizes\[1\] = 0.*positive",
        ),
        (dict(layer_sizes=(-3, 1), activations=("identity",), loss="mse"), r"n_x.*positive"),
        (dict(layer_sizes=(3, 2.5, 1), activations=("relu", "identity"), loss="mse"), "positive integer"),
        (dict(layer_sizes=(3, 4, 1), activations=("relu",), loss="mse"), r"len\(activations\) = 1.*2 layers"),
        (dict(layer_sizes=(3, 4, 1), activations="relu", loss="mse"), "one per layer"),
        (
            dict(layer_sizes=(3, 4, 1), activations=("gelu", "identity"), loss="mse"),
            "layer 1: Unknown activation 'gelu'.*relu",
        ),
        (
            dict(layer_sizes=(3, 1), activations=("identity",), loss="hinge"),
            "Unknown loss 'hinge'.*bce, mse, cross_entropy",
        ),
        (
            dict(layer_sizes=(3, 1), activations=("relu",), loss="bce"),
            "'bce' does not fit.*'relu'.*sigmoid.*Allowed pairings",
        ),
        (dict(layer_sizes=(3, 2), activations=("sigmoid",), loss="cross_entropy"), "needs softmax"),
        (dict(layer_sizes=(3, 2), activations=("softmax",), loss="bce"), "needs sigmoid"),
    ],
)
def test_bad_network_descriptions(kwargs, match):
    with pytest.raises(ValueError, match=match):
        jaxnn.Network(**kwargs)


def _params():
    # drawn with NumPy: eager init_params compiles its random kernels for every shape
    rng = np.random.default_rng(0)
    return [
        {"W": jnp.asarray(rng.standard_normal(s["W"]), jnp.float32), "b": jnp.zeros(s["b"], jnp.float32)}
        for s in NET.param_shapes()
    ]


def test_row_major_X_is_refused_with_a_hint():
    params = _params()
    with pytest.raises(ValueError, match=r"\(7, 3\).*looks like \(m, n_x\).*pass X\.T"):
        jaxnn.forward(params, jnp.ones((7, 3)), NET)
    with pytest.raises(ValueError, match="2-D.*X\\[:, None\\]"):
        jaxnn.forward(params, jnp.ones(3), NET)
    with pytest.raises(ValueError, match="n_x = 3"):
        jaxnn.forward(params, jnp.ones((4, 9)), NET)


def test_bad_Y_shapes():
    params, X = _params(), jnp.ones((3, 7))
    with pytest.raises(ValueError, match=r"Y has shape \(7, 2\).*\(2, 7\).*pass Y\.T"):
        jaxnn.cost(params, X, jnp.ones((7, 2)), NET)
    with pytest.raises(ValueError, match="one-hot"):
        jaxnn.cost(params, X, jnp.ones((7,)), NET)
    with pytest.raises(ValueError, match=r"expected \(n_L, m\) = \(2, 7\)"):
        jaxnn.value_and_manual_grad(params, X, jnp.ones((2, 6)), NET)


def test_params_that_do_not_match_the_network():
    params = _params()
    bad_b = [dict(params[0], b=jnp.zeros(5)), params[1]]
    with pytest.raises(ValueError, match=r"layer 1: b has shape \(5,\), expected \(5, 1\).*column"):
        jaxnn.forward(bad_b, jnp.ones((3, 4)), NET)
    bad_W = [params[0], dict(params[1], W=params[1]["W"].T)]
    with pytest.raises(ValueError, match=r"layer 2: W has shape \(5, 2\).*transposed"):
        jaxnn.forward(bad_W, jnp.ones((3, 4)), NET)
    with pytest.raises(ValueError, match="params has 1 layers but the Network has L = 2"):
        jaxnn.forward(params[:1], jnp.ones((3, 4)), NET)
    with pytest.raises(ValueError, match="keys 'W' and 'b'"):
        jaxnn.forward([{"W": params[0]["W"]}, params[1]], jnp.ones((3, 4)), NET)
    with pytest.raises(ValueError, match="floating-point arrays"):
        jaxnn.forward([dict(params[0], W=jnp.ones((5, 3), jnp.int32)), params[1]], jnp.ones((3, 4)), NET)


def test_checks_happen_at_trace_time_under_jit():
    f = jax.jit(jaxnn.cost, static_argnums=())
    with pytest.raises(ValueError, match="looks like \\(m, n_x\\)"):
        f(_params(), jnp.ones((7, 3)), jnp.ones((2, 3)), NET)
