"""Shared test configuration (conventions §5).

* ``jax_numpy_rank_promotion="raise"``: a bias of shape (n_l,) instead of
  (n_l, 1) would otherwise broadcast silently along the batch.
* ``x64``: float64 switched on for one test only (float32 stays the default).
* ``jit``: runs a test's function both eagerly and compiled.
* ``relative_error_np``: the relative error of conventions §3 computed in NumPy
  (no eager JAX op to compile per shape).
* ``site``: the docs built once per test process (``mkdocs build --strict``), for
  tests/test_docs.py and tests/test_docs_browser.py.
"""

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

ROOT = Path(__file__).resolve().parents[1]

# The grids of activation x loss pairings every gradient test sweeps.
HIDDEN = ("sigmoid", "tanh", "relu", "leaky_relu", "identity", "softmax")
OUTPUT_PAIRINGS = (
    ("sigmoid", "bce"),
    ("softmax", "cross_entropy"),
    ("identity", "mse"),
    ("sigmoid", "mse"),
    ("tanh", "mse"),
    ("relu", "mse"),
    ("leaky_relu", "mse"),
    ("softmax", "mse"),
)


@pytest.fixture
def x64():
    """Float64 for the duration of one test."""
    with jax.enable_x64(True):
        yield jnp.float64


@pytest.fixture(params=[False, True], ids=["eager", "jit"])
def jit(request):
    """``jit(f)`` is ``f`` itself or ``jax.jit(f)``: the same test, compiled and not."""
    return jax.jit if request.param else (lambda f, **kw: f)


def make_targets(key, net, m, dtype=jnp.float32):
    """Valid targets Y (n_L, m) for ``net``'s loss: one-hot, 0/1, or real."""
    loss = net.loss_fn.name
    if loss == "cross_entropy":
        labels = jax.random.randint(key, (m,), 0, net.n_L)
        return jax.nn.one_hot(labels, net.n_L, dtype=dtype).T
    if loss == "bce":
        return jax.random.bernoulli(key, 0.5, (net.n_L, m)).astype(dtype)
    return jax.random.normal(key, (net.n_L, m), dtype)


def relative_error_np(g1, g2) -> float:
    """conventions §3's ||g1 - g2|| / max(||g1|| + ||g2||, 1e-30) over two pytrees, in NumPy float64.

    The formula of ``jaxnn.relative_error`` with no JAX op: eagerly, every new leaf
    shape would compile its own reductions, and inside a compiled program their
    many small kernels slow the compilation down. A test's measuring instrument,
    not what it tests.
    """
    if jax.tree.structure(g1) != jax.tree.structure(g2):
        raise ValueError(f"relative_error_np: {jax.tree.structure(g1)} vs {jax.tree.structure(g2)}")
    a, b = ([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(g)] for g in (g1, g2))
    a, b = np.concatenate(a), np.concatenate(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-30))


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """The docs site, built once per test process with warnings as errors (mkdocs --strict)."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    pytest.importorskip("material")
    pytest.importorskip("mkdocs_jupyter")
    site = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
         "-d", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return site
