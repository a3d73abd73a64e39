"""jaxnn.check.check_vjp / check_grad: planted bugs in functions that are not networks (conventions §3).

Each planted bug must be caught and located at the right primal leaf; the
same functions with the right rule must pass, also at an optimum and in
saturation, where the gradient is small next to the rounding of its terms.
Everything runs eagerly (``jit=False``): the primitives are compiled once
per shape and shared between tests.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn.check import GradientCheckError, check_grad, check_vjp

jax.config.update("jax_numpy_rank_promotion", "raise")

ALL = ("reference", "finite_difference", "jvp")
RNG = np.random.default_rng(0)


def arr(*shape, scale=1.0, dtype=jnp.float32):
    return jnp.asarray(scale * RNG.standard_normal(shape), dtype)


# --- layer norm: the mean term ------------------------------------------------------------------


def layer_norm(x, gamma, beta):
    mu = x.mean(-1, keepdims=True)
    s = jnp.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5)
    return gamma * (x - mu) / s + beta


def layer_norm_vjp(primals, c, *, drop_mean=False):
    x, gamma, _ = primals
    mu = x.mean(-1, keepdims=True)
    s = jnp.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5)
    xh, gh = (x - mu) / s, c * gamma
    mean_term = 0.0 if drop_mean else gh.mean(-1, keepdims=True)
    dx = (gh - mean_term - xh * (gh * xh).mean(-1, keepdims=True)) / s
    return dx, (c * xh).sum(0, keepdims=True), c.sum(0, keepdims=True)


LN_PRIMALS = (arr(4, 6), arr(1, 6), arr(1, 6))


def test_layer_norm_right_rule_passes_every_method():
    report = check_vjp(layer_norm, LN_PRIMALS, vjp=layer_norm_vjp, reference=layer_norm, methods=ALL)
    assert report.passed, str(report)
    assert report.kind == "check_vjp" and report.dtype == "float32"
    assert [n for n, _, _ in report["finite_difference"].leaf_errors] == [
        "primals[0]",
        "primals[1]",
        "primals[2]",
    ]
    assert report["finite_difference"].compared == 3 * (24 + 6 + 6)  # 3 cotangents x every entry
    assert "noise bound" in str(report)
    report.raise_if_failed()


def test_layer_norm_missing_mean_term_is_caught_at_x():
    bad = lambda p, c: layer_norm_vjp(p, c, drop_mean=True)  # noqa: E731
    report = check_vjp(layer_norm, LN_PRIMALS, vjp=bad, reference=layer_norm, methods=ALL)
    assert not report.passed
    for r in report.results:
        assert r.status == "FAIL" and r.worst_leaf == "primals[0]" and r.failed_leaves == ("primals[0]",), (
            r.method
        )
    assert report.worst_leaf == "primals[0]"
    worst = report["finite_difference"].worst_entries[0]
    assert worst.leaf == "primals[0]" and worst.cotangent in (0, 1, 2)
    assert abs(worst.manual - worst.reference) > 1e3 * worst.noise
    with pytest.raises(GradientCheckError, match=r"FAILED at primals\[0\]"):
        report.raise_if_failed()


# --- matmul: a transposed operand ---------------------------------------------------------------


def test_matmul_vjp_with_a_transposed_operand_is_caught_at_that_operand():
    A, B = arr(3, 4), arr(4, 4)  # B square, so B and B.T have the same shape
    good = lambda p, c: (c @ p[1].T, p[0].T @ c)  # noqa: E731
    bad = lambda p, c: (c @ p[1], p[0].T @ c)  # noqa: E731
    f = lambda A, B: A @ B  # noqa: E731
    assert check_vjp(f, (A, B), vjp=good, reference=f).passed
    report = check_vjp(f, (A, B), vjp=bad, reference=f)
    assert not report.passed and report.worst_leaf == "primals[0]"
    assert report["finite_difference"].failed_leaves == ("primals[0]",)


# --- logsumexp as a custom_vjp with the softmax on the wrong axis --------------------------------


def make_logsumexp(axis):
    @jax.custom_vjp
    def lse(x):
        return jax.nn.logsumexp(x, axis=0)

    def fwd(x):
        return lse(x), x

    def bwd(x, c):
        return (c[None, :] * jax.nn.softmax(x, axis=axis),)

    lse.defvjp(fwd, bwd)
    return lse


def test_logsumexp_custom_rule():
    x = arr(3, 5, scale=3.0)
    plain = lambda x: jax.nn.logsumexp(x, axis=0)  # noqa: E731
    ok = check_vjp(make_logsumexp(0), (x,), reference=plain, methods=ALL)
    assert ok.passed, str(ok)
    bad = check_vjp(make_logsumexp(1), (x,), reference=plain)
    assert not bad.passed and bad.worst_leaf == "primals[0]"
    # without a reference, finite differences alone still catch it: f is never its own reference
    assert not check_vjp(make_logsumexp(1), (x,)).passed
    with pytest.raises(ValueError, match="reference is f itself"):
        check_vjp(plain, (x,), reference=plain)


# --- a residual block: the skip gradient -------------------------------------------------------


def residual(params, x):
    return x + params["W2"] @ jnp.tanh(params["W1"] @ x + params["b1"])


def residual_vjp(primals, c, *, skip=True):
    params, x = primals
    Z = params["W1"] @ x + params["b1"]
    dZ = (params["W2"].T @ c) * (1 - jnp.tanh(Z) ** 2)
    dx = params["W1"].T @ dZ + (c if skip else 0.0)
    grads = {"W1": dZ @ x.T, "b1": dZ.sum(1, keepdims=True), "W2": c @ jnp.tanh(Z).T}
    return grads, dx


def test_residual_block_skip_gradient_is_caught_at_x():
    params = {"W1": arr(5, 3), "b1": arr(5, 1), "W2": arr(3, 5)}
    x = arr(3, 4)
    ok = check_vjp(residual, (params, x), vjp=residual_vjp, reference=residual, methods=ALL)
    assert ok.passed, str(ok)
    names = [n for n, _, _ in ok["reference"].leaf_errors]
    assert names == ["primals[0]['W1']", "primals[0]['W2']", "primals[0]['b1']", "primals[1]"]
    bad = check_vjp(
        residual, (params, x), vjp=lambda p, c: residual_vjp(p, c, skip=False), reference=residual, jit=False
    )
    assert not bad.passed
    for r in bad.results:
        assert r.failed_leaves == ("primals[1]",), (r.method, r.failed_leaves)


# --- a custom_vjp rule 1% off, and a 1.001-scaled rule in float32 --------------------------------


def scaled_softplus(scale):
    @jax.custom_vjp
    def softplus(x):
        return jax.nn.softplus(x)

    softplus.defvjp(lambda x: (jax.nn.softplus(x), x), lambda x, c: (scale * jax.nn.sigmoid(x) * c,))
    return softplus


@pytest.mark.parametrize("scale", [1.01, 1.001])
def test_custom_vjp_rule_off_is_caught(scale):
    x = arr(4, 6)
    report = check_vjp(scaled_softplus(scale), (x,), reference=jax.nn.softplus, methods=ALL)
    assert not report.passed
    assert {r.status for r in report.results} == {"FAIL"}
    assert report.errors["reference"] == pytest.approx((scale - 1) / (scale + 1), rel=1e-2)
    assert check_vjp(scaled_softplus(1.0), (x,), reference=jax.nn.softplus, methods=ALL).passed


# --- a two-output function ---------------------------------------------------------------------


def two_outputs(x, y):
    return {"prod": x * y, "mix": jnp.sin(x) + y**2}


def two_outputs_vjp(primals, c, *, forget_mix=False):
    x, y = primals
    dy = c["prod"] * x + (0.0 if forget_mix else 2 * y * c["mix"])
    return c["prod"] * y + c["mix"] * jnp.cos(x), dy


def test_two_output_function():
    x, y = arr(3, 2), arr(3, 2)
    ok = check_vjp(two_outputs, (x, y), vjp=two_outputs_vjp, reference=two_outputs, methods=ALL)
    assert ok.passed, str(ok)
    bad = check_vjp(
        two_outputs, (x, y), vjp=lambda p, c: two_outputs_vjp(p, c, forget_mix=True), reference=two_outputs
    )
    assert not bad.passed and bad.worst_leaf == "primals[1]"
    assert bad["finite_difference"].failed_leaves == ("primals[1]",)


# --- converged and saturated: correct rules pass ---------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_least_squares_at_its_optimum(dtype):
    with jax.enable_x64(dtype == "float64"):
        rng = np.random.default_rng(3)
        X = rng.standard_normal((40, 3)) * 10
        y = X @ np.array([1.0, -2.0, 0.5]) + 100 + 0.01 * rng.standard_normal(40)
        A = np.hstack([X, np.ones((40, 1))])
        w_star = np.linalg.lstsq(A, y, rcond=None)[0]
        Aj, yj = jnp.asarray(A, dtype), jnp.asarray(y, dtype)
        f = lambda w: jnp.mean((Aj @ w - yj) ** 2)  # noqa: E731
        grad = lambda w: 2 * Aj.T @ (Aj @ w - yj) / 40  # noqa: E731
        report = check_grad(f, (jnp.asarray(w_star, dtype),), grad=grad, reference=f, methods=ALL)
    assert report.passed, str(report)
    # the gradient is pure rounding here: the noise floor, not rtol, is what makes it pass
    assert report.errors["reference"] > report["reference"].threshold
    assert report.errors["reference"] <= report["reference"].threshold + report.noise["reference"]
    bad = lambda w: 2.02 * Aj.T @ (Aj @ w - yj) / 40  # noqa: E731
    with jax.enable_x64(dtype == "float64"):
        w_off = jnp.asarray(w_star + 0.1, dtype)  # away from the optimum a 1% error shows
        assert not check_grad(f, (w_off,), grad=bad).passed


def test_saturated_tanh():
    W, x = arr(4, 3, scale=30.0), arr(3, 5)
    y = arr(4, 5)
    f = lambda W, x: jnp.sum((jnp.tanh(W @ x) - y) ** 2)  # noqa: E731

    def grad(W, x):
        d = 2 * (jnp.tanh(W @ x) - y) * (1 - jnp.tanh(W @ x) ** 2)
        return d @ x.T, W.T @ d

    assert float(jnp.mean(jnp.abs(W @ x) > 10)) > 0.5
    report = check_grad(f, (W, x), grad=grad, reference=f, methods=ALL)
    assert report.passed, str(report)


def test_check_grad_bare_pytree_and_custom_rule():
    params = {"w": arr(3), "b": arr()}
    f = lambda p: jnp.sum(jnp.tanh(p["w"]) * p["b"])  # noqa: E731
    grad = lambda p: {"w": (1 - jnp.tanh(p["w"]) ** 2) * p["b"], "b": jnp.sum(jnp.tanh(p["w"]))}  # noqa: E731
    report = check_grad(f, (params,), grad=grad, reference=f)
    assert report.passed and report.kind == "check_grad"
    assert [n for n, _, _ in report["reference"].leaf_errors] == ["primals[0]['b']", "primals[0]['w']"]
    assert check_grad(f, (params,), grad=lambda p: (grad(p),)).passed  # the 1-tuple too
    wrong = lambda p: {"w": (1 - jnp.tanh(p["w"]) ** 2) * p["b"], "b": 1.01 * jnp.sum(jnp.tanh(p["w"]))}  # noqa: E731
    report = check_grad(f, (params,), grad=wrong)
    assert not report.passed and report.worst_leaf == "primals[0]['b']"


# --- bad input ------------------------------------------------------------------------------------


def test_rule_with_the_wrong_shape_names_the_leaf_and_both_shapes():
    params = {"W": arr(3, 4), "b": arr(3, 1)}
    x = arr(4, 5)
    f = lambda p, x: p["W"] @ x + p["b"]  # noqa: E731

    def broadcastable(p, c):  # db not summed over the columns: (3, 5) would broadcast silently
        return {"W": c @ x.T, "b": c}, p[0]["W"].T @ c

    with pytest.raises(
        ValueError, match=r"returned shape \(3, 5\) for primals\[0\]\['b'\], whose shape is \(3, 1\)"
    ):
        check_vjp(f, (params, x), vjp=broadcastable)
    with pytest.raises(ValueError, match=r"returned dtype float16 for primals\[1\]"):
        check_vjp(
            f,
            (params, x),
            vjp=lambda p, c: (
                {"W": c @ x.T, "b": c.sum(1, keepdims=True)},
                (p[0]["W"].T @ c).astype(jnp.float16),
            ),
        )
    with pytest.raises(ValueError, match=r"cotangent for primals\[0\] has structure"):
        check_vjp(f, (params, x), vjp=lambda p, c: ({"W": c @ x.T}, p[0]["W"].T @ c))
    with pytest.raises(ValueError, match="one cotangent per primal"):
        check_vjp(f, (params, x), vjp=lambda p, c: p[0]["W"].T @ c)
    g = lambda w: jnp.sum(w**2)  # noqa: E731
    with pytest.raises(
        ValueError, match=r"returned shape \(3, 1\) for primals\[0\], whose shape is \(3, 4\)"
    ):
        check_grad(g, (arr(3, 4),), grad=lambda w: (2 * w[:, :1],))


@pytest.mark.parametrize("bad", [jnp.nan, jnp.inf])
def test_non_finite_primals(bad):
    with pytest.raises(
        ValueError, match=r"check_vjp: primals\[1\]\['x'\] holds NaN or inf \(first at index \(0, 1\)"
    ):
        check_vjp(lambda a, d: a * d["x"], (arr(2, 2), {"x": arr(2, 2).at[0, 1].set(bad)}))


def test_bad_functions_and_options():
    x = arr(3)
    with pytest.raises(ValueError, match=r"f returned out of dtype int32"):
        check_vjp(lambda x: jnp.argmax(x), (x,))
    with pytest.raises(ValueError, match=r"primals\[0\] has dtype int32"):
        check_vjp(lambda x: x * 1.0, (jnp.arange(3),))
    with pytest.raises(ValueError, match="primals must be a tuple"):
        check_vjp(jnp.sin, x)
    with pytest.raises(ValueError, match="f must return one scalar"):
        check_grad(jnp.sin, (x,))
    with pytest.raises(ValueError, match=r"f\(\*primals\) is not finite in out"):
        check_vjp(jnp.log, (x.at[0].set(-1.0),))
    with pytest.raises(ValueError, match="need reference="):
        check_vjp(jnp.sin, (x,), methods=("jvp",))
    with pytest.raises(ValueError, match="choose one or more of"):
        check_vjp(jnp.sin, (x,), methods=("autodiff",))
    with pytest.raises(ValueError, match="eps = 0"):
        check_vjp(jnp.sin, (x,), eps=0)
    with pytest.raises(ValueError, match=r"f\(\*primals\) failed"):
        check_vjp(lambda x: x @ jnp.ones((5, 5)), (x,))


def test_jvp_of_a_custom_vjp_reference_is_skipped_not_a_type_error():
    x = arr(3)
    sp = scaled_softplus(1.0)
    report = check_vjp(jax.nn.softplus, (x,), reference=sp, methods=ALL)
    assert report["jvp"].status == "skipped" and "jax.jvp cannot" in report["jvp"].note
    assert report.passed


def test_large_leaves_use_random_directions_and_jit_agrees():
    W = arr(8, 8)
    f = lambda W: jnp.tanh(W) * 2.0  # noqa: E731
    rule = lambda p, c: (c * 2.0 * (1 - jnp.tanh(p[0]) ** 2),)  # noqa: E731
    eager = check_vjp(f, (W,), vjp=rule, reference=f, max_entries=10)
    compiled = check_vjp(f, (W,), vjp=rule, reference=f, max_entries=10, jit=True)
    assert eager.passed and compiled.passed
    assert "random unit directions" in eager["finite_difference"].strategy
    assert eager["finite_difference"].compared == 3 * 4
    assert abs(eager.errors["finite_difference"] - compiled.errors["finite_difference"]) < 1e-8
    wrong = lambda p, c: (c * 2.002 * (1 - jnp.tanh(p[0]) ** 2),)  # noqa: E731
    assert not check_vjp(f, (W,), vjp=wrong, max_entries=10).passed
