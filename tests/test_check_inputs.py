"""jaxnn.check takes what a user will pass (issue 18 item 5), and refuses a broadcast derivative.

Python floats and ints as primals (converted, the report says so), None from a
rule as a zero cotangent, static (non-differentiated) arguments, and a
derivative of a broadcastable wrong shape refused with a ValueError that names
the argument, both shapes and the fix, in every front end.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from jaxnn.check import check_activation, check_grad, check_gradients, check_vjp

jax.config.update("jax_numpy_rank_promotion", "raise")


def cube(x):
    return x**3


def test_python_float_and_int_primals_are_converted_and_stated():
    report = check_grad(cube, (2.0,), grad=lambda x: 3 * x**2, reference=cube, jit=False)
    assert report.passed, str(report)
    assert report.dtype == "float32"
    assert "primals[0]: Python float 2.0 -> float32" in report.subject and "Python float" in str(report)
    bad = check_grad(cube, (2.0,), grad=lambda x: 3.01 * x**2, reference=cube, jit=False)
    assert not bad.passed and bad.worst_leaf == "primals[0]"
    report = check_vjp(lambda x, y: x * y, (3, jnp.ones(2)), vjp=lambda p, c: (jnp.sum(c * p[1]), c * p[0]),
                       reference=lambda x, y: x * y, jit=False)
    assert report.passed, str(report)
    assert "primals[0]: Python int 3 -> float32" in report.subject


def test_numpy_float64_primals_without_x64_are_checked_in_float32_and_stated():
    # before: f's own rule returned float32 for a float64 NumPy primal and the check blamed the rule
    x = np.linspace(-1.0, 1.0, 5)
    report = check_vjp(jnp.sin, (x,), reference=lambda x: jnp.sin(x), jit=False)
    assert report.passed, str(report)
    assert report.dtype == "float32"
    assert "primals[0]: NumPy float64 -> float32 (x64 is off" in report.subject
    assert report.subject.startswith("f = sin(primals[0] (5,))"), report.subject  # its own name
    bad = check_grad(lambda x: jnp.sum(jnp.sin(x)), (x,), grad=lambda x: 1.01 * jnp.cos(x),
                     reference=lambda x: jnp.sum(jnp.sin(x)), jit=False)
    assert not bad.passed and bad.worst_leaf == "primals[0]"


def test_numpy_float64_primals_under_x64_stay_float64(x64):
    report = check_vjp(jnp.sin, (np.linspace(-1.0, 1.0, 5),), reference=lambda x: jnp.sin(x), jit=False)
    assert report.passed and report.dtype == "float64", str(report)
    assert "NumPy" not in report.subject


def test_none_from_an_explicit_vjp_is_a_zero_cotangent():
    f = lambda x, y: 2.0 * x + 0.0 * y  # noqa: E731
    ok = check_vjp(f, (jnp.ones(3), jnp.ones(3)), vjp=lambda p, c: (2 * c, None), reference=f, jit=False)
    assert ok.passed, str(ok)
    # None for one leaf of a pytree primal
    g = lambda p: 3.0 * p["a"] + 0.0 * p["b"]  # noqa: E731
    ok = check_vjp(g, ({"a": jnp.ones(2), "b": jnp.ones(2)},), vjp=lambda p, c: ({"a": 3 * c, "b": None},),
                   reference=g, jit=False)
    assert ok.passed, str(ok)
    # a None where the cotangent is not zero is a failure at that leaf, not a structure error
    h = lambda x, y: 2.0 * x + y  # noqa: E731
    bad = check_vjp(h, (jnp.ones(3), jnp.ones(3)), vjp=lambda p, c: (2 * c, None), reference=h, jit=False)
    assert not bad.passed and bad.worst_leaf == "primals[1]"


def power_sum(x, k):
    return jnp.sum(x ** k)


@pytest.mark.parametrize("full_length", [True, False])
def test_static_argnums_for_integer_arguments(full_length):
    def grad(x, k):
        g = k * x ** (k - 1)
        return (g, None) if full_length else (g,)

    x = jnp.asarray([0.5, 1.5, -2.0])
    report = check_grad(power_sum, (x, 3), grad=grad, reference=power_sum, static_argnums=1, jit=False)
    assert report.passed, str(report)
    assert "static (not differentiated): primals[1]" in report.subject
    assert [n for n, _, _ in report.results[0].leaf_errors] == ["primals[0]"]
    # the static argument keeps its position in the names of the others
    scale = lambda k, x: x * k  # noqa: E731
    rep = check_vjp(scale, (2, x), vjp=lambda p, c: (None, c * p[0]), reference=scale, static_argnums=(0,),
                    jit=False)
    assert rep.passed and [n for n, _, _ in rep.results[0].leaf_errors] == ["primals[1]"]
    # without static_argnums, the integer array is refused with the option named
    with pytest.raises(ValueError, match="static_argnums"):
        check_vjp(lambda x, k: x * k[0], (x, jnp.asarray([2])), vjp=lambda p, c: (c, None), jit=False)
    with pytest.raises(ValueError, match="static_argnums"):
        check_grad(power_sum, (x, 3), grad=grad, static_argnums=(5,))
    with pytest.raises(ValueError, match="every primal"):
        check_grad(power_sum, (x, 3), grad=grad, static_argnums=(0, 1))


# --- a derivative of a broadcastable wrong shape ------------------------------------------------------


def row_mean_derivative(z):  # (n, m) -> (n, 1): broadcasts in dA * g'(Z)
    return jnp.mean(1 - jnp.tanh(z) ** 2, axis=1, keepdims=True)


def test_broadcast_activation_derivative_refused_in_check_gradients_and_check_activation():
    act = jaxnn.make_activation("tanh_rowmean", jnp.tanh, row_mean_derivative)
    net = jaxnn.Network((3, 4, 1), (act, "sigmoid"), "bce")
    params, X, Y = jaxnn.check.make_problem(net, 5, "float32", seed=0)
    with pytest.raises(ValueError) as e:
        check_gradients(params, X, Y, net)
    msg = str(e.value)
    assert "tanh_rowmean" in msg and "(4, 1)" in msg and "(4, 5)" in msg and "Fix" in msg, msg
    with pytest.raises(ValueError) as e:
        check_activation(act, Z=jnp.ones((3, 6)))
    msg = str(e.value)
    assert "tanh_rowmean" in msg and "(3, 1)" in msg and "(3, 6)" in msg and "Fix" in msg, msg
    # a constant derivative (a scalar) broadcasts exactly: accepted
    lin = jaxnn.make_activation("linear_const", lambda z: 2 * z, lambda z: 2.0)
    assert check_activation(lin).passed


def test_broadcast_backward_vjp_and_grad_refused_naming_both_shapes():
    net = jaxnn.Network((3, 4, 1), ("tanh", "sigmoid"), "bce")
    params, X, Y = jaxnn.check.make_problem(net, 5, "float32", seed=0)

    def backward(p, cache, Y, net):
        g = jaxnn.backward(p, cache, Y, net)
        g[0]["b"] = jnp.sum(g[0]["b"]) * jnp.ones((1, 1))  # (1, 1) for (4, 1)
        return g

    with pytest.raises(ValueError) as e:
        check_gradients(params, X, Y, net, backward=backward)
    msg = str(e.value)
    assert "db^[1]" in msg and "(1, 1)" in msg and "(4, 1)" in msg and "Fix" in msg, msg

    f = lambda W, x: jnp.tanh(W @ x)  # noqa: E731
    W, x = jnp.ones((2, 3)), jnp.ones((3, 4))
    with pytest.raises(ValueError) as e:  # dx summed over columns: (3, 1) for (3, 4)
        check_vjp(f, (W, x), vjp=lambda p, c: (c @ p[1].T, jnp.sum(p[0].T @ c, axis=1, keepdims=True)))
    msg = str(e.value)
    assert "primals[1]" in msg and "(3, 1)" in msg and "(3, 4)" in msg and "Fix" in msg, msg
    s = lambda W, x: jnp.sum(jnp.tanh(W @ x))  # noqa: E731
    with pytest.raises(ValueError) as e:
        check_grad(s, (W, x), grad=lambda W, x: (jnp.ones((2, 1)), jnp.ones((3, 4))))
    msg = str(e.value)
    assert "grad(*primals)" in msg and "primals[0]" in msg and "(2, 1)" in msg and "(2, 3)" in msg, msg
    assert "Fix" in msg
    assert np.isfinite(float(s(W, x)))
