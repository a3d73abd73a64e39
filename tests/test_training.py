"""Tests of jaxnn.training: regularised gradients vs jax.grad, fit, partial batches,
compilation reuse, divergence, ensembles, history and the progress bar."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import draw, make_targets

import jaxnn
from jaxnn import (
    Network,
    epoch_order,
    forward,
    init_params,
    predict,
    relative_error,
    sgd_update,
    value_and_autodiff_grad,
    value_and_manual_grad,
)
from jaxnn.train import training
from jaxnn.train.epoch import run_epochs

PAIRINGS = [("sigmoid", "bce"), ("softmax", "cross_entropy"), ("identity", "mse"), ("tanh", "mse")]


def _net(out, loss, hidden=("relu", "tanh"), sizes=(5, 7, 6, 3)):
    n_L = 1 if out == "sigmoid" else sizes[-1]
    return Network((*sizes[:-1], n_L), (*hidden, out), loss)


def _problem(net, m, dtype=jnp.float32, seed=0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    params = init_params(k1, net, dtype=dtype)
    X = draw(jax.random.normal, k2, (net.n_x, m), dtype=dtype)
    return params, X, make_targets(k3, net, m, dtype)


def _both(params, X, Y, net, **kw):
    """Manual and autodiff (J, grads) in one compiled program (faster than op-by-op)."""
    return jax.jit(lambda p, X, Y: (value_and_manual_grad(p, X, Y, net, **kw),
                                    value_and_autodiff_grad(p, X, Y, net, **kw)))(params, X, Y)


# --- L2 and dropout: hand-derived gradients vs jax.grad (conventions §3) ---------------------


L2_KEEP = [(0.7, 1.0), (0.0, 0.6), (0.3, 0.8)]


def _regularised_problem(out, loss):
    net = _net(out, loss)
    return net, (*_problem(net, 9, jnp.float64), jax.random.key(3))


def _both_regularised(problem, net, l2, keep_prob):
    params, X, Y, key = problem
    kw = {"l2": l2, "keep_prob": keep_prob, "key": key}
    return value_and_manual_grad(params, X, Y, net, **kw), value_and_autodiff_grad(params, X, Y, net, **kw)


# Every case of the grid below in ONE compiled program: XLA compiles one program of 12 small
# networks several times faster than 12 programs of one (tests/test_backward.py does the same).
# A case computes exactly what it computes alone; only the program around it is larger.
@functools.partial(jax.jit, static_argnums=1)
def _all_both_regularised(problems, statics):
    return [_both_regularised(problem, *static) for problem, static in zip(problems, statics)]


@functools.cache
def _regularised_grid():
    """{(out, loss, l2, keep_prob): ((J1, g1), (J2, g2))}, or None if building the program
    fails (each test then runs its own case alone, so the failures name the broken cases)."""
    try:
        with jax.enable_x64(True):
            cases = [(o, lo, l2, kp) for l2, kp in L2_KEEP for o, lo in PAIRINGS]
            nets, problems = zip(*(_regularised_problem(o, lo) for o, lo, _, _ in cases))
            statics = tuple((net, l2, kp) for net, (_, _, l2, kp) in zip(nets, cases))
            return dict(zip(cases, _all_both_regularised(list(problems), statics)))
    except Exception:  # noqa: BLE001
        return None


@pytest.mark.parametrize("out,loss", PAIRINGS)
@pytest.mark.parametrize("l2,keep_prob", L2_KEEP)
def test_regularised_manual_grads_match_autodiff_float64(x64, out, loss, l2, keep_prob):
    grid = _regularised_grid()
    if grid is not None:
        (J1, g1), (J2, g2) = grid[out, loss, l2, keep_prob]
    else:
        net, problem = _regularised_problem(out, loss)
        (J1, g1), (J2, g2) = jax.jit(_both_regularised, static_argnums=(1, 2, 3))(
            problem, net, l2, keep_prob)
    assert float(relative_error(g1, g2)) <= 1e-10
    assert abs(float(J1 - J2)) <= 1e-12 * max(1.0, abs(float(J2)))


def test_l2_adds_exactly_lambda_over_m_W_to_dW_only(x64):
    net = _net("softmax", "cross_entropy")
    params, X, Y = _problem(net, 8, x64)
    (_, g0), _ = _both(params, X, Y, net)
    (_, g1), _ = _both(params, X, Y, net, l2=0.5)
    for p, a, b in zip(params, g0, g1):
        np.testing.assert_allclose(b["W"] - a["W"], 0.5 / 8 * p["W"], rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(b["b"], a["b"])  # biases are not decayed


def test_traced_l2_strengths_under_vmap_match_autodiff(x64):
    net = _net("identity", "mse")
    params, X, Y = _problem(net, 6, x64)
    l2s = jnp.array([0.0, 0.1, 2.0])
    f = lambda l2, fn: fn(params, X, Y, net, l2=l2)[1]  # noqa: E731
    g1 = jax.jit(jax.vmap(lambda l2: f(l2, value_and_manual_grad)))(l2s)
    g2 = jax.jit(jax.vmap(lambda l2: f(l2, value_and_autodiff_grad)))(l2s)
    assert float(relative_error(g1, g2)) <= 1e-10
    g0 = jax.jit(lambda: f(0.0, value_and_manual_grad))()
    assert float(relative_error(jax.tree.map(lambda g: g[0], g1), g0)) <= 1e-14


def test_dropout_mask_is_in_cache_and_off_at_evaluation():
    net = _net("softmax", "cross_entropy", sizes=(5, 200, 100, 3))
    params, X, _ = _problem(net, 100)
    _, cache = jax.jit(lambda p, X: forward(p, X, net, key=jax.random.key(1), keep_prob=0.75))(
        params, X)
    D = cache[0]["D"]
    assert np.allclose(np.unique(np.asarray(D)), [0.0, 1 / 0.75])
    assert abs(float(jnp.mean(D > 0)) - 0.75) < 0.01  # keep_prob is the KEEP probability
    assert "D" not in cache[-1]  # the output layer is never dropped
    ev = jax.jit(lambda p, X: (forward(p, X, net)[0], predict(p, X, net),
                               forward(p, X, net, key=jax.random.key(1), keep_prob=1.0)[0]))
    a, b, c = ev(params, X)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


# --- the last partial batch, and the one masked path ----------------------------------------

TAU = 0.3  # a pinball (quantile) loss: dL/dA is -τ or 1 - τ, never 0 at A = Y
PINBALL = jaxnn.make_loss(
    "pinball", lambda A, Y: jnp.sum(jnp.maximum(TAU * (Y - A), (TAU - 1) * (Y - A)), axis=0),
    lambda A, Y: jnp.where(Y - A > 0, -TAU, 1 - TAU))


WEIGHTED_PAIRINGS = [*PAIRINGS, ("identity", PINBALL)]
R_REAL = 5  # real columns of 8; the other 3 are padding with weight 0


def _weighted_problem(out, loss):
    net = _net(out, loss)
    params, X, Y = _problem(net, 8, jnp.float64)
    if isinstance(loss, jaxnn.Loss):
        Y = draw(jax.random.normal, jax.random.key(9), Y.shape, dtype=jnp.float64)
    r = R_REAL
    w = (jnp.arange(8) < r).astype(jnp.float64)
    Xp, Yp = X.at[:, r:].set(X[:, :3]), Y.at[:, r:].set(Y[:, :3])
    return net, (params, X, Y, Xp, Yp, w, jax.random.key(3))


def _weighted_grads(problem, net, keep_prob):
    """Manual, autodiff, and the reference: the real columns only, with the masks dropout drew
    for them."""
    params, X, Y, Xp, Yp, w, key = problem
    r = R_REAL
    kw = {"l2": 0.4, "key": key, "keep_prob": keep_prob}
    manual = value_and_manual_grad(params, Xp, Yp, net, w=w, **kw)
    auto = value_and_autodiff_grad(params, Xp, Yp, net, w=w, **kw)
    _, cache = forward(params, Xp, net, key=kw["key"], keep_prob=keep_prob)

    def real_cost(p):
        A, ref_cache = X[:, :r], []
        for l, (q, g) in enumerate(zip(p, net.layer_activations)):
            Z = q["W"] @ A + q["b"]
            A = g.forward(Z)
            ref_cache.append({"A_prev": None, "Z": Z, "A": A})
            if "D" in cache[l]:
                A = A * cache[l]["D"][:, :r]
        return jaxnn.cost_from_cache(p, ref_cache, Y[:, :r], net, l2=0.4)

    return manual, auto, jax.value_and_grad(real_cost)(params)


@functools.partial(jax.jit, static_argnums=1)  # the whole grid in one program, as above
def _all_weighted_grads(problems, statics):
    return [_weighted_grads(problem, *static) for problem, static in zip(problems, statics)]


@functools.cache
def _weighted_grid():
    """{(out, loss, keep_prob): (manual, autodiff, reference)}, or None (as _regularised_grid)."""
    try:
        with jax.enable_x64(True):
            cases = [(o, lo, kp) for kp in (1.0, 0.7) for o, lo in WEIGHTED_PAIRINGS]
            nets, problems = zip(*(_weighted_problem(o, lo) for o, lo, _ in cases))
            statics = tuple((net, kp) for net, (_, _, kp) in zip(nets, cases))
            return dict(zip(cases, _all_weighted_grads(list(problems), statics)))
    except Exception:  # noqa: BLE001
        return None


@pytest.mark.parametrize("out,loss", WEIGHTED_PAIRINGS)
@pytest.mark.parametrize("keep_prob", [1.0, 0.7])
def test_weighted_batch_gives_the_cost_and_gradient_of_its_real_examples(x64, out, loss, keep_prob):
    """w = 1 on 5 real columns, 0 on 3 padding columns: manual and autodiff, with dropout and L2,
    equal a hand computation over the real columns alone (the same dropout mask on them)."""
    grid = _weighted_grid()
    if grid is not None:
        (J1, g1), (J2, g2), (J3, g3) = grid[out, loss, keep_prob]
    else:
        net, problem = _weighted_problem(out, loss)
        (J1, g1), (J2, g2), (J3, g3) = jax.jit(_weighted_grads, static_argnums=(1, 2))(
            problem, net, keep_prob)
    assert float(relative_error(g1, g3)) <= 1e-10
    assert float(relative_error(g2, g3)) <= 1e-10
    assert abs(float(J1 - J3)) <= 1e-10 and abs(float(J2 - J3)) <= 1e-10


@pytest.mark.parametrize("grad", ["manual", "autodiff"])
def test_fit_with_a_partial_batch_equals_a_hand_loop_for_any_loss(x64, grad):
    """m = 13, B = 8 with the pinball loss (the case the old padded-target trick got wrong)."""
    net = Network((3, 5, 2), ("tanh", "identity"), PINBALL)
    params, X, _ = _problem(net, 13, x64)
    Y = draw(jax.random.normal, jax.random.key(4), (2, 13), dtype=x64)
    key, lr = jax.random.key(7), 0.05
    new, hist = training.fit(params, net, (X, Y), epochs=2, key=key, learning_rate=lr,
                             batch_size=8, grad=grad, progress=False, epochs_per_call=2)
    order = [epoch_order(jax.random.key_data(key), e, 13) for e in (0, 1)]
    p, totals = params, []
    step = jax.jit(lambda p, X, Y: value_and_autodiff_grad(p, X, Y, net))
    for perm in order:
        total = 0.0
        for cols in (perm[:8], perm[8:]):
            J, g = step(p, X[:, cols], Y[:, cols])
            p, total = sgd_update(p, g, lr), total + float(J) * len(cols)
        totals.append(total / 13)
    assert float(relative_error(new, p)) <= 1e-12
    np.testing.assert_allclose(hist["cost"], totals, rtol=1e-12)


def test_every_example_counts_once_per_epoch(x64):
    """m = 10, B = 4: batches of 4, 4 and the last 2; same as a hand-written loop."""
    net = Network((3, 4, 2), ("tanh", "identity"), "mse")
    params, X, Y = _problem(net, 10, x64)
    key, lr = jax.random.key(7), 0.05
    new, hist = training.fit(params, net, (X, Y), epochs=1, key=key, learning_rate=lr,
                             batch_size=4, progress=False)
    perm = epoch_order(jax.random.key_data(key), 0, 10)
    assert sorted(perm.tolist()) == list(range(10))
    p, total = params, 0.0
    step = jax.jit(lambda p, X, Y: value_and_manual_grad(p, X, Y, net))
    for cols in (perm[:4], perm[4:8], perm[8:]):
        J, g = step(p, X[:, cols], Y[:, cols])
        p, total = sgd_update(p, g, lr), total + float(J) * len(cols)
    assert float(relative_error(new, p)) <= 1e-13
    np.testing.assert_allclose(hist["cost"], [total / 10], rtol=1e-12)


def test_running_train_metrics_are_the_epochs_batch_averages(x64):
    """eval_train=True: train_cost/train_accuracy are averages over the epoch's forward passes
    (no extra pass); "full" re-evaluates the training set after the epoch."""
    net = Network((3, 6, 3), ("tanh", "softmax"), "cross_entropy")
    params, X, Y = _problem(net, 10, x64)
    key, lr = jax.random.key(2), 0.3
    kw = dict(epochs=1, key=key, learning_rate=lr, batch_size=4, progress=False)
    new, hist = training.fit(params, net, (X, Y), **kw)
    _, full = training.fit(params, net, (X, Y), eval_train="full", **kw)
    perm = epoch_order(jax.random.key_data(key), 0, 10)
    p, loss, hits = params, 0.0, 0.0
    for cols in (perm[:4], perm[4:8], perm[8:]):
        AL = forward(p, X[:, cols], net)[0]
        loss += float(jnp.sum(-jnp.sum(Y[:, cols] * jnp.log(AL), axis=0)))
        hits += float(jnp.sum(jnp.argmax(AL, 0) == jnp.argmax(Y[:, cols], 0)))
        _, g = value_and_manual_grad(p, X[:, cols], Y[:, cols], net)
        p = sgd_update(p, g, lr)
    np.testing.assert_allclose(hist["train_cost"], [loss / 10], rtol=1e-10)
    np.testing.assert_allclose(hist["train_accuracy"], [hits / 10], rtol=1e-12)
    after = jaxnn.evaluate(new, X, Y, net)
    np.testing.assert_allclose(full["train_cost"], [after["cost"]], rtol=1e-10)
    _, none = training.fit(params, net, (X, Y), eval_train=False, **kw)
    assert sorted(none) == ["cost", "epoch"]


def test_full_batch_default_is_the_seeds_gradient_descent():
    net = _net("sigmoid", "bce")
    params, X, Y = _problem(net, 12)
    new, hist = training.fit(params, net, (X, Y), epochs=1, key=jax.random.key(0),
                             learning_rate=0.3, progress=False)
    J, g = jax.jit(lambda p: value_and_manual_grad(p, X, Y, net))(params)
    assert float(relative_error(new, sgd_update(params, g, 0.3))) <= 1e-6
    np.testing.assert_allclose(hist["cost"][0], J, rtol=1e-6)


# --- compilation, optimizers, history -----------------------------------------------------


def _compilations(f):
    """How many XLA compilations running f() triggers (JAX's monitoring events)."""
    count = [0]

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            count[0] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        f()
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    return count[0]


def test_one_compilation_serves_every_epoch_and_every_call():
    net = _net("softmax", "cross_entropy")
    params, X, Y = _problem(net, 30)
    before = run_epochs._cache_size()
    kw = dict(epochs=4, key=jax.random.key(0), optimizer="adam", learning_rate=1e-2, batch_size=8,
              progress=False, epochs_per_call=1, validation=(X, Y))
    _, h = training.fit(params, net, (X, Y), **kw)
    assert run_epochs._cache_size() == before + 1  # one epoch program for the 4 calls
    # another rate and seed: the rate lives in the optimizer state, so nothing compiles at all
    again = {**kw, "learning_rate": 3e-3, "key": jax.random.key(5)}
    assert _compilations(lambda: training.fit(params, net, (X, Y), **again)) == 0
    assert h["cost"].shape == h["val_accuracy"].shape == (4,)
    np.testing.assert_array_equal(h["epoch"], [1, 2, 3, 4])


@pytest.mark.parametrize("optimizer", ["momentum",
                                       optax.chain(optax.clip_by_global_norm(1.0),
                                                   optax.adam(optax.cosine_decay_schedule(1e-2, 50)))])
def test_optimizers_reduce_the_cost_and_manual_matches_autodiff(optimizer):
    net = _net("softmax", "cross_entropy")
    params, X, Y = _problem(net, 40)
    kw = dict(epochs=15, key=jax.random.key(0), optimizer=optimizer, batch_size=16, progress=False,
              learning_rate=None if isinstance(optimizer, optax.GradientTransformation) else 0.1)
    p1, h = training.fit(params, net, (X, Y), **kw)
    p2, _ = training.fit(params, net, (X, Y), grad="autodiff", **kw)
    assert h["train_cost"][-1] < 0.8 * h["train_cost"][0]
    assert float(relative_error(p1, p2)) <= 1e-4


def test_regression_metrics_and_history_json(tmp_path):
    net = Network((5, 8, 1), ("tanh", "identity"), "mse")
    params, X, _ = _problem(net, 64)
    Y = jnp.sum(X[:2], axis=0, keepdims=True)
    _, h = training.fit(params, net, (X, Y), epochs=30, key=jax.random.key(0), optimizer="adam",
                        learning_rate=0.03, batch_size=16, validation=(X, Y), progress=False)
    assert h["val_r2"][-1] > 0.9 and h["val_rmse"][-1] < 0.5
    m = jaxnn.evaluate(params, X, Y, net)
    AL = forward(params, X, net)[0]
    r2 = 1 - np.sum((Y - AL) ** 2) / np.sum((Y - np.mean(Y)) ** 2)
    np.testing.assert_allclose(m["r2"], r2, rtol=1e-5)
    np.testing.assert_allclose(m["rmse"], np.sqrt(np.mean((Y - AL) ** 2)), rtol=1e-5)
    h["cost"] = h["cost"].copy()
    h["cost"][1] = np.nan
    jaxnn.save_history(h, tmp_path / "h.json")
    json.loads((tmp_path / "h.json").read_text())  # strict JSON
    back = jaxnn.load_history(tmp_path / "h.json")
    assert set(back) == set(h) and np.isnan(back["cost"][1])
    np.testing.assert_allclose(back["val_r2"], h["val_r2"])


def test_progress_bar_only_when_asked(capsys):
    net = _net("sigmoid", "bce")
    params, X, Y = _problem(net, 16)
    training.fit(params, net, (X, Y), epochs=2, key=jax.random.key(0), progress=None)
    assert capsys.readouterr().err == ""  # not a terminal under pytest
    training.fit(params, net, (X, Y), epochs=2, key=jax.random.key(0), progress=True)
    err = capsys.readouterr().err
    assert "2/2" in err and "cost=" in err


# --- divergence ---------------------------------------------------------------------------


def test_divergence_names_epoch_and_parameter_and_keeps_finite_params():
    net = Network((3, 4, 1), ("relu", "identity"), "mse")
    params, X, Y = _problem(net, 20)
    with pytest.raises(jaxnn.DivergenceError, match=r"epoch \d+ .*(layer \d [Wb]|cost)") as e:
        training.fit(params, net, (X, 1e3 * Y), epochs=50, key=jax.random.key(0),
                     learning_rate=5.0, progress=False, epochs_per_call=7)
    err = e.value
    assert isinstance(err, FloatingPointError) and err.epoch >= 1
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(err.params))
    assert len(err.history["cost"]) == err.epoch - 1 and np.isfinite(err.history["cost"]).all()


