"""jaxnn.train.memory: a network too big for the machine is one clear error, before allocation.

The estimate is compared with what jaxnn really allocates (params, optimizer
state); the checks run against this machine's real free memory where the
network is too big for any machine this suite runs on (4-100000-100000-3:
40 GB of W2 alone), and against a lowered limit (monkeypatched) to show that
init_state, fit and train_epochs stop before allocating anything. XLA's own
out-of-memory error (a 40 TB buffer fails at once, without touching memory)
becomes a one-line ValueError, in the API and in ``jaxnn train``.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

import jaxnn
from jaxnn.train import free_memory, memory

ROOT = Path(__file__).resolve().parent.parent
HUGE = jaxnn.Network((4, 100000, 100000, 3), ("relu", "relu", "softmax"), "cross_entropy")
HUGE_BYTES = 160e9  # its params, adam's m and v, and the gradients


def _free():
    free = free_memory.available_bytes()
    assert free is not None and free[0] > 0
    return free[0]


@pytest.mark.parametrize("optimizer", ["gd", "sgd", "momentum", "adam"])
def test_the_estimate_counts_what_init_state_allocates(optimizer):
    net = jaxnn.Network((5, 7, 3), ("tanh", "softmax"), "cross_entropy")
    e = memory.estimate_bytes(net, 16, optimizer)
    state = jaxnn.init_state(jaxnn.init_params(jax.random.key(0), net), jax.random.key(1),
                             optimizer=optimizer)
    nbytes = lambda tree: sum(x.nbytes for x in jax.tree.leaves(tree))  # noqa: E731
    assert e.params == nbytes(state.params) == (7 * 5 + 7 + 3 * 7 + 3) * 4
    assert e.opt_state == nbytes(state.opt_state)
    assert e.grads == e.params
    assert e.activations == (5 + 2 * (7 + 3)) * 16 * 4  # X, then Z and A of each layer
    assert e.total == e.params + e.opt_state + e.grads + e.activations
    assert (e.layer, e.layer_bytes) == (1, (7 * 5 + 7) * 4)


def test_an_oversize_network_is_refused_with_one_line():
    if _free() > HUGE_BYTES:
        pytest.skip("this machine has the memory to train it")
    t = time.perf_counter()
    with pytest.raises(ValueError) as info:
        jaxnn.check_memory(HUGE, 120, optimizer="adam")
    message = str(info.value)
    assert time.perf_counter() - t < 1.0  # from the shapes: nothing traced, nothing allocated
    assert "\n" not in message
    assert message.startswith("the network 4-100000-100000-3 needs about 160.2 GB (params 40.0 GB, "
                              "optimizer state 80.0 GB, gradients 40.0 GB, activations of a batch "
                              "of 120 192.0 MB) but only ")
    assert "its largest layer, layer 2 (W2: 100000 x 100000 float32, 40.0 GB), is too big" in message


def test_a_container_limit_lowers_what_is_free(monkeypatch):
    # cgroup v2: 8 GB limit, 7.5 GB used of which 3 GB is inactive page cache -> 3.5 GB free
    files = {"/sys/fs/cgroup/memory.max": 8 * 2**30, "/sys/fs/cgroup/memory.current": 7.5 * 2**30}
    monkeypatch.setattr(free_memory, "_read_int", lambda path: files.get(path))
    monkeypatch.setattr(free_memory, "_stat", lambda path, key: 3 * 2**30 if key == "inactive_file"
                        else 0)
    free, source = free_memory.host_available_bytes()
    if source.startswith("MemAvailable"):  # the host itself has less than 3.5 GB free
        pytest.skip("the host has less free memory than the container limit leaves")
    assert free == 3.5 * 2**30
    assert source == "the container's memory limit (/sys/fs/cgroup/memory.max)"
    files["/sys/fs/cgroup/memory.max"] = 2**63 - 4096  # "no limit"
    assert free_memory.host_available_bytes()[1].startswith("MemAvailable")


@pytest.fixture
def one_megabyte(monkeypatch):
    """The host (where CPU devices allocate) has 1 MB free."""
    monkeypatch.setattr(free_memory, "host_available_bytes", lambda: (1_000_000, "a 1 MB test limit"))


NET = jaxnn.Network((4, 1000, 1000, 3), ("relu", "relu", "softmax"), "cross_entropy")  # 4 MB


def test_init_state_and_fit_stop_before_allocating(one_megabyte):
    params = jaxnn.init_params(jax.random.key(0), NET)
    before = len(jax.live_arrays())
    expected = ("init_state: the params and optimizer state need about 12.1 MB (a copy of the params "
                "4.0 MB, optimizer state 8.1 MB) but only 1.0 MB is free (a 1 MB test limit); its "
                "largest array, W2 (1000, 1000) (4.0 MB), is too big")
    with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        jaxnn.init_state(params, jax.random.key(1), optimizer="adam")
    with pytest.raises(ValueError, match="init_state: the params and optimizer state need"):
        jaxnn.fit(params, NET, (jnp.ones((4, 8)), jnp.eye(3, 8)), epochs=1, key=jax.random.key(1),
                  optimizer="adam", progress=False)
    assert len(jax.live_arrays()) == before  # nothing was allocated


def test_train_epochs_stops_before_allocating(monkeypatch):
    state = jaxnn.init_state(jaxnn.init_params(jax.random.key(0), NET), jax.random.key(1))
    X, Y = jnp.ones((4, 512)), jnp.eye(3, 512)
    before = len(jax.live_arrays())
    monkeypatch.setattr(free_memory, "host_available_bytes", lambda: (1_000_000, "a 1 MB test limit"))
    with pytest.raises(ValueError) as info:
        jaxnn.train_epochs(state, NET, (X, Y), epochs=1, batch_size=512, progress=False)
    assert str(info.value).startswith(
        "training: the gradients and activations need about 12.2 MB (gradients 4.0 MB, "
        "activations of a batch of 512 8.2 MB) but only 1.0 MB is free (a 1 MB test limit); its "
        "largest array, W2 (1000, 1000) (4.0 MB), is too big")
    assert len(jax.live_arrays()) == before
    assert not any(x.is_deleted() for x in jax.tree.leaves(state))  # not donated: still usable


def test_an_xla_out_of_memory_becomes_one_line():
    with pytest.raises(ValueError) as info:
        with memory.out_of_memory_as_error():
            jnp.zeros((10**13,), jnp.float32).block_until_ready()  # 40 TB: refused at once
    message = str(info.value)
    assert message.startswith("out of memory: XLA could not allocate 40000000000000 bytes "
                              "(40.0 TB); ")
    assert "\n" not in message
    with pytest.raises(TypeError):  # other errors pass unchanged
        with memory.out_of_memory_as_error():
            raise TypeError("not memory")


def _start(folder, *flags, code=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAXNN_", "JAX_COORD"))}
    env.update(JAX_PLATFORMS="cpu", JAXNN_CACHE_DIR="")
    argv = ["train", "--dataset", "iris", "--no-progress", "--no-plot", *flags]
    command = [sys.executable, "-m", "jaxnn", *argv] if code is None else \
        [sys.executable, "-c", code, *argv]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, cwd=folder, start_new_session=True), time.monotonic()


def _finish(started, timeout=90):
    """(exit status, stderr, seconds); killed if it outlives ``timeout`` (it used to hang)."""
    proc, t = started
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    return proc.returncode, err, time.monotonic() - t


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """Both jaxnn train runs side by side (each is mostly jax's start-up)."""
    folder = tmp_path_factory.mktemp("memory_cli")
    # the estimate is told that 1 EB is free, so a 400 TB W2 reaches XLA, which refuses it
    told = ("import sys; import jaxnn.train.free_memory as m; "
            "m.available_bytes = lambda device=None: (10**18, 'a 1 EB test limit'); "
            "from jaxnn.cli.main import main; sys.exit(main(sys.argv[1:]))")
    started = {"oversize": _start(folder, "--layers", "100000,100000", "--out", "big"),
               "xla": _start(folder, "--layers", "10000000,10000000", "--out", "xla", code=told)}
    return folder, {name: _finish(run) for name, run in started.items()}


def test_jaxnn_train_refuses_an_oversize_network_at_once(cli_runs):
    if _free() > HUGE_BYTES:
        pytest.skip("this machine has the memory to train it")
    folder, runs = cli_runs
    status, err, seconds = runs["oversize"]
    assert status == 2, err
    assert err.count("\n") == 1, err
    assert err.startswith("jaxnn train: error: --layers 100000,100000: the network "
                          "4-100000-100000-3 needs about 160.2 GB"), err
    assert "layer 2 (W2: 100000 x 100000 float32, 40.0 GB)" in err
    assert seconds < 60  # it used to hang forever
    assert not list((folder / "big").glob("ckpt-*"))


def test_jaxnn_train_turns_an_xla_out_of_memory_into_one_line(cli_runs):
    # before, the failed asynchronous allocation left the command waiting forever
    status, err, seconds = cli_runs[1]["xla"]
    assert status == 2, err
    assert err.count("\n") == 1, err
    assert err.startswith("jaxnn train: error: out of memory: XLA could not allocate "
                          "400000000000000 bytes (400.0 TB); use fewer"), err
    assert seconds < 60
