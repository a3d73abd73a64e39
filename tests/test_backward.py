"""The hand-derived backward pass against jax.grad (formulas §4; conventions §3).

The grid: every hidden activation x every output activation/loss pairing, depths
1 to 4, batch sizes 1 and 37, float32 (<= 1e-5) and float64 (<= 1e-10). One test
per case and dtype; all 144 networks of a dtype are compiled as one program (see
``_all_manual_vs_autodiff``), the first test to need it builds it.
"""

import concurrent.futures
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import HIDDEN, OUTPUT_PAIRINGS, relative_error_np

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
BATCHES = (1, 37)


def _problem(acts, loss, m, dtype, seed=0):
    """(net, params, X, Y), drawn with NumPy on the host: no eager JAX op to compile per shape."""
    sizes = (SIZES[0], *SIZES[1 : len(acts)], 3)
    net = jaxnn.Network(sizes, acts, loss)
    rng = np.random.default_rng(seed)
    params = []
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        W = rng.standard_normal((n_out, n_in)) * np.sqrt(2 / (n_in + n_out))  # xavier
        # biases away from zero so db and the softmax/identity paths are exercised;
        # a positive output bias keeps ReLU outputs alive even for m = 1
        b = 0.1 * rng.standard_normal((n_out, 1)) + (0.5 if l == net.L else 0.0)
        params.append({"W": jnp.asarray(W, dtype), "b": jnp.asarray(b, dtype)})
    X = rng.standard_normal((sizes[0], m))
    if loss == "cross_entropy":
        Y = np.eye(net.n_L)[:, rng.integers(0, net.n_L, m)]
    elif loss == "bce":
        Y = (rng.random((net.n_L, m)) < 0.5).astype(np.float64)
    else:
        Y = rng.standard_normal((net.n_L, m))
    return net, params, jnp.asarray(X, dtype), jnp.asarray(Y, dtype)


def _manual_vs_autodiff(params, X, Y, net):
    J1, g1 = jaxnn.value_and_manual_grad(params, X, Y, net)
    J2, g2 = jaxnn.value_and_autodiff_grad(params, X, Y, net)
    return J1, J2, g1, g2


# The whole grid in ONE compiled program per dtype: XLA compiles one program of 144
# small networks several times faster than 144 programs of one. The program returns
# both gradients; their relative error is computed on the host (relative_error_np):
# its many small reductions would double the compilation time. LLVM optimisation
# level 0 compiles it in about two thirds of the time: these tiny kernels do not need
# optimising, and the level changes the speed of the code, not the IEEE arithmetic it
# performs. (The other compiled tests in this file run at the default level.)
@functools.partial(jax.jit, static_argnums=1, compiler_options={"xla_backend_optimization_level": 0})
def _all_manual_vs_autodiff(problems, nets):
    return [_manual_vs_autodiff(params, X, Y, net) for (params, X, Y), net in zip(problems, nets)]


@functools.cache
def _grids():
    """{dtype: {(acts, loss, m): (structure of params, (J1, J2, manual grads, autodiff grads))}} on the host.

    Each program is compiled in a thread as soon as it is traced: XLA releases the
    GIL, so the float32 compilation overlaps the float64 tracing and compilation.
    None if building them fails (an error raised while tracing one network): each
    test then runs its own case alone, so the failures say which cases break.
    """
    try:
        return _build_grids()
    except Exception:  # noqa: BLE001
        return None


def _build_grids():
    pending = {}
    with concurrent.futures.ThreadPoolExecutor(len(TOL)) as pool:
        for dtype in TOL:
            with jax.enable_x64(dtype == jnp.float64):
                keys, nets, problems = [], [], []
                for acts, loss in CASES:
                    for m in BATCHES:
                        net, params, X, Y = _problem(acts, loss, m, dtype)
                        keys.append((acts, loss, m))
                        nets.append(net)
                        problems.append((params, X, Y))
                lowered = _all_manual_vs_autodiff.trace(problems, tuple(nets)).lower()
            pending[dtype] = keys, problems, pool.submit(lowered.compile)
    grids = {}
    for dtype, (keys, problems, compiled) in pending.items():
        with jax.enable_x64(dtype == jnp.float64):
            out = jax.device_get(compiled.result()(problems))
        grids[dtype] = {k: (jax.tree.structure(p[0]), o) for k, p, o in zip(keys, problems, out)}
    return grids


def _one_case(acts, loss, m, dtype):
    net, params, X, Y = _problem(acts, loss, m, dtype)
    out = jax.jit(_manual_vs_autodiff, static_argnums=3)(params, X, Y, net)
    return jax.tree.structure(params), jax.device_get(out)