def test_nan_gradient_is_named():
    net = Network((3, 4, 1), ("relu", "identity"), "mse")
    params, X, Y = _problem(net, 8)
    params[1]["b"] = params[1]["b"].at[0, 0].set(jnp.inf)  # the cost is inf from the start
    with pytest.raises(jaxnn.DivergenceError, match="epoch 1 .*cost J") as e:
        training.fit(params, net, (X, Y), epochs=2, key=jax.random.key(0), progress=False)
    assert e.value.step == 1 and e.value.where == "the cost J"


# --- ensembles ----------------------------------------------------------------------------


def test_ensemble_members_equal_single_fits_in_one_program(x64):
    net = Network((4, 6, 3), ("tanh", "softmax"), "cross_entropy")
    _, X, Y = _problem(net, 25, x64)
    P = jaxnn.init_ensemble(jax.random.key(1), net, 3, dtype=x64)
    keys = jax.random.split(jax.random.key(2), 3)
    lrs, l2s = np.array([0.05, 0.1, 0.2]), np.array([0.0, 0.1, 1.0])
    before = run_epochs._cache_size()
    PE, h = training.fit_ensemble(P, net, (X, Y), epochs=5, key=keys, learning_rate=lrs, l2=l2s,
                                  batch_size=10, keep_prob=0.9, validation=(X, Y), progress=False)
    assert run_epochs._cache_size() == before + 1
    assert h["val_accuracy"].shape == (3, 5) and not h["diverged"].any()
    for i in (1, 2):  # (members with l2 > 0 share one compiled single-model program)
        p_i, h_i = training.fit(jax.tree.map(lambda x, i=i: x[i], P), net, (X, Y), epochs=5,
                                key=keys[i], learning_rate=lrs[i], l2=l2s[i], batch_size=10,
                                keep_prob=0.9, progress=False)
        assert float(relative_error(jax.tree.map(lambda x, i=i: x[i], PE), p_i)) <= 1e-12
        np.testing.assert_allclose(h["cost"][i], h_i["cost"], rtol=1e-12)


