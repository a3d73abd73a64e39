"""Property test: manual == autodiff in float64 within 1e-10 on random networks (conventions §3).

Random layer sizes (1..16), depths (1..4), batch sizes (1..32), hidden
activations, valid output pairings and seeds. Each example is a new network,
so a new compilation: the example count is kept small.
"""

import jax
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxnn
from jaxnn.check import SWEEP_HIDDEN, SWEEP_PAIRINGS, check_gradients, make_problem

jax.config.update("jax_numpy_rank_promotion", "raise")


@st.composite
def problems(draw):
    L = draw(st.integers(1, 4))
    sizes = tuple(draw(st.lists(st.integers(1, 16), min_size=L + 1, max_size=L + 1)))
    hidden = tuple(draw(st.sampled_from(SWEEP_HIDDEN)) for _ in range(L - 1))
    output, loss = draw(st.sampled_from(SWEEP_PAIRINGS))
    m = draw(st.integers(1, 32))
    seed = draw(st.integers(0, 2**31 - 1))
    return jaxnn.Network(sizes, (*hidden, output), loss), m, seed


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_manual_equals_autodiff_in_float64(case):
    net, m, seed = case
    with jax.enable_x64(True):
        params, X, Y = make_problem(net, m, "float64", seed)
        report = check_gradients(params, X, Y, net, methods=("autodiff",))
    assert report.dtype == "float64"
    assert report.errors["autodiff"] <= 1e-10, str(report)
