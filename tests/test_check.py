"""jaxnn.check: check_gradients, check_activation, check_loss, the sweep (conventions §3).

Most networks here have the sweep's shapes (width 4, m = 8) and run with
``jit=False``, so the eagerly compiled primitives are shared between tests.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import pytest
from jax import test_util as jax_test_util

import jaxnn
from jaxnn.check import (
    SWEEP_HIDDEN,
    SWEEP_PAIRINGS,
    GradientCheckError,
    GradientReport,
    check_activation,
    check_gradients,
    check_loss,
    make_problem,
    run_sweep,
    sweep_cases,
)
from jaxnn.core.custom_vjp import cost_with_manual_vjp

jax.config.update("jax_numpy_rank_promotion", "raise")  # also in conftest; harmless twice

ALL = ("autodiff", "finite_difference", "jvp")
AUTODIFF_TOL = {"float32": 1e-5, "float64": 1e-10}  # conventions §3


def scaled_tanh(scale, name):
    """tanh whose hand-written derivative is off by the factor ``scale``."""
    return jaxnn.make_activation(name, jnp.tanh, lambda z: scale * (1 - jnp.tanh(z) ** 2))


def problem(acts, loss, dtype="float32", m=8, width=4, seed=0):
    net = jaxnn.Network((width,) * (len(acts) + 1), acts, loss)
    return (net, *make_problem(net, m, dtype, seed))


# --- correct gradients pass -------------------------------------------------------------------

# The breadth (every activation x pairing x depth) is the sweep's, below and in
# test_cli_gradcheck; these look at a report in detail.
GOOD = [
    (("relu", "softmax"), "cross_entropy"),
    (("tanh", "leaky_relu", "sigmoid"), "bce"),
]


@pytest.mark.parametrize(
    "acts, loss, dtype",
    [(*case, "float32") for case in GOOD] + [(*GOOD[1], "float64")],
)
def test_builtin_networks_pass_every_method(acts, loss, dtype):
    with jax.enable_x64(dtype == "float64"):
        net, params, X, Y = problem(acts, loss, dtype)
        report = check_gradients(params, X, Y, net, methods=ALL, jit=False)
    assert report.passed, str(report)
    assert report.dtype == dtype
    assert report["autodiff"].dtype == dtype
    assert report["finite_difference"].dtype == report["jvp"].dtype == "float64"
    assert report.errors["autodiff"] <= AUTODIFF_TOL[dtype]
    assert report.errors["finite_difference"] <= 1e-6
    assert report.errors["jvp"] <= 1e-10
    n_params = sum(a.size for p in params for a in p.values())
    assert report["autodiff"].compared == report["finite_difference"].compared == n_params
    assert [(l, p) for l, p, _ in report["finite_difference"].param_errors] == [
        (l, p) for l in range(1, net.L + 1) for p in ("W", "b")
    ]
    assert "every entry" in report["finite_difference"].strategy
    assert report.worst_layer is None and report.worst_param is None


def test_jit_and_eager_give_the_same_report():
    net, params, X, Y = problem(("softmax",), "cross_entropy")
    eager = check_gradients(params, X, Y, net, methods=ALL, jit=False)
    compiled = check_gradients(params, X, Y, net, methods=ALL, jit=True)
    assert compiled.passed and eager.passed
    # same perturbations and directions: the results differ only by rounding (XLA fuses differently)
    for method, rounding in (("autodiff", 1e-6), ("finite_difference", 1e-9), ("jvp", 1e-14)):
        assert abs(compiled.errors[method] - eager.errors[method]) <= rounding
        assert compiled[method].compared == eager[method].compared
    assert abs(compiled.cost - eager.cost) <= 1e-12


def test_default_methods_are_autodiff_and_finite_differences():
    net, params, X, Y = problem(("relu", "sigmoid"), "bce")
    report = check_gradients(params, X, Y, net, jit=False)
    assert [r.method for r in report.results] == ["autodiff", "finite_difference"]
    assert report.passed


def test_report_is_immutable_and_readable():
    net, params, X, Y = problem(("relu", "softmax"), "cross_entropy")
    report = check_gradients(params, X, Y, net, methods=ALL, jit=False)
    assert isinstance(report, GradientReport)
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.eps = 1.0
    text = str(report)
    for word in ("autodiff", "finite_difference", "jvp", "W^[1]", "b^[2]", "threshold", "PASSED"):
        assert word in text
    report.raise_if_failed()  # passes: no exception
    assert report["jvp"].method == "jvp"
    with pytest.raises(KeyError, match="not among"):
        report["nope"]
    errors = report.errors
    errors["autodiff"] = 99.0
    assert report.errors["autodiff"] != 99.0  # a copy


def test_l2_and_dropout_are_checked_too():
    net, params, X, Y = problem(("relu", "tanh", "softmax"), "cross_entropy")
    report = check_gradients(params, X, Y, net, methods=ALL, l2=0.3, jit=False)
    assert report.passed, str(report)
    # dropout with a fixed key: the mask is the same in both passes
    report = check_gradients(
        params, X, Y, net, l2=0.3, key=jax.random.key(1), keep_prob=0.7, methods=("autodiff",), jit=False
    )
    assert report.passed, str(report)
    bad = scaled_tanh(1.001, "tanh_1001_dropout")
    net_bad = jaxnn.Network(net.layer_sizes, ("relu", bad, "softmax"), "cross_entropy")
    assert not check_gradients(params, X, Y, net_bad, l2=0.3, jit=False).passed


# --- wrong derivatives are caught, and localized ------------------------------------------


def test_derivative_off_by_0p1_percent_in_float32_is_caught_at_its_layer():
    bad = scaled_tanh(1.001, "tanh_1001")
    net, params, X, Y = problem(("relu", bad, "softmax"), "cross_entropy")
    assert params[0]["W"].dtype == jnp.float32
    report = check_gradients(params, X, Y, net, methods=ALL, jit=False)
    assert not report.passed
    for r in report.results:
        assert r.status == "FAIL", r.method
        # dZ^[2] is scaled by 1.001: layers 1 and 2 are off by 0.1 %, layer 3 is exact
        assert 1e-4 < r.error < 1e-3
        assert r.worst_layer == 2
        assert r.layer_errors[2] <= r.threshold
    assert report.worst_layer == 2
    assert report.worst_param in ("W^[2]", "b^[2]")
    with pytest.raises(GradientCheckError, match=r"layer 2"):
        report.raise_if_failed()

    # control: the same network with the right derivative passes
    good = scaled_tanh(1.0, "tanh_ok")
    net_ok = jaxnn.Network(net.layer_sizes, ("relu", good, "softmax"), "cross_entropy")
    assert check_gradients(params, X, Y, net_ok, methods=ALL, jit=False).passed


def test_jax_check_grads_at_float32_defaults_misses_what_check_gradients_catches():
    # The reason jaxnn upcasts to float64 and compares the whole gradient:
    # jax.test_util.check_grads compares one random direction in float32 with a
    # 2e-3 tolerance, and lets the 0.1 % error through.
    bad = scaled_tanh(1.001, "tanh_1001b")
    net, params, X, Y = problem(("relu", bad, "softmax"), "cross_entropy")
    jax_test_util.check_grads(
        lambda p: cost_with_manual_vjp(p, X, Y, net), (params,), order=1, modes=("rev",)
    )
    assert not check_gradients(params, X, Y, net, jit=False).passed


@pytest.mark.parametrize("bad_layer", [1, 2, 3])
def test_wrong_activation_derivative_is_localized(bad_layer):
    acts = ["tanh", "tanh", "tanh"]
    acts[bad_layer - 1] = scaled_tanh(1.05, f"tanh_bad{bad_layer}")
    net, params, X, Y = problem(tuple(acts), "mse")
    report = check_gradients(params, X, Y, net, methods=ALL, jit=False)
    assert not report.passed
    assert {r.worst_layer for r in report.results} == {bad_layer}
    assert report.worst_param.endswith(f"^[{bad_layer}]")
    # the layers above the bad one are untouched
    for r in report.results:
        assert all(e <= r.threshold for e in r.layer_errors[bad_layer:])
        assert r.worst_entries[0].layer <= bad_layer


def test_wrong_loss_derivative_points_at_the_output_layer():
    # the classic slip: d/dA (y - a)^2 written as (a - y), the factor 2 lost
    half = jaxnn.make_loss("mse_half", jaxnn.losses.mse, lambda A, Y: A - Y)
    net, params, X, Y = problem(("relu", "tanh", "identity"), half)
    report = check_gradients(params, X, Y, net, methods=ALL, jit=False)
    assert not report.passed
    assert report.worst_layer == 3
    assert report.errors["finite_difference"] == pytest.approx(1 / 3, rel=1e-3)  # |g - 2g| / (|g| + |2g|)
    assert not check_loss(half).passed


def test_nan_derivative_is_a_failure_with_the_input_that_caused_it():
    L = jaxnn.losses.mse
    nan_above = jaxnn.make_loss("mse_nan", L, lambda A, Y: jnp.where(A > 0.5, jnp.nan, 2 * (A - Y)))
    net, params, X, Y = problem(("tanh", "identity"), nan_above)
    report = check_gradients(params, X, Y, net, jit=False)
    assert not report.passed
    assert "non-finite" in report["autodiff"].note
    assert math.isnan(report["autodiff"].worst_entries[0].manual)

    loss_report = check_loss(nan_above)
    assert not loss_report.passed
    assert "nan" in loss_report.worst.manual
    AL_of_worst = [
        float(v)
        for v in loss_report.worst.where.split("AL[:,")[1].split("=")[1].split("]")[0].strip(" [").split()
    ]
    assert max(AL_of_worst) > 0.5  # the reported input is one where dL/dA is NaN
    assert "FAILED" in str(loss_report)


# --- finite differences: directions, kinks --------------------------------------------------


def test_random_directions_for_large_leaves():
    net, params, X, Y = problem(("relu", "tanh", "softmax"), "cross_entropy")
    report = check_gradients(params, X, Y, net, methods=("finite_difference",), max_entries=10, jit=False)
    assert report.passed, str(report)
    assert "random unit directions" in report["finite_difference"].strategy
    assert "every entry of b^[1]" in report["finite_difference"].strategy  # b leaves are small

    bad = scaled_tanh(1.001, "tanh_1001c")
    net_bad = jaxnn.Network(net.layer_sizes, ("relu", bad, "softmax"), "cross_entropy")
    report = check_gradients(params, X, Y, net_bad, methods=("finite_difference",), max_entries=10, jit=False)
    assert not report.passed and report.worst_layer == 2
    report = check_gradients(
        params, X, Y, net, methods=("finite_difference",), fd_mode="directions", jit=False
    )
    assert report.passed and "every entry" not in report["finite_difference"].strategy


def _central_difference(params, X, Y, net, layer, name, index, eps=1e-6):
    def J(delta):
        p = [dict(q) for q in params]
        p[layer][name] = p[layer][name].at[index].add(delta)
        return float(jaxnn.cost(p, X, Y, net))

    return (J(eps) - J(-eps)) / (2 * eps)


def test_pre_activation_next_to_a_relu_kink_is_excluded_not_a_false_alarm(x64):
    net, params, X, Y = problem(("relu", "identity"), "mse", dtype="float64")
    # put Z^[1][0, 0] at 3e-7: a ±1e-6 step on b^[1][0] crosses the kink
    params[0]["b"] = params[0]["b"].at[0, 0].set(3e-7 - params[0]["W"][0] @ X[:, 0])
    _, grads = jaxnn.value_and_manual_grad(params, X, Y, net)
    fd = _central_difference(params, X, Y, net, 0, "b", (0, 0))
    # the naive finite difference really is wrong there: a check that kept it would fail
    assert abs(fd - float(grads[0]["b"][0, 0])) / float(jaxnn.tree_norm(grads)) > 1e-6

    report = check_gradients(params, X, Y, net, methods=ALL, jit=False)
    assert report.passed, str(report)
    fdr = report["finite_difference"]
    assert fdr.excluded >= 1 and "kink" in fdr.note
    assert fdr.compared + fdr.excluded == sum(a.size for p in params for a in p.values())


def test_pre_activations_exactly_at_a_kink(x64):
    net, params, X, Y = problem(("relu", "identity"), "mse", dtype="float64")
    X = X.at[:, 0].set(0.0)
    params[0]["b"] = jnp.zeros_like(params[0]["b"])  # Z^[1][:, 0] == 0 exactly
    report = check_gradients(params, X, Y, net, methods=ALL, jit=False)
    assert report.passed, str(report)
    assert report["autodiff"].excluded == 0  # built-in relu follows JAX's relu'(0) = 0
    assert report["finite_difference"].excluded >= 1

    # a custom ReLU with the other convention, relu'(0) = 1, declared with its kink:
    # the examples on the kink are left out of the autodiff/jvp comparison
    relu_ge = jaxnn.make_activation(
        "relu_ge", jax.nn.relu, lambda z: jnp.where(z >= 0, 1.0, 0.0), kinks=(0.0,)
    )
    net_ge = jaxnn.Network(net.layer_sizes, (relu_ge, "identity"), "mse")
    report = check_gradients(params, X, Y, net_ge, methods=ALL, jit=False)
    assert report.passed, str(report)
    assert report["autodiff"].excluded == 1 and "kink" in report["autodiff"].note
    # ... and the kink is the whole story: without declaring it, the conventions clash
    relu_nokink = jaxnn.make_activation("relu_ge_nokink", jax.nn.relu, lambda z: jnp.where(z >= 0, 1.0, 0.0))
    net_nk = jaxnn.Network(net.layer_sizes, (relu_nokink, "identity"), "mse")
    assert not check_gradients(params, X, Y, net_nk, methods=("autodiff",), jit=False).passed


# --- bad input: clear errors ---------------------------------------------------------------


@pytest.fixture
def small():
    return problem(("relu", "softmax"), "cross_entropy")


def test_params_that_do_not_match_the_network(small):
    net, params, X, Y = small
    wrong = [dict(params[0], W=params[0]["W"][:, :3]), params[1]]
    with pytest.raises(
        ValueError, match=r"check_gradients: layer 1: W has shape \(4, 3\), expected \(4, 4\)"
    ):
        check_gradients(wrong, X, Y, net)
    with pytest.raises(ValueError, match="params has 1 layers but the Network has L = 2"):
        check_gradients(params[:1], X, Y, net)
    with pytest.raises(ValueError, match="bias must be a column"):
        check_gradients([dict(params[0], b=params[0]["b"][:, 0]), params[1]], X, Y, net)


@pytest.mark.parametrize("eps", [0.0, -1e-6, float("nan"), float("inf"), "1e-6", True])
def test_bad_eps(small, eps):
    net, params, X, Y = small
    with pytest.raises(ValueError, match="eps = .* must be a finite number > 0"):
        check_gradients(params, X, Y, net, eps=eps)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"methods": ("magic",)}, "choose one or more of"),
        ({"methods": ()}, "choose one or more of"),
        ({"thresholds": {"autodiff": 0.0}}, r"thresholds\['autodiff'\]"),
        ({"thresholds": {"fd": 1e-3}}, "unknown method 'fd'"),
        ({"fd_mode": "all"}, "fd_mode"),
        ({"n_directions": 0}, "n_directions"),
        ({"kink_margin": 0.5}, "kink_margin"),
        ({"l2": -1.0}, "l2"),
        ({"keep_prob": 0.5}, "needs a fixed PRNG key"),
    ],
)
def test_bad_options(small, kwargs, match):
    net, params, X, Y = small
    with pytest.raises(ValueError, match=match):
        check_gradients(params, X, Y, net, **kwargs)


def test_bad_data(small):
    net, params, X, Y = small
    with pytest.raises(ValueError, match="one COLUMN per example"):
        check_gradients(params, jnp.ones((8, 4)), Y, net)
    with pytest.raises(ValueError, match=r"Y has shape \(8, 4\)"):
        check_gradients(params, X, Y.T, net)
    with pytest.raises(ValueError, match=r"check_gradients: X holds NaN or inf: first in column 2"):
        check_gradients(params, X.at[1, 2].set(jnp.nan), Y, net)
    with pytest.raises(ValueError, match=r"check_gradients: Y holds NaN or inf: first in column 5"):
        check_gradients(params, X, Y.at[0, 5].set(jnp.inf), net)
    with pytest.raises(ValueError, match=r"check_gradients: b\^\[2\] \(layer 2 b\) holds NaN or inf"):
        check_gradients([params[0], dict(params[1], b=params[1]["b"].at[1, 0].set(jnp.nan))], X, Y, net)
    with pytest.raises(ValueError, match="jaxnn.Network"):
        check_gradients(params, X, Y, "net")


def test_custom_derivative_with_the_wrong_shape(small):
    net, params, X, Y = small
    transposed = jaxnn.make_activation("tanh_T", jnp.tanh, lambda z: (1 - jnp.tanh(z) ** 2).T)
    bad_net = jaxnn.Network(net.layer_sizes, (transposed, "softmax"), "cross_entropy")
    with pytest.raises(ValueError, match=r"layer 1: activation 'tanh_T'.*same shape as Z"):
        check_gradients(params, X, Y, bad_net)
    with pytest.raises(ValueError, match=r"activation 'tanh_T'.*same shape as Z"):
        check_activation(transposed)
    summed = jaxnn.make_loss("mse_summed", jaxnn.losses.mse, lambda A, Y: jnp.sum(2 * (A - Y), axis=0))
    loss_net = jaxnn.Network(net.layer_sizes, ("relu", "identity"), summed)
    with pytest.raises(
        ValueError, match=r"loss 'mse_summed': backward\(AL, Y\) returned shape \(8,\), expected \(4, 8\)"
    ):
        check_gradients(params, X, jnp.zeros((4, 8)), loss_net)
    with pytest.raises(ValueError, match="loss 'mse_summed'"):
        check_loss(summed)


# --- check_activation / check_loss -----------------------------------------------------------


@pytest.mark.parametrize("name", list(jaxnn.ACTIVATIONS))
def test_builtin_activations_pass(name):
    report = check_activation(name)
    assert report.passed, str(report)
    assert report.error <= 1e-10 and report.n_points > 100


def test_custom_activation_pass_and_fail():
    swish = jaxnn.make_activation(
        "swish",
        lambda z: z * jax.nn.sigmoid(z),
        lambda z: jax.nn.sigmoid(z) * (1 + z * (1 - jax.nn.sigmoid(z))),
    )
    assert check_activation(swish).passed
    textbook_tanh = jaxnn.make_activation("tanh_textbook", jnp.tanh, lambda z: 1 - jnp.tanh(z) ** 2)
    assert check_activation(textbook_tanh).passed  # cancellation at large |z| is not an error
    assert check_activation(scaled_tanh(1.0, "tanh_same"), dtype="float32").passed

    report = check_activation(scaled_tanh(1.001, "tanh_1001d"))
    assert not report.passed and 4e-4 < report.error < 6e-4
    assert report.worst.where.startswith("z = ")
    with pytest.raises(GradientCheckError, match="tanh_1001d"):
        report.raise_if_failed()
    assert not check_activation(scaled_tanh(1.001, "tanh_1001e"), dtype="float32").passed


def test_activation_derivative_that_overflows_at_large_z():
    # softplus' = e^z / (1 + e^z) is NaN (inf/inf) once e^z overflows, at z ≈ 710
    naive = jaxnn.make_activation("softplus_naive", jax.nn.softplus, lambda z: jnp.exp(z) / (1 + jnp.exp(z)))
    report = check_activation(naive)
    assert not report.passed
    assert report.worst.where.startswith("z = 750.0")
    assert "nan" in report.worst.manual
    stable = jaxnn.make_activation("softplus", jax.nn.softplus, jax.nn.sigmoid)
    assert check_activation(stable).passed


@pytest.mark.parametrize(
    "loss, activation",
    [("bce", None), ("cross_entropy", None), ("mse", None), ("mse", "softmax"), ("mse", "sigmoid")],
)
def test_builtin_losses_pass(loss, activation):
    report = check_loss(loss, activation=activation)
    assert report.passed, str(report)
    assert report.n_points >= 40


def test_wrong_loss_derivative_is_caught():
    bce_off = jaxnn.make_loss(
        "bce_off", jaxnn.losses.bce, lambda A, Y: 1.001 * (A - Y) / (A * (1 - A)), activations=("sigmoid",)
    )
    report = check_loss(bce_off)
    assert not report.passed and report.error == pytest.approx(0.001 / 2.001, rel=1e-3)
    assert "example" in report.worst.where
    with pytest.raises(ValueError, match="give both AL and Y"):
        check_loss("mse", AL=jnp.ones((2, 3)))
    mine = check_loss("mse", AL=jnp.array([[0.5, 2.0]]), Y=jnp.array([[1.0, 1.0]]))
    assert mine.passed and mine.n_points == 2


# --- the sweep --------------------------------------------------------------------------------


def test_sweep_covers_every_activation_pairing_and_depth():
    assert set(SWEEP_HIDDEN) == set(jaxnn.ACTIVATIONS)
    assert set(SWEEP_PAIRINGS) == {
        ("sigmoid", "bce"),
        ("softmax", "cross_entropy"),
        *((a, "mse") for a in jaxnn.ACTIVATIONS),
    }
    cases = sweep_cases()
    assert len(cases) == 8 + 3 * 6 * 8 == len(set(cases))
    assert {len(acts) for acts, _ in cases} == {1, 2, 3, 4}
    for acts, loss in cases:
        jaxnn.Network((4,) * (len(acts) + 1), acts, loss)  # every case is a valid network


def test_run_sweep_deep_cases():
    # depths 1-2 in full are in test_cli_gradcheck; here every hidden activation
    # and every pairing at least once at depths 3 and 4
    rows = run_sweep(depths=(4,), hidden=SWEEP_HIDDEN[::2], pairings=SWEEP_PAIRINGS[::2]) + run_sweep(
        depths=(3,), hidden=SWEEP_HIDDEN[1::2], pairings=SWEEP_PAIRINGS[1::2]
    )
    assert len(rows) == 3 * 4 + 3 * 4
    assert all(r.passed for r in rows), "\n".join(str(r.report) for r in rows if not r.passed)
    assert max(r.autodiff for r in rows) <= 1e-5
    assert max(r.finite_difference for r in rows) <= 1e-6
    assert max(r.jvp for r in rows) <= 1e-10
    assert all(r.seconds > 0 for r in rows)


# --- a student's own backward ------------------------------------------------------------------


def student_backward(params, cache, Y, net, *, slip=None):
    """The delta recursion written out by hand for tanh hidden layers and a softmax + CE output."""
    m = Y.shape[1]
    grads = [None] * len(params)
    dZ = cache[-1]["A"] - Y
    for l in range(len(params) - 1, -1, -1):
        A_prev = cache[l]["A_prev"]
        grads[l] = {"W": dZ @ A_prev.T / m, "b": jnp.sum(dZ, axis=1, keepdims=True) / m}
        if slip == "no_bias_sum":
            grads[l]["b"] = dZ / m
        if l:
            dA = params[l]["W"].T @ dZ
            dZ = dA * (1 - A_prev**2) * (1.001 if slip == "tanh_0p1" and l == 1 else 1.0)
    return grads


def test_student_backward_is_checked_and_its_bug_located():
    net, params, X, Y = problem(("tanh", "tanh", "softmax"), "cross_entropy")
    report = check_gradients(params, X, Y, net, backward=student_backward, methods=ALL, jit=False)
    assert report.passed, str(report)
    assert "backward = student_backward" in str(report)
    bad = lambda p, c, Y, net: student_backward(p, c, Y, net, slip="tanh_0p1")  # noqa: E731
    report = check_gradients(params, X, Y, net, backward=bad, methods=ALL, jit=False)
    assert not report.passed and report.worst_layer == 1  # dZ^[1] is the one scaled
    no_sum = r"backward returned db\^\[1\] of shape \(4, 8\) .* expected \(4, 1\)"
    with pytest.raises(ValueError, match=no_sum):
        check_gradients(params, X, Y, net, backward=lambda p, c, Y, net: student_backward(p, c, Y, net,
                                                                                           slip="no_bias_sum"))
    with pytest.raises(ValueError, match="expected a list of 3"):
        check_gradients(params, X, Y, net, backward=lambda p, c, Y, net: {"W": 0})
    with pytest.raises(ValueError, match="without λ"):
        check_gradients(params, X, Y, net, backward=student_backward, l2=0.1)


def test_report_states_the_pre_activation_range_exercised():
    net, params, X, Y = problem(("tanh", "softmax"), "cross_entropy")
    report = check_gradients(params, X, Y, net, jit=False)
    assert [c.layer for c in report.coverage] == [1, 2]
    _, cache = jaxnn.forward(params, X, net)
    Z1 = cache[0]["Z"]
    assert report.coverage[0].z_min == pytest.approx(float(Z1.min()), rel=1e-6)
    assert report.coverage[0].z_max == pytest.approx(float(Z1.max()), rel=1e-6)
    assert report.coverage[0].beyond_4 == float(jnp.mean(jnp.abs(Z1) > 4))
    assert "share |z| > 4" in str(report)


# --- check_activation with a custom_vjp forward, jvp, NaN inputs, grids ------------------------


def custom_vjp_tanh(scale):
    @jax.custom_vjp
    def op(z):
        return jnp.tanh(z)

    op.defvjp(lambda z: (jnp.tanh(z), z), lambda z, c: (scale * (1 - jnp.tanh(z) ** 2) * c,))
    return op


def test_check_activation_does_not_pass_a_custom_vjp_rule_1_percent_off():
    op = custom_vjp_tanh(1.01)
    # the backward under test IS the op's own rule: jax.vjp of forward cannot be its reference
    act = jaxnn.Activation("tanh_vjp", op, lambda dA, Z, A: jax.vjp(op, Z)[1](dA)[0])
    report = check_activation(act, methods=("autodiff", "finite_difference", "jvp"))
    assert not report.passed
    by = {r.method: r for r in report.results}
    # the op's rule against itself: no error beyond rounding (batched differently), blind to the 1% bug
    assert by["autodiff"].error < 1e-15 and "not an independent reference" in by["autodiff"].strategy
    assert by["finite_difference"].status == "FAIL"
    assert by["jvp"].status == "skipped"  # forward mode refuses custom_vjp: a note, not a TypeError
    assert report.error == pytest.approx(0.01 / 2.01, rel=1e-3)
    good = custom_vjp_tanh(1.0)
    act_ok = jaxnn.Activation("tanh_vjp_ok", good, lambda dA, Z, A: jax.vjp(good, Z)[1](dA)[0])
    assert check_activation(act_ok).passed


def test_methods_jvp_and_grids():
    report = check_activation("tanh", methods=("autodiff", "finite_difference", "jvp"))
    assert report.passed and [r.method for r in report.results] == ["autodiff", "finite_difference", "jvp"]
    assert "±750" in report.grid and "nothing in between is tested" in report.grid
    assert "inputs:" in str(report)
    assert "4 units" in check_activation("softmax").grid
    loss_report = check_loss("cross_entropy", methods=("autodiff", "finite_difference", "jvp"))
    assert loss_report.passed and "softmax(Z)" in loss_report.grid
    assert "your Z of shape (1, 2)" in check_activation("relu", Z=jnp.array([[-1.0, 2.0]])).grid
    with pytest.raises(ValueError, match="choose one or more of"):
        check_activation("tanh", methods=("magic",))


def test_nan_inputs_to_function_checks_are_errors():
    with pytest.raises(ValueError, match=r"check_activation: Z holds NaN or inf: first in column 1"):
        check_activation("tanh", Z=jnp.array([[0.0, jnp.nan]]))
    with pytest.raises(ValueError, match=r"check_loss: AL holds NaN or inf"):
        check_loss("mse", AL=jnp.array([[jnp.nan, 1.0]]), Y=jnp.ones((1, 2)))
    with pytest.raises(ValueError, match=r"check_loss: Y holds NaN or inf"):
        check_loss("mse", AL=jnp.ones((1, 2)), Y=jnp.array([[jnp.inf, 1.0]]))