def test_ensemble_freezes_a_diverging_member_only():
    net = Network((3, 4, 1), ("relu", "identity"), "mse")
    _, X, Y = _problem(net, 20)
    P = jaxnn.init_ensemble(jax.random.key(0), net, 3)
    PE, h = training.fit_ensemble(P, net, (X, 1e3 * Y), epochs=20, key=jax.random.key(0),
                                  learning_rate=np.array([1e-4, 5.0, 1e-3]), progress=False)
    np.testing.assert_array_equal(h["diverged"], [False, True, False])
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(PE))
    assert np.isnan(h["cost"][1, -1]) and np.isfinite(h["cost"][[0, 2]]).all()


# --- argument checks ----------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,match", [
    ({"batch_size": 0}, "batch_size"),
    ({"keep_prob": 0.0}, "keep_prob"),
    ({"optimizer": "adagrad"}, "valid names"),
    ({"optimizer": optax.adam(1e-3), "learning_rate": 1e-3}, "inside an optax"),
    ({"learning_rate": -1.0}, "learning_rate"),
    ({"l2": -0.1}, "l2"),
    ({"grad": "numeric"}, "grad"),
    ({"epochs": 0}, "epochs"),
    ({"data": "rows"}, "looks like"),
])
def test_bad_arguments_raise_value_error(kwargs, match):
    net = _net("softmax", "cross_entropy")
    params, X, Y = _problem(net, 6)
    data = (X.T, Y) if kwargs.pop("data", None) else (X, Y)
    kw = {"epochs": 1, "key": jax.random.key(0), "progress": False} | kwargs
    with pytest.raises(ValueError, match=match):
        training.fit(params, net, data, **kw)


