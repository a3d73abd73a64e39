"""Shared test configuration (conventions §5).

* ``jax_numpy_rank_promotion="raise"``: a bias of shape (n_l,) instead of
  (n_l, 1) would otherwise broadcast silently along the batch.
* ``x64``: float64 switched on for one test only (float32 stays the default).
* ``jit``: runs a test's function both eagerly and compiled.
* ``relative_error_np``: the relative error of conventions §3 computed in NumPy
  (no eager JAX op to compile per shape).
* ``site``: the docs built once per test run (``mkdocs build --strict``), for
  tests/test_docs.py and tests/test_docs_browser.py, shared by the xdist workers.
* The order of the test files, longest first (``SECONDS``): xdist hands them out in that
  order, so that both workers finish together.
* One persistent compilation cache per test run, in a new temporary folder that the run
  deletes at its end (``pytest_configure``): a program one xdist worker compiled, the other
  loads instead of compiling it again (the same XLA executable: nothing computes differently).
  Only the test processes use it; the subprocesses the tests start keep their own settings.
* XLA flags that compile faster (``SUITE_XLA_FLAGS``: the classic CPU emitters, LLVM at -O0),
  for this process and every subprocess the tests start (the CLI, notebooks, the multi-device
  and multi-process children): the suite is bound by XLA compile time. Measured on the 2-core
  VM: the classic emitters cut compiling by about 40%, -O0 the CPU of compile-heavy test files
  by another quarter (whole suite 403 -> 345 -> about 330 s). They change round-off only, as
  another CPU would (at -O0 some of jax.random.normal's values differ in the last bit).
  tests/test_suite_flags.py measures the agreement with a child process at XLA's defaults
  (``run_at_xla_defaults``); a test of a documented example's exact output runs its example
  there too, as a user would. Children that set XLA_FLAGS add theirs with ``with_xla_flag``,
  which keeps these.
"""

import fcntl
import functools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

# Read by XLA when JAX first creates its CPU client, which no import does: set here, before any
# test computes, and inherited by the xdist workers and the subprocesses through the environment.
SUITE_XLA_FLAGS = ("--xla_cpu_use_fusion_emitters=false", "--xla_backend_optimization_level=0")
# The SUITE_XLA_FLAGS this run uses (space-separated, "" for none), decided once by the first
# pytest process and inherited by the others.
SUITE_XLA_FLAGS_ENV = "JAXNN_TESTS_XLA_FLAGS"


def with_xla_flag(env: dict, flag: str) -> dict:
    """``env`` with ``flag`` appended to its XLA_FLAGS (kept, not replaced)."""
    return dict(env, XLA_FLAGS=" ".join([*env.get("XLA_FLAGS", "").split(), flag]))


def at_xla_defaults(env: dict) -> dict:
    """``env`` without the SUITE_XLA_FLAGS in its XLA_FLAGS (the caller's own flags kept)."""
    return dict(env, XLA_FLAGS=" ".join(f for f in env.get("XLA_FLAGS", "").split()
                                        if f not in SUITE_XLA_FLAGS))


def run_at_xla_defaults(code: str, timeout: float = 180):
    """Run ``code`` in a child process at XLA's default flags (as a user runs it); it defines
    RESULT (JSON-able), which comes back."""
    code += "\nimport json as _json; print('RESULT ' + _json.dumps(RESULT))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(at_xla_defaults(os.environ), JAX_PLATFORMS="cpu"),
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RESULT ", 1)[1])


