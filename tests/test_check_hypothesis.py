"""Property tests: correct gradients of random networks never raise a false alarm (conventions §3).

Random layer sizes (1..8), depths (1..4), batch sizes (1..16), hidden
activations (ReLU and leaky ReLU, with their kinks, included), valid output
pairings, dtypes and seeds, with every method: a correct backward pass must
pass every one, whatever the conditioning of the draw. Each example is a new
network, so a new compilation: the example count is kept small.
"""

import jax
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxnn
from jaxnn.check import METHODS, SWEEP_HIDDEN, SWEEP_PAIRINGS, check_gradients, make_problem

jax.config.update("jax_numpy_rank_promotion", "raise")


@st.composite
def problems(draw):
    L = draw(st.integers(1, 4))
    sizes = tuple(draw(st.lists(st.integers(1, 8), min_size=L + 1, max_size=L + 1)))
    hidden = tuple(draw(st.sampled_from(SWEEP_HIDDEN)) for _ in range(L - 1))
    output, loss = draw(st.sampled_from(SWEEP_PAIRINGS))
    m = draw(st.integers(1, 16))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([1.0, 1.0, 5.0]))  # now and then, saturated pre-activations
    dtype = draw(st.sampled_from(["float32", "float64"]))
    return jaxnn.Network(sizes, (*hidden, output), loss), m, seed, scale, dtype


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_correct_gradients_never_fail(case):
    net, m, seed, scale, dtype = case
    with jax.enable_x64(dtype == "float64"):
        params, X, Y = make_problem(net, m, dtype, seed)
        params = [{"W": scale * p["W"], "b": p["b"]} for p in params]
        report = check_gradients(params, X, Y, net, methods=METHODS)
    assert report.dtype == dtype
    assert report.passed, str(report)
    assert report.errors["autodiff"] <= report["autodiff"].threshold + report["autodiff"].noise