def _compare(acts, loss, dtype):
    grids = _grids()
    for m in BATCHES:
        if grids is not None:
            params_structure, (J1, J2, g1, g2) = grids[dtype][acts, loss, m]
        else:
            params_structure, (J1, J2, g1, g2) = _one_case(acts, loss, m, dtype)
        assert jax.tree.structure(g1) == jax.tree.structure(g2) == params_structure
        assert all(a.dtype == dtype for a in jax.tree.leaves(g1))
        err = relative_error_np(g1, g2)
        assert err <= TOL[dtype], f"{acts}/{loss} m={m}: relative error {err:.2e}"
        np.testing.assert_allclose(J1, J2, rtol=10 * TOL[dtype])
        # a vacuous all-zero comparison would prove nothing
        assert max(np.max(np.abs(x)) for x in jax.tree.leaves(g2)) > 0


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


@functools.partial(jax.jit, static_argnums=3)
def _saturated(params, X, Y, net):
    _, cache = jaxnn.forward(params, X, net)
    J1, g1 = jaxnn.value_and_manual_grad(params, X, Y, net)
    J2, g2 = jaxnn.value_and_autodiff_grad(params, X, Y, net)
    return cache[-1]["Z"], J1, g1, J2, g2


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
    Z_L, J1, g1, J2, g2 = _saturated(params, X, Y, net)
    assert float(np.max(np.abs(Z_L))) == pytest.approx(100.0, rel=1e-3)
    leaves = [J1, J2, *jax.tree.leaves(g1), *jax.tree.leaves(g2)]
    assert all(bool(np.all(np.isfinite(x))) for x in leaves)
    assert float(J1) > 50  # confidently wrong examples cost a lot, but finitely
    assert relative_error_np(g1, g2) <= 1e-5


@functools.partial(jax.jit, static_argnums=3)
def _l2_and_dropout(params, X, Y, net, key):
    kwargs = dict(l2=0.3, key=key, keep_prob=0.75)
    _, g1 = jaxnn.value_and_manual_grad(params, X, Y, net, **kwargs)
    _, g2 = jaxnn.value_and_autodiff_grad(params, X, Y, net, **kwargs)
    _, g0 = jaxnn.value_and_manual_grad(params, X, Y, net, key=key, keep_prob=0.75)
    return g1, g2, g0


@pytest.mark.parametrize("hidden", ["relu", "tanh"])
def test_l2_and_dropout_gradients_match_autodiff(hidden, x64):
    net, params, X, Y = _problem((hidden, hidden, "softmax"), "cross_entropy", 37, x64)
    g1, g2, g0 = _l2_and_dropout(params, X, Y, net, jax.random.key(7))
    assert relative_error_np(g1, g2) <= 1e-10
    # L2 decays W only: db is unchanged by l2
    for a, b, p in zip(g1, g0, params):
        np.testing.assert_allclose(a["b"], b["b"], rtol=1e-14)
        np.testing.assert_allclose(a["W"] - b["W"], 0.3 / 37 * p["W"], rtol=1e-9, atol=1e-15)


def test_traced_l2_under_vmap():
    net, params, X, Y = _problem(("tanh", "identity"), "mse", 8, jnp.float32)

    @jax.jit  # one program; l2 is still a traced (vmapped) value inside it
    def both(lams):
        manual = jax.vmap(lambda lam: jaxnn.value_and_manual_grad(params, X, Y, net, l2=lam)[1])(lams)
        autodiff = jax.vmap(lambda lam: jaxnn.value_and_autodiff_grad(params, X, Y, net, l2=lam)[1])(lams)
        return manual, autodiff

    manual, autodiff = both(jnp.array([0.0, 0.5, 2.0]))
    assert relative_error_np(manual, autodiff) <= 1e-5


def test_backward_is_jittable_and_vmappable_over_an_ensemble():
    net, params, X, Y = _problem(("relu", "sigmoid"), "bce", 11, jnp.float32)
    # four different members, stacked along a leading axis (built on the host)
    members = [_problem(("relu", "sigmoid"), "bce", 11, jnp.float32, seed=s)[1] for s in range(1, 5)]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *members)

    # jit of vmap: one compiled program (vmap's batching rules are the same with or without jit)
    @functools.partial(jax.jit, static_argnums=3)
    def both(stacked, X, Y, net):
        ensemble = lambda f: jax.vmap(f, in_axes=(0, None, None, None))(stacked, X, Y, net)  # noqa: E731
        return ensemble(jaxnn.value_and_manual_grad), ensemble(jaxnn.value_and_autodiff_grad)

    (J1, g1), (J2, g2) = both(stacked, X, Y, net)
    assert J1.shape == (4,)
    assert len(set(np.asarray(J2).tolist())) == 4  # really four different members
    np.testing.assert_allclose(J1, J2, rtol=1e-6)
    assert relative_error_np(g1, g2) <= 1e-5


def test_backward_checks_its_inputs():
    net, params, X, Y = _problem(("relu", "sigmoid"), "bce", 6, jnp.float32)
    _, cache = jaxnn.forward(params, X, net)
    with pytest.raises(ValueError, match="cache must be the list of 2"):
        jaxnn.backward(params, cache[:1], Y, net)
    with pytest.raises(ValueError, match=r"Y has shape \(6, 3\).*pass Y\.T"):
        jaxnn.backward(params, cache, Y.T, net)
