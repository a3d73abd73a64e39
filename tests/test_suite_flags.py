"""The suite's XLA flags (tests/conftest.py, ``SUITE_XLA_FLAGS``) change round-off, nothing else.

The suite compiles with XLA's classic CPU emitters and LLVM at -O0 to cut its compile time. A
child process at XLA's default flags computes the same forward pass, hand-derived gradients,
three epochs of formulas §5 gradient descent and gradient check as this process: the numbers
agree to float32 round-off (conventions §3's relative error) and both checks pass.
"""

import os

import numpy as np
import pytest
from conftest import SUITE_XLA_FLAGS_ENV, relative_error_np, run_at_xla_defaults

PROGRAM = """
import jax, numpy as np, jaxnn
net = jaxnn.Network((5, 8, 6, 3), ("tanh", "sigmoid", "softmax"), "cross_entropy")
params = jaxnn.init_params(jax.random.key(0), net)
X = np.random.default_rng(1).standard_normal((5, 64)).astype(np.float32)
Y = np.eye(3, dtype=np.float32)[np.arange(64) % 3].T

@jax.jit
def forward_backward(params, X, Y):
    AL, cache = jaxnn.forward(params, X, net)
    return AL, jaxnn.backward(params, cache, Y, net)

AL, grads = forward_backward(params, X, Y)
trained, history = jaxnn.fit(params, net, (X, Y), epochs=3, batch_size=16, learning_rate=0.5,
                    key=jax.random.key(2), progress=False)
report = jaxnn.check_gradients(params, X, Y, net)
leaves = {"AL": AL, **{f"grad{i}": g for i, g in enumerate(jax.tree.leaves(grads))},
          **{f"trained{i}": p for i, p in enumerate(jax.tree.leaves(trained))},
          "cost": history["cost"]}
RESULT = {"passed": bool(report.passed), **{k: np.asarray(v).tolist() for k, v in leaves.items()}}
"""


def _here() -> dict:
    scope = {}
    exec(PROGRAM, scope)
    return scope["RESULT"]


@pytest.mark.skipif(not os.environ.get(SUITE_XLA_FLAGS_ENV),
                    reason="this run uses none of the suite's XLA flags (its jaxlib knows none)")
def test_suite_flags_agree_with_xla_defaults_to_round_off():
    in_use = os.environ[SUITE_XLA_FLAGS_ENV].split()
    assert set(in_use) <= set(os.environ["XLA_FLAGS"].split())
    here, default = _here(), run_at_xla_defaults(PROGRAM)
    assert here["passed"] and default["passed"]
    keys = [k for k in here if k != "passed"]
    assert keys == [k for k in default if k != "passed"] and len(keys) == 1 + 6 + 6 + 1
    for k in keys:
        a, b = np.asarray(here[k], np.float32), np.asarray(default[k], np.float32)
        assert a.shape == b.shape and np.all(np.isfinite(a)), k
        # a few float32 ulps of each result (eps = 1.2e-7), grown over three epochs at most
        assert relative_error_np(a, b) <= 1e-5, (k, relative_error_np(a, b))