@pytest.mark.parametrize("kwargs,match", [
    ({"key": 0}, r"key = 0 is not a PRNG key: pass key=jax.random.key\(0\)"),
    ({"key": None}, "key = None is not a PRNG key"),
    ({"learning_rate": "abc"}, "learning_rate = 'abc' must be a finite number > 0"),
    ({"keep_prob": "high"}, "keep_prob = 'high' must be a number in"),
    ({"eval_train": "sometimes"}, "eval_train = 'sometimes'"),
    ({"l2": [0.1, 0.2]}, "l2 = .* must be a finite number >= 0"),
])
def test_bad_argument_values_are_named(kwargs, match):
    net = _net("softmax", "cross_entropy")
    params, X, Y = _problem(net, 6)
    kw = {"epochs": 1, "key": jax.random.key(0), "progress": False} | kwargs
    with pytest.raises(ValueError, match=match):
        training.fit(params, net, (X, Y), **kw)


@pytest.mark.parametrize("where,column", [("X", 4), ("Y", 2)])
def test_nan_in_the_data_is_refused_before_training(where, column):
    net = Network((3, 4, 1), ("relu", "identity"), "mse")
    params, X, Y = _problem(net, 8)
    X, Y = np.array(X), np.array(Y)
    (X if where == "X" else Y)[0, column] = np.nan
    before = run_epochs._cache_size()
    with pytest.raises(ValueError, match=rf"data: {where} holds NaN or inf: first in column {column}"):
        training.fit(params, net, (X, Y), epochs=1, key=jax.random.key(0), progress=False)
    with pytest.raises(ValueError, match=rf"validation: {where} holds NaN"):
        training.fit(params, net, (np.nan_to_num(X), np.nan_to_num(Y)), epochs=1,
                     key=jax.random.key(0), progress=False, validation=(X, Y))
    assert run_epochs._cache_size() == before  # refused before anything was compiled
    dev = jnp.asarray(X if where == "X" else Y)
    data = (dev, Y) if where == "X" else (X, dev)
    with pytest.raises(ValueError, match=f"{where} holds NaN or inf"):  # on the device too
        training.fit(params, net, data, epochs=1, key=jax.random.key(0), progress=False)


