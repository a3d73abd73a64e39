"""Data-parallel training (jaxnn.parallel) against single-device training.

The multi-device checks run in ONE subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``: the flag is read when
jax initialises its CPU backend, so it must be set before jax is imported and
cannot be switched on inside this (already initialised) process. The child
prints its measurements as JSON; the assertions are made here.

Agreement bound: the all-reduce sums the per-device partial sums of dW and db
in a different order than one device does, so sharded and single-device
params differ by float32 rounding only. Measured after 20 steps (GD and Adam,
manual and autodiff, two networks): normwise relative error 3e-8 .. 4e-8;
with padding + mask 4.5e-8 .. 8.6e-8. The bound used, 1e-6, is >10x the
measurement and still ~10^5 times smaller than the error of a wrong
reduction (a missing all-reduce, or 1/m counted per device instead of
globally, gives errors of order 1e-1).
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import with_xla_flag

import jaxnn
from jaxnn.devices import mesh as parallel

REDUCTION_ORDER_TOL = 1e-6

CHILD = textwrap.dedent(
    r'''
    import json
    import jax, jax.numpy as jnp, numpy as np, optax
    from jax.sharding import PartitionSpec as P
    import jaxnn
    from jaxnn.devices import mesh as par
    GRAD_FUNCTIONS = {"manual": jaxnn.value_and_manual_grad, "autodiff": jaxnn.value_and_autodiff_grad}

    jax.config.update("jax_numpy_rank_promotion", "raise")
    out = {"devices": len(jax.devices())}
    mesh = par.make_mesh()
    STEPS = 20

    def host(t):
        return jax.device_get(t)

    def reference(net, opt, grad, p0, X, Y, l2=0.0, steps=STEPS):
        """Single-device training with the core: value_and_*_grad, then sgd_update or optax."""
        vg = GRAD_FUNCTIONS[grad]
        gd = not isinstance(opt, optax.GradientTransformation)

        @jax.jit
        def step(p, s, X, Y):
            _, g = vg(p, X, Y, net, l2=l2)
            if gd:
                return jaxnn.sgd_update(p, g, opt), s
            u, s = opt.update(g, s, p)
            return optax.apply_updates(p, u), s

        p, s = p0, (() if gd else opt.init(p0))
        for _ in range(steps):
            p, s = step(p, s, X, Y)
        return p

    CONFIGS = {
        "softmax": [("manual", "gd"), ("autodiff", "adam")],
        "sigmoid": [("manual", "adam"), ("autodiff", "gd")],
    }
    OPTS = {"gd": 0.5, "adam": optax.adam(1e-2)}

    nets = {
        "softmax": jaxnn.Network((4, 16, 3), ("tanh", "softmax"), "cross_entropy"),
        "sigmoid": jaxnn.Network((4, 32, 16, 1), ("relu", "tanh", "sigmoid"), "bce"),
    }
    X = jax.random.normal(jax.random.key(1), (4, 64))
    Ys = {
        "softmax": jax.nn.one_hot(jax.random.randint(jax.random.key(2), (64,), 0, 3), 3).T,
        "sigmoid": (X[:1] * X[1:2] > 0).astype(jnp.float32),
    }
    Xs = None
    errors = {}
    for name, net in nets.items():
        p0 = jaxnn.init_params(jax.random.key(0), net, init="xavier")
        Y = Ys[name]
        Xs, Ys_ = par.shard_batch(X, Y, mesh)
        for grad, oname in CONFIGS[name]:
            train = jaxnn.make_train_step(net, OPTS[oname], mesh=mesh, grad=grad)
            p, s = train.init(p0)
            for _ in range(STEPS):
                p, s, J = train.step(p, s, Xs, Ys_)
            ref = reference(net, OPTS[oname], grad, p0, X, Y)
            errors[f"{name}/{grad}/{oname}"] = float(jaxnn.relative_error(host(ref), host(p)))
        out["moved"] = float(jaxnn.relative_error(host(p), host(p0)))
    out["errors"] = errors

    # placement: columns split 4 ways, params replicated, XLA inserted the all-reduce
    out["X_spec"] = list(Xs.sharding.spec)
    out["X_shards"] = sorted((s.device.id, s.data.shape) for s in Xs.addressable_shards)
    out["params_replicated"] = all(x.sharding.is_fully_replicated for x in jax.tree.leaves(p))
    out["opt_state_replicated"] = all(x.sharding.is_fully_replicated for x in jax.tree.leaves(s))
    hlo = train.step.lower(p, s, Xs, Ys_).compile().as_text()
    out["all_reduce"] = hlo.count("all-reduce")

    # m = 30 is not divisible by 4 devices
    net = nets["softmax"]
    p0 = jaxnn.init_params(jax.random.key(0), net, init="xavier")
    X30, Y30 = X[:, :30], Ys["softmax"][:, :30]
    try:
        par.shard_batch(X30, Y30, mesh)
        out["shard_error"] = None
    except ValueError as e:
        out["shard_error"] = str(e)
    train = jaxnn.make_train_step(net, 0.5, mesh=mesh)
    p, s = train.init(p0)
    try:
        train.step(p, s, X30, Y30)
        out["step_error"] = None
    except ValueError as e:
        out["step_error"] = str(e)
    # ... padded to 32 with a 0/1 mask: the same training as on the 30 real columns
    Xp, Yp, w = par.shard_padded_batch(X30, Y30, mesh)
    out["padded_shape"] = list(Xp.shape)
    out["w_sum"] = float(w.sum())
    padded = {}
    for grad, oname in CONFIGS["sigmoid"]:
        train = jaxnn.make_train_step(net, OPTS[oname], mesh=mesh, grad=grad, l2=0.1)
        p, s = train.init(p0)
        for _ in range(STEPS):
            p, s, J = train.step(p, s, Xp, Yp, w)
        ref = reference(net, OPTS[oname], grad, p0, X30, Y30, l2=0.1)
        padded[f"{grad}/{oname}"] = float(jaxnn.relative_error(host(ref), host(p)))
    out["padded_errors"] = padded

    # ensemble axis sharded instead of the batch: E = 4 stacked models, one per device
    net = nets["sigmoid"]
    P0 = jax.vmap(lambda k: jaxnn.init_params(k, net, init="xavier"))(
        jax.random.split(jax.random.key(3), 4))
    Y = Ys["sigmoid"]
    train = jaxnn.make_train_step(net, 0.5, mesh=mesh, ensemble=True)
    p, s = train.init(P0)
    Xr, Yr = par.replicate((X, Y), mesh)
    for _ in range(STEPS):
        p, s, J = train.step(p, s, Xr, Yr)
    step = jax.vmap(jaxnn.make_train_step(net, 0.5), in_axes=(0, None, None))
    ref = P0
    for _ in range(STEPS):
        ref, _ = step(ref, X, Y)
    out["ensemble_error"] = float(jaxnn.relative_error(host(ref), host(p)))
    out["ensemble_spec"] = list(p[0]["W"].sharding.spec)
    out["ensemble_shards"] = sorted(s_.data.shape for s_ in p[0]["W"].addressable_shards)
    out["J_shape"] = list(J.shape)

    # single host: shard_host_batch (deprecated) of this host's columns is shard_batch
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        cols = par.host_slice(64, jax.process_index(), jax.process_count())
        Xh, Yh = par.shard_host_batch(np.asarray(X)[:, cols], np.asarray(Ys["softmax"])[:, cols], mesh)
    out["host_batch_equal"] = bool(np.array_equal(np.asarray(Xh), np.asarray(X))) and \
        Xh.sharding == par.batch_sharding(mesh)

    # jaxnn.fit(mesh=...): whole compiled epochs, data parallel, against fit on one device
    from jaxnn.train import training
    net = nets["softmax"]
    p0 = jaxnn.init_params(jax.random.key(0), net, init="xavier")
    X50, Y50 = X[:, :50], Ys["softmax"][:, :50]  # 50 columns: batches of 16 leave a rest of 2
    fit_err = {}
    for grad, opt, B in [("manual", None, None), ("manual", "adam", 16), ("autodiff", "adam", 16)]:
        kw = dict(epochs=3, key=jax.random.key(5), optimizer=opt, batch_size=B, grad=grad,
                  progress=False)
        ref, h_ref = jaxnn.fit(p0, net, (X50, Y50), **kw)
        got, h_got = jaxnn.fit(p0, net, (X50, Y50), mesh=mesh, **kw)
        fit_err[f"{grad}/{opt}/{B}"] = float(jaxnn.relative_error(host(ref), host(got)))
    out["fit_errors"] = fit_err
    out["fit_moved"] = float(jaxnn.relative_error(host(got), host(p0)))
    out["fit_params_replicated"] = all(x.sharding.is_fully_replicated for x in jax.tree.leaves(got))
    try:
        jaxnn.fit(p0, net, (X50, Y50), epochs=1, key=jax.random.key(5), batch_size=10,
                  progress=False, mesh=mesh)
        out["fit_batch_error"] = None
    except ValueError as e:
        out["fit_batch_error"] = str(e)
    # the compiled epoch splits the batch: XLA inserted an all-reduce of the gradient
    from jaxnn.train.epoch import EpochSpec, epoch_order, run_epochs
    from jaxnn.train.step import settings
    state = jaxnn.init_state(p0, jax.random.key(5), optimizer="adam")
    spec = EpochSpec(settings(net, "adam"), 16, 1, "running", False, False, mesh, "batch", 4)
    Xr50, Yr50, orders = par.replicate((X50, Y50, epoch_order(np.zeros(2, np.uint32), 0, 50)[None]),
                                       mesh)
    hlo = run_epochs.lower(par.replicate(state, mesh), False, Xr50, Yr50, orders,
                           jnp.float32(0), None, spec).compile().as_text()
    out["fit_all_reduce"] = hlo.count("all-reduce")
    ens = {}
    P8 = jaxnn.init_ensemble(jax.random.key(6), net, 8)
    kw = dict(epochs=2, key=jax.random.key(7), optimizer="adam", batch_size=16, progress=False)
    ref, _ = jaxnn.fit_ensemble(P8, net, (X50, Y50), **kw)
    for shard in ("ensemble", "batch"):
        got, _ = jaxnn.fit_ensemble(P8, net, (X50, Y50), mesh=mesh, shard=shard, **kw)
        ens[shard] = float(jaxnn.relative_error(host(ref), host(got)))
        if shard == "ensemble":
            out["fit_ensemble_shards"] = sorted(s_.data.shape for s_ in got[0]["W"].addressable_shards)
    out["fit_ensemble_errors"] = ens

    # local_data=True: each device keeps its own 10 of the 40 columns and takes 3 of them per
    # step (B = 12), the last step the 1 left over; the same as a hand loop over those batches
    from jaxnn.train.epoch import local_orders
    X40, Y40 = X[:, :40], Ys["softmax"][:, :40]
    got, h_local = jaxnn.fit(p0, net, (X40, Y40), epochs=2, key=jax.random.key(8), batch_size=12,
                             learning_rate=0.5, mesh=mesh, local_data=True, progress=False)
    step = jax.jit(lambda p, X, Y: jaxnn.value_and_manual_grad(p, X, Y, net))
    p, costs = p0, []
    for e in range(2):
        order, total = local_orders(jax.random.key_data(jax.random.key(8)), e, 40, 4).reshape(4, 10), 0.0
        for lo, hi in ((0, 3), (3, 6), (6, 9), (9, 10)):
            cols = np.concatenate([d * 10 + order[d, lo:hi] for d in range(4)])
            J, g = step(p, X40[:, cols], Y40[:, cols])
            p, total = jaxnn.sgd_update(p, g, 0.5), total + float(J) * len(cols)
        costs.append(total / 40)
    out["local_error"] = float(jaxnn.relative_error(host(p), host(got)))
    out["local_cost_error"] = float(np.max(np.abs(np.asarray(h_local["cost"]) - costs)))
    out["local_moved"] = float(jaxnn.relative_error(host(got), host(p0)))

    print("RESULT " + json.dumps(out))
    '''
)


@pytest.fixture(scope="module")
def four_devices(tmp_path_factory):
    """Run the multi-device checks once in a child process with 4 forced CPU devices."""
    script = tmp_path_factory.mktemp("parallel") / "child.py"
    script.write_text(CHILD)
    env = dict(with_xla_flag(os.environ, "--xla_force_host_platform_device_count=4"),
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def test_child_sees_four_devices(four_devices):
    assert four_devices["devices"] == 4


def test_same_params_as_single_device(four_devices):
    errors = four_devices["errors"]
    assert set(errors) == {"softmax/manual/gd", "softmax/autodiff/adam", "sigmoid/manual/adam",
                           "sigmoid/autodiff/gd"}
    for name, err in errors.items():
        assert err <= REDUCTION_ORDER_TOL, (name, err)
    # the comparison is not vacuous: training moved the params by far more than the bound
    assert four_devices["moved"] > 1e3 * REDUCTION_ORDER_TOL


def test_batch_is_sharded_and_params_replicated(four_devices):
    assert four_devices["X_spec"] == [None, "batch"]
    assert four_devices["X_shards"] == [[d, [4, 16]] for d in range(4)]
    assert four_devices["params_replicated"] and four_devices["opt_state_replicated"]
    assert four_devices["all_reduce"] >= 1  # XLA inserted the gradient reduction


def test_non_divisible_batch_error_and_masked_padding(four_devices):
    for key in ("shard_error", "step_error"):
        msg = four_devices[key]
        assert msg is not None and "m = 30" in msg and "4 devices" in msg
        assert "shard_padded_batch" in msg
    assert four_devices["padded_shape"] == [4, 32] and four_devices["w_sum"] == 30.0
    assert set(four_devices["padded_errors"]) == {"manual/adam", "autodiff/gd"}
    for name, err in four_devices["padded_errors"].items():
        assert err <= REDUCTION_ORDER_TOL, (name, err)


def test_sharded_ensemble_axis(four_devices):
    assert four_devices["ensemble_error"] <= REDUCTION_ORDER_TOL
    assert four_devices["ensemble_spec"] == ["batch"]
    assert four_devices["ensemble_shards"] == [[1, 32, 4]] * 4
    assert four_devices["J_shape"] == [4]


def test_fit_with_mesh_matches_single_device(four_devices):
    errors = four_devices["fit_errors"]
    assert set(errors) == {"manual/None/None", "manual/adam/16", "autodiff/adam/16"}
    for name, err in errors.items():  # full batch of 50 is padded to 52: still the same training
        assert err <= REDUCTION_ORDER_TOL, (name, err)
    assert four_devices["fit_moved"] > 1e3 * REDUCTION_ORDER_TOL
    assert four_devices["fit_params_replicated"]
    assert four_devices["fit_all_reduce"] >= 1
    msg = four_devices["fit_batch_error"]
    assert msg is not None and "batch_size = 10" in msg and "multiple of 4" in msg


def test_fit_ensemble_with_mesh(four_devices):
    for shard, err in four_devices["fit_ensemble_errors"].items():
        assert err <= REDUCTION_ORDER_TOL, (shard, err)
    # shard="ensemble": each of the 4 devices holds 2 of the 8 models
    assert four_devices["fit_ensemble_shards"] == [[2, 16, 4]] * 4


def test_fit_local_data_equals_a_hand_loop_over_each_devices_columns(four_devices):
    assert four_devices["local_error"] <= REDUCTION_ORDER_TOL
    assert four_devices["local_cost_error"] <= 1e-5
    assert four_devices["local_moved"] > 1e3 * REDUCTION_ORDER_TOL


def test_host_batch_single_host(four_devices):
    assert four_devices["host_batch_equal"]


# --- in this process (one device is enough) ------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 3, 4, 8])
def test_host_slice_partitions_the_batch(count):
    m = 24 * count
    with pytest.deprecated_call(match="host_slice is deprecated"):
        slices = [parallel.host_slice(m, p, count) for p in range(count)]
    covered = np.concatenate([np.arange(m)[s] for s in slices])
    np.testing.assert_array_equal(covered, np.arange(m))  # contiguous, disjoint, in host order
    assert {s.stop - s.start for s in slices} == {m // count}


@pytest.mark.parametrize(
    "args, match",
    [
        ((10, 0, 4), "not divisible by the 4 hosts"),
        ((8, 4, 4), r"process_index = 4 must be in 0\.\.3"),
        ((8, -1, 4), "process_index"),
        ((8, 0, 0), "process_count = 0"),
        ((0, 0, 1), "m_global = 0"),
    ],
)
def test_host_slice_errors(args, match):
    with pytest.raises(ValueError, match=match):
        with pytest.deprecated_call():
            parallel.host_slice(*args)


def test_pad_batch_mask():
    X, Y, w = parallel.pad_batch(jnp.ones((2, 5)), jnp.ones((1, 5)), 4)
    assert X.shape == (2, 8) and Y.shape == (1, 8)
    np.testing.assert_array_equal(w, [1, 1, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(X[:, 5:], 0)


VG = {"manual": jaxnn.value_and_manual_grad, "autodiff": jaxnn.value_and_autodiff_grad}
PAIRINGS = [
    (("tanh", "softmax"), "cross_entropy"),
    (("relu", "sigmoid"), "bce"),
    (("sigmoid", "identity"), "mse"),
    (("leaky_relu", "softmax"), "mse"),
]


@pytest.mark.parametrize("acts, loss", PAIRINGS)
@pytest.mark.parametrize("grad", ["manual", "autodiff"])
def test_weighted_padding_equals_unpadded_core(acts, loss, grad):
    from conftest import make_targets

    net = jaxnn.Network((3, 5, 2), acts, loss)
    params = jaxnn.init_params(jax.random.key(0), net, init="xavier")
    X = jax.random.normal(jax.random.key(1), (3, 7))
    Y = make_targets(jax.random.key(2), net, 7)
    Xp, Yp, w = parallel.pad_batch(X, Y, 4)

    @jax.jit  # one compilation instead of ~100 eager primitives
    def both(params):
        return (jaxnn.value_and_autodiff_grad(params, X, Y, net, l2=0.3),
                VG[grad](params, Xp, Yp, net, w=w, l2=0.3))

    (J_ref, g_ref), (J, g) = both(params)
    assert float(jaxnn.relative_error(g, g_ref)) <= 1e-5  # conventions §3, float32
    np.testing.assert_allclose(J, J_ref, rtol=1e-6)


def test_masked_manual_vs_autodiff_float64(x64):
    from conftest import make_targets

    net = jaxnn.Network((3, 6, 4, 3), ("tanh", "relu", "softmax"), "cross_entropy")
    params = jaxnn.init_params(jax.random.key(0), net, dtype=x64)
    X = jax.random.normal(jax.random.key(1), (3, 9), x64)
    Y = make_targets(jax.random.key(2), net, 9, x64)
    Xp, Yp, w = parallel.pad_batch(X, Y, 4)

    @jax.jit
    def grads(params):
        return [g for _, g in (
            jaxnn.value_and_manual_grad(params, Xp, Yp, net, w=w, l2=0.1),
            jaxnn.value_and_autodiff_grad(params, Xp, Yp, net, w=w, l2=0.1),
            jaxnn.value_and_manual_grad(params, X, Y, net, l2=0.1))]

    manual, auto, core = grads(params)
    assert float(jaxnn.relative_error(manual, auto)) <= 1e-10
    assert float(jaxnn.relative_error(manual, core)) <= 1e-10


def test_single_device_mesh_and_errors():
    mesh = parallel.make_mesh(jax.devices()[:1])
    assert parallel.n_devices(mesh) == 1
    net = jaxnn.Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    with pytest.raises(ValueError, match="grad = 'numeric'"):
        jaxnn.make_train_step(net, 0.1, mesh=mesh, grad="numeric")
    with pytest.raises(ValueError, match="learning_rate"):
        jaxnn.make_train_step(net, -1.0, mesh=mesh)
    with pytest.raises(ValueError, match="same m"):
        parallel.shard_batch(jnp.ones((2, 4)), jnp.ones((1, 3)), mesh)
    with pytest.raises(ValueError, match="devices is empty"):
        parallel.make_mesh([])
    train = jaxnn.make_train_step(net, 0.1, mesh=mesh, ensemble=True)
    with pytest.raises(ValueError, match="leading"):
        train.init([{"W": jnp.ones((2, 3, 2)), "b": jnp.ones((3, 3, 1))},
                    {"W": jnp.ones((2, 1, 3)), "b": jnp.ones((2, 1, 1))}])
