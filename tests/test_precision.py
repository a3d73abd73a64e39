"""Mixed precision (jaxnn.precision): bf16 compute, float32 params and optimizer state.

The bf16 gradient tolerance, BF16_GRAD_TOL = 16 u = 0.0625 (u = 2^-8, the
unit roundoff of bfloat16's 8-bit significand):

* Every bf16 operation rounds its result with relative error <= u. A gradient
  of a depth-3 network is the end of a chain of ~10 rounded steps (Z, A,
  dZ^[L], then dA_prev, dZ, dW per layer), so a first-order bound is ~10 u
  per entry; the sums over the m columns in dW = (1/m) dZ A_prev^T can cancel
  (terms of both signs), which magnifies the RELATIVE error of small entries.
* Manual and autodiff round in different orders, so each is a few u from the
  exact gradient (of the bf16-rounded inputs) and they are up to twice that
  from each other.
* Measured on all 6 hidden activations x 8 output pairings (m = 37, depth 3,
  the data of this file): manual vs autodiff max 1.5e-2 (3.9 u), manual vs
  the exact float64 gradient of the same bf16-rounded problem max 5.5e-3
  (1.4 u), autodiff vs exact max 1.5e-2 (3.8 u), the cost 4.2e-3 (1.1 u).
  A wider sweep (other data, m = 1, 37, 256) gave manual vs autodiff up to
  2.2e-2 (5.7 u) and manual vs exact up to 3.6e-2 (9.3 u; sigmoid hidden,
  ReLU output with MSE, whose sums over examples cancel). 16 u keeps a
  ~1.7x margin over the worst case seen. The test runs a 13-case subset of
  that grid (every hidden activation, every output pairing) to stay fast.
* It still catches derivation bugs: a factor missing or doubled anywhere
  (1/m twice, MSE's 2, a transposed dZ) gives errors >= 1/3, five times the
  tolerance. The exact correctness of the derivation is pinned in float32
  (1e-5) and float64 (1e-10) by tests/test_backward.py; this file checks that
  the same code runs in bf16 without silent upcasts, NaNs or lost gradients.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import HIDDEN, OUTPUT_PAIRINGS, draw, make_targets

import jaxnn
from jaxnn.core import precision
from jaxnn.core.precision import BF16_GRAD_TOL, BF16_UNIT_ROUNDOFF

BF16 = jnp.bfloat16


def _net(hidden, out, loss):
    n_L = 3 if out == "softmax" else 2
    return jaxnn.Network((5, 8, 6, n_L), (hidden, hidden, out), loss)


def test_tolerance_is_sixteen_unit_roundoffs():
    assert BF16_UNIT_ROUNDOFF == float(jnp.finfo(BF16).eps) / 2  # eps = 2^-7, u = eps / 2
    assert BF16_GRAD_TOL == pytest.approx(0.0625)


# every hidden activation (with the sigmoid+BCE output) and every output pairing (tanh hidden)
GRID = [(h, "sigmoid", "bce") for h in HIDDEN] + [
    ("tanh", out, loss) for out, loss in OUTPUT_PAIRINGS if (out, loss) != ("sigmoid", "bce")]


def _f64(tree):
    return precision.cast_floating(tree, jnp.float64)


def _three_grads(params, X, Y, net):
    return (jaxnn.value_and_manual_grad(params, X, Y, net),
            jaxnn.value_and_autodiff_grad(params, X, Y, net),
            # the exact gradient of the same (bf16-rounded) problem, in float64
            jaxnn.value_and_autodiff_grad(_f64(params), _f64(X), _f64(Y), net))


def _bf16_problem(hidden, out, loss):
    """(net, (params, X, Y)) of one grid case, in bf16; X and Y drawn in float64 (x64 on)."""
    net = _net(hidden, out, loss)
    params = precision.cast_floating(jaxnn.init_params(jax.random.key(0), net, init="xavier"), BF16)
    X = draw(jax.random.normal, jax.random.key(1), (5, 37)).astype(BF16)
    Y = make_targets(jax.random.key(2), net, 37).astype(BF16)
    return net, (params, X, Y)


# The whole GRID in ONE compiled program (as tests/test_backward.py does): XLA compiles one
# program of 13 small networks much faster than 13 programs of one (13 compilations of ~2 s
# each before). Each case's computation is the same as alone; only the program holds more.
@functools.partial(jax.jit, static_argnums=1)
def _all_three_grads(problems, nets):
    return [_three_grads(*problem, net) for problem, net in zip(problems, nets)]


@functools.cache
def _bf16_grid():
    """{case: the three (J, grads)} for every GRID case, or None if building the program fails
    (then each test runs its own case alone, so the failures say which cases break)."""
    try:
        with jax.enable_x64(True):
            nets, problems = zip(*(_bf16_problem(*case) for case in GRID))
            return dict(zip(GRID, _all_three_grads(list(problems), nets)))
    except Exception:  # noqa: BLE001
        return None


@pytest.mark.parametrize("hidden, out, loss", GRID)
def test_bf16_manual_vs_autodiff(hidden, out, loss, x64):
    """Core functions in bf16: stay bf16, and manual ~ autodiff ~ exact within 16 u."""
    del x64  # float64 is needed only for the exact reference below
    f64 = _f64
    grid = _bf16_grid()
    if grid is not None:
        (J_m, manual), (J_a, auto), (J_x, exact) = grid[hidden, out, loss]
    else:
        net, problem = _bf16_problem(hidden, out, loss)
        (J_m, manual), (J_a, auto), (J_x, exact) = jax.jit(_three_grads, static_argnums=3)(
            *problem, net)
    # no silent upcast: the whole pass ran in bf16
    assert J_m.dtype == BF16 and J_a.dtype == BF16
    assert {g.dtype for g in jax.tree.leaves(manual) + jax.tree.leaves(auto)} == {jnp.dtype(BF16)}
    err_ma = float(jaxnn.relative_error(f64(manual), f64(auto)))
    err_m = float(jaxnn.relative_error(f64(manual), exact))
    err_a = float(jaxnn.relative_error(f64(auto), exact))
    assert err_ma <= BF16_GRAD_TOL, err_ma
    assert err_m <= BF16_GRAD_TOL and err_a <= BF16_GRAD_TOL, (err_m, err_a)
    assert np.isfinite(float(J_m)) and abs(float(J_m) - float(J_x)) <= BF16_GRAD_TOL * abs(float(J_x))


@pytest.mark.parametrize("out, loss", [("sigmoid", "bce"), ("softmax", "cross_entropy")])
def test_bf16_fused_outputs_finite_for_saturated_logits(out, loss):
    """Logits of ±100 in bf16: the from-logits costs and dZ^[L] = A^[L] - Y stay finite."""
    net = jaxnn.Network((2, 3), (out,), loss)
    W = jnp.array([[50.0, 50.0], [-50.0, -50.0], [0.0, 0.0]], BF16)
    params = [{"W": W, "b": jnp.zeros((3, 1), BF16)}]
    X = jnp.array([[1.0, -1.0], [1.0, -1.0]], BF16)  # Z = ±100
    Y = jnp.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]], BF16)  # confidently wrong on purpose
    if loss == "bce":
        Y = jnp.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], BF16)
    for vg in (jaxnn.value_and_manual_grad, jaxnn.value_and_autodiff_grad):
        J, grads = vg(params, X, Y, net)
        assert J.dtype == BF16 and bool(jnp.isfinite(J)) and float(J) > 50
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_with_compute_dtype_casts_in_and_out():
    seen = {}

    def spy(params, X, Y, net, **kwargs):
        seen["dtypes"] = {x.dtype for x in jax.tree.leaves((params, X, Y))}
        return jaxnn.value_and_manual_grad(params, X, Y, net, **kwargs)

    net = jaxnn.Network((3, 4, 2), ("relu", "softmax"), "cross_entropy")
    params = jaxnn.init_params(jax.random.key(0), net)
    X = draw(jax.random.normal, jax.random.key(1), (3, 16))
    Y = make_targets(jax.random.key(2), net, 16)
    J, grads = jax.jit(precision.with_compute_dtype(spy, BF16))(params, X, Y, net, l2=0.1)
    assert seen["dtypes"] == {jnp.dtype(BF16)}
    assert J.dtype == jnp.float32 and {g.dtype for g in jax.tree.leaves(grads)} == {jnp.dtype("float32")}
    _, ref = jax.jit(jaxnn.value_and_manual_grad)(params, X, Y, net, l2=0.1)
    assert float(jaxnn.relative_error(grads, ref)) <= BF16_GRAD_TOL
    for fn in (precision.value_and_manual_grad_bf16, precision.value_and_autodiff_grad_bf16):
        _, g = jax.jit(fn)(params, X, Y, net, l2=0.1)
        assert float(jaxnn.relative_error(g, ref)) <= BF16_GRAD_TOL
    with pytest.raises(ValueError, match="floating point"):
        precision.with_compute_dtype(spy, jnp.int32)


def test_optimizer_state_stays_float32():
    net = jaxnn.Network((3, 4, 1), ("tanh", "sigmoid"), "bce")
    params = jaxnn.init_params(jax.random.key(0), net)
    opt = optax.adam(1e-2)
    train = jaxnn.make_train_step(net, opt, grad="autodiff", compute_dtype=BF16)
    X = draw(jax.random.normal, jax.random.key(1), (3, 8))
    Y = make_targets(jax.random.key(2), net, 8)
    params, state = train.init(params)
    params, state, J = train.step(params, state, X, Y)
    floats = [x for x in jax.tree.leaves((params, state, J)) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert floats and {x.dtype for x in floats} == {jnp.dtype("float32")}
    with pytest.raises(ValueError, match="grad = 'fd'"):
        jaxnn.make_train_step(net, 0.1, grad="fd", compute_dtype=BF16)


def _train(net, data, compute_dtype, grad, epochs=300, learning_rate=0.5):
    """Full-batch GD (formulas §5) with ``jaxnn.fit``; returns the test accuracy."""
    params = jaxnn.init_params(jax.random.key(0), net, init="xavier")
    params, _ = jaxnn.fit(params, net, data, epochs=epochs, key=jax.random.key(1),
                          learning_rate=learning_rate, grad=grad, compute_dtype=compute_dtype,
                          progress=False, eval_train=False)
    assert {p.dtype for p in jax.tree.leaves(params)} == {jnp.dtype("float32")}
    AL = jaxnn.predict(params, jnp.asarray(data.X_test), net)
    return float(jnp.mean((AL > 0.5) == (jnp.asarray(data.Y_test) > 0.5)))


@pytest.mark.parametrize("grad", ["manual", "autodiff"])
def test_fit_compute_dtype_is_the_mixed_precision_step(grad):
    """fit(compute_dtype=bf16) takes the same step as make_train_step(compute_dtype=bf16)."""
    net = jaxnn.Network((3, 8, 2), ("tanh", "softmax"), "cross_entropy")
    p0 = jaxnn.init_params(jax.random.key(0), net)
    X = draw(jax.random.normal, jax.random.key(1), (3, 16))
    Y = make_targets(jax.random.key(2), net, 16)
    kw = dict(epochs=1, key=jax.random.key(3), learning_rate=0.5, grad=grad, progress=False)
    p16, h16 = jaxnn.fit(p0, net, (X, Y), compute_dtype=BF16, **kw)
    p32, _ = jaxnn.fit(p0, net, (X, Y), **kw)
    ref, J = jaxnn.make_train_step(net, 0.5, grad=grad, compute_dtype=BF16)(p0, X, Y)
    assert h16["cost"].dtype == np.float32 and h16["cost"][0] == pytest.approx(float(J), rel=1e-6)
    assert float(jaxnn.relative_error(p16, ref)) <= 1e-6
    # and it really computed in bf16: the step differs from float32's by bf16 rounding
    d16 = jax.tree.map(lambda a, b: a - b, p16, p0)
    d32 = jax.tree.map(lambda a, b: a - b, p32, p0)
    assert 1e-4 < float(jaxnn.relative_error(d16, d32)) <= BF16_GRAD_TOL
    with pytest.raises(ValueError, match="compute_dtype"):
        jaxnn.fit(p0, net, (X, Y), compute_dtype=jnp.int8, **kw)


@pytest.fixture(scope="module")
def breast_cancer():
    pytest.importorskip("sklearn")
    from jaxnn import datasets

    return datasets.load("breast_cancer")


@pytest.mark.parametrize("grad", ["manual", "autodiff"])
def test_bf16_training_reaches_the_float32_accuracy_band(breast_cancer, grad):
    net = jaxnn.Network((30, 16, 1), ("tanh", "sigmoid"), "bce")
    acc32 = _train(net, breast_cancer, None, grad)
    acc16 = _train(net, breast_cancer, BF16, grad)
    # 114 test examples: one example is 0.9 %. float32 reaches ~97 %; bf16 compute must land
    # in the same band (within 2 examples) and above the 93 % a linear model gets.
    assert acc32 >= 0.95, acc32
    assert acc16 >= 0.93 and abs(acc16 - acc32) <= 2 / 114 + 1e-9, (acc32, acc16)


def test_sharded_step_with_bf16_compute():
    from jaxnn.devices import mesh as parallel

    net = jaxnn.Network((3, 4, 2), ("relu", "softmax"), "cross_entropy")
    mesh = parallel.make_mesh()
    D = parallel.n_devices(mesh)
    params0 = jaxnn.init_params(jax.random.key(0), net)
    X = draw(jax.random.normal, jax.random.key(1), (3, 8 * D))
    Y = make_targets(jax.random.key(2), net, 8 * D)
    train = jaxnn.make_train_step(net, 0.1, mesh=mesh, compute_dtype=BF16)
    params, state = train.init(params0)
    params, state, J = train.step(params, state, *parallel.shard_batch(X, Y, mesh))
    assert J.dtype == jnp.float32 and params[0]["W"].dtype == jnp.float32
    ref = jaxnn.make_train_step(net, 0.1)(params0, X, Y)[0]
    step = jax.tree.map(lambda a, b: a - b, params, params0)
    ref_step = jax.tree.map(lambda a, b: a - b, ref, params0)
    assert float(jaxnn.relative_error(step, ref_step)) <= BF16_GRAD_TOL
    # with a mask (padded batch), bf16 too
    Xp, Yp, w = parallel.shard_padded_batch(X[:, :-1], Y[:, :-1], mesh)
    params, state, J = train.step(params, state, Xp, Yp, w)
    assert J.dtype == jnp.float32 and bool(jnp.isfinite(J))