def _xla_knows(*flags: str) -> bool:
    """Whether this jaxlib's XLA accepts ``flags``: XLA aborts the process on an unknown one, and
    XLA is retiring the classic emitters, so a later jaxlib may not know it. A child process
    tries them (about a second)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    for flag in flags:
        env = with_xla_flag(env, flag)
    try:
        probe = subprocess.run([sys.executable, "-c", "import jax; jax.devices('cpu')"],
                               env=env, capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        return False
    return probe.returncode == 0


if SUITE_XLA_FLAGS_ENV not in os.environ:
    missing = [f for f in SUITE_XLA_FLAGS if f not in os.environ.get("XLA_FLAGS", "").split()]
    if missing and not _xla_knows(*missing):  # one probe; flag by flag only when it fails
        missing = [f for f in missing if _xla_knows(f)]
    for flag in missing:
        os.environ.update(with_xla_flag(os.environ, flag))
    os.environ[SUITE_XLA_FLAGS_ENV] = " ".join(
        f for f in SUITE_XLA_FLAGS if f in os.environ.get("XLA_FLAGS", "").split())


def pytest_report_header(config):
    return f"XLA_FLAGS: {os.environ.get('XLA_FLAGS', '(unset)')}"

# The run's compilation cache folder, made by the first pytest process (the xdist controller, or
# the only process without xdist) and handed to the workers it starts through the environment.
# A variable of our own, not JAX_COMPILATION_CACHE_DIR: the subprocesses the tests start (the
# CLI, the multi-process runs, notebooks) inherit the environment, and must not share it.
RUN_CACHE_ENV = "JAXNN_TESTS_RUN_XLA_CACHE"


def pytest_configure(config):
    if RUN_CACHE_ENV not in os.environ:
        os.environ[RUN_CACHE_ENV] = tempfile.mkdtemp(prefix="jaxnn-tests-xla-cache-")
        config._jaxnn_run_cache = os.environ[RUN_CACHE_ENV]  # this process deletes it at the end
    jax.config.update("jax_compilation_cache_dir", os.environ[RUN_CACHE_ENV])
    # every program, however small: the eager primitives and random draws are most of them
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
    folder = getattr(config, "_jaxnn_run_cache", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(RUN_CACHE_ENV, None)

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


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _flat_draw(key, sampler, n, kw):
    return sampler(key, shape=(n,), **dict(kw))


def draw(sampler, key, shape, **kw):
    """``sampler(key, shape=shape, **kw)`` for a ``jax.random`` sampler: the same numbers, bit for bit.

    jax.random compiles one program per shape (~0.3 s for a normal); this draws a
    flat vector of a power-of-two length (>= 256) and keeps its first prod(shape)
    values, reshaped on the host: with threefry_partitionable (JAX's default) a
    value depends only on the key and its flat position, as init_params relies on
    (jaxnn/core/initializers.py; tests/test_initializers.py checks this helper).
    """
    n = math.prod(shape)
    if not jax.config.jax_threefry_partitionable:
        return sampler(key, shape=shape, **kw)
    flat = _flat_draw(key, sampler, 1 << max(8, (n - 1).bit_length()), tuple(sorted(kw.items())))
    return jax.device_put(np.asarray(flat)[:n].reshape(shape))


def make_targets(key, net, m, dtype=jnp.float32):
    """Valid targets Y (n_L, m) for ``net``'s loss: one-hot, 0/1, or real."""
    loss = net.loss_fn.name
    if loss == "cross_entropy":
        labels = np.asarray(draw(jax.random.randint, key, (m,), minval=0, maxval=net.n_L))
        return jax.device_put(np.eye(net.n_L, dtype=dtype)[labels].T)
    if loss == "bce":
        return jax.device_put(np.asarray(draw(jax.random.bernoulli, key, (net.n_L, m), p=0.5)).astype(dtype))
    return draw(jax.random.normal, key, (net.n_L, m), dtype=dtype)


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
    """The docs site, built once per test run with warnings as errors (mkdocs --strict).

    Under xdist the two docs files may run on different workers: the site is built into
    the run's shared temporary folder (the parent of each worker's own) under a file lock,
    by whichever worker comes first; the other waits for it and reads the same site.
    """
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    pytest.importorskip("material")
    pytest.importorskip("mkdocs_jupyter")
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return _build_site(tmp_path_factory.mktemp("site"))
    shared = tmp_path_factory.getbasetemp().parent
    with open(shared / "site.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        site = shared / "site"
        if not (shared / "site.built").exists():
            shutil.rmtree(site, ignore_errors=True)  # a build that failed part way
            _build_site(site)
            (shared / "site.built").touch()
    return site


def _build_site(site: Path) -> Path:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
         "-d", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return site


# --- xdist scheduling -------------------------------------------------------------------------
# Seconds one worker spends on each file (junit times summed per file: the full suite on the
# 2-core VM with two workers, 2026-12-06 03:48, with SUITE_XLA_FLAGS; rounded; files under 4 s
# left out). They set only the ORDER in which xdist hands the files out (pyproject: --dist
# loadfile --no-loadscope-reorder), longest first: the longest-processing-time rule, which keeps
# the last files to start short, so that one worker does not run a long file alone at the end
# (xdist's own order, most tests first, left the 1-test notebooks, up to 55 s each, for last).
# A file not listed counts DEFAULT_SECONDS; a stale number only changes the order, never what
# runs.
SECONDS = {
    "test_multiprocess.py": 62, "test_check.py": 51, "test_check_verdict.py": 37,
    "test_faults.py": 36, "test_training.py": 36, "02_gradient_checking.ipynb": 29,
    "test_backward.py": 26, "test_check_assert.py": 25, "03_training_on_tpu.ipynb": 22,
    "test_doctests.py": 19, "test_check_noise.py": 19, "test_parallel.py": 19,
    "test_check_vjp.py": 18, "test_cli_train.py": 16, "test_check_hypothesis.py": 15,
    "test_memory.py": 15, "test_check_inputs.py": 14, "test_cli_gradcheck.py": 13,
    "test_initializers.py": 13, "test_precision.py": 13, "test_accuracy.py": 13,
    "test_docs_browser.py": 11, "test_readme.py": 11, "01_formulas_to_code.ipynb": 9,
    "test_check_search.py": 9, "test_docs.py": 7, "test_suite_flags.py": 7, "test_baseline.py": 7,
    "test_check_explain.py": 7, "test_step.py": 6, "test_checkpoint.py": 6,
    "test_floor_smoke.py": 6, "test_activations.py": 5, "test_cli.py": 5, "test_forward.py": 5,
    "test_losses.py": 4, "test_validation.py": 4,
}
DEFAULT_SECONDS = 3


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """The test files longest first (SECONDS); the order within a file is kept."""
    first = {}
    for i, item in enumerate(items):
        first.setdefault(Path(str(item.path)).name, i)
    items.sort(key=lambda it: (-SECONDS.get(Path(str(it.path)).name, DEFAULT_SECONDS),
                               first[Path(str(it.path)).name]))
