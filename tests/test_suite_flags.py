"""The suite's XLA flag (tests/conftest.py, ``SUITE_XLA_FLAG``) changes round-off, nothing else.

The suite compiles with XLA's classic CPU emitters to cut its compile time. A child process
with XLA's default CPU code computes the same forward pass, hand-derived gradients, three
epochs of formulas §5 gradient descent and gradient check as this process: the numbers agree to
float32 round-off (conventions §3's relative error) and both checks pass.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import SUITE_XLA_FLAG, SUITE_XLA_FLAG_ENV, relative_error_np

PROGRAM = """
import json, jax, numpy as np, jaxnn
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


def _with_xla_defaults() -> dict:
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if f != SUITE_XLA_FLAG]
    env = dict(os.environ, XLA_FLAGS=" ".join(flags), JAX_PLATFORMS="cpu")
    code = PROGRAM + "\nprint('RESULT ' + json.dumps(RESULT))"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RESULT ", 1)[1])


@pytest.mark.skipif(os.environ.get(SUITE_XLA_FLAG_ENV) != "1",
                    reason=f"this run does not use {SUITE_XLA_FLAG} (its jaxlib does not know it)")
def test_suite_flag_agrees_with_xla_defaults_to_round_off():
    assert SUITE_XLA_FLAG in os.environ["XLA_FLAGS"].split()
    here, default = _here(), _with_xla_defaults()
    assert here["passed"] and default["passed"]
    keys = [k for k in here if k != "passed"]
    assert keys == [k for k in default if k != "passed"] and len(keys) == 1 + 6 + 6 + 1
    for k in keys:
        a, b = np.asarray(here[k], np.float32), np.asarray(default[k], np.float32)
        assert a.shape == b.shape and np.all(np.isfinite(a)), k
        # a few float32 ulps of each result (eps = 1.2e-7), grown over three epochs at most
        assert relative_error_np(a, b) <= 1e-5, (k, relative_error_np(a, b))