def test_integer_labels_say_how_to_one_hot():
    net = _net("softmax", "cross_entropy")
    params, X, _ = _problem(net, 6)
    labels = np.array([0, 1, 2, 0, 1, 2])
    for y in (labels, labels[None, :]):
        with pytest.raises(ValueError, match=r"jax\.nn\.one_hot\(y, 3\)\.T"):
            training.fit(params, net, (X, y), epochs=1, key=jax.random.key(0), progress=False)
    with pytest.raises(ValueError, match="must hold numbers"):
        training.fit(params, net, (X, np.array([["a"] * 6] * 3)), epochs=1,
                     key=jax.random.key(0), progress=False)


def test_nested_lists_and_tuple_params_work():
    net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    params = init_params(jax.random.key(0), net)
    X = [[0.0, 1.0, 2.0, 3.0], [1.0, 0.0, 1.0, 0.0]]
    Y = [[0.0, 1.0, 1.0, 0.0]]
    p1, h1 = training.fit(params, net, (X, Y), epochs=2, key=jax.random.key(0), progress=False)
    p2, h2 = training.fit(tuple(params), net, (np.array(X), np.array(Y)), epochs=2,
                          key=jax.random.key(0), progress=False)
    np.testing.assert_array_equal(h1["cost"], h2["cost"])
    assert float(relative_error(list(p2), p1)) == 0.0


def test_a_consumed_state_is_refused():
    net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    state = jaxnn.init_state(init_params(jax.random.key(0), net), jax.random.key(1))
    data = (jnp.ones((2, 4)), jnp.ones((1, 4)))
    new, _ = training.train_epochs(state, net, data, epochs=1, progress=False)
    with pytest.raises(ValueError, match="consumed by an earlier train_epochs call.*use the state "
                                         "that call returned"):
        training.train_epochs(state, net, data, epochs=1, progress=False)
    training.train_epochs(new, net, data, epochs=1, progress=False)  # the returned one works
