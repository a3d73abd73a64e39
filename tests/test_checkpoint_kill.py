"""A save killed with SIGKILL at a random moment always leaves a restorable latest checkpoint.

One helper process imports jaxnn once (without starting a JAX backend, so forking
it is safe), then per round forks a child that saves epoch after epoch into one
folder until it is killed mid-loop. After each kill the test restores the
folder's latest checkpoint and checks it bit for bit; the next child resumes
from there, so its first save also has to clear what the killed one left.
"""

import os
import random
import select
import subprocess
import sys
import time

import jax
import numpy as np

from jaxnn import checkpoint

ROUNDS = 20

# Shared by the helper and the test: the Network, and the state saved at each epoch
# (every value derived from the epoch, so a restored file can be checked bit for bit).
COMMON = """
import numpy as np
from jaxnn import Network, TrainState, checkpoint

NET = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")


def make_key():  # jax.random.key(7) without compiling its seeding program in every child
    import jax
    return jax.random.wrap_key_data(np.array([0, 7], np.uint32))


def state_at(epoch, key):
    W1 = np.float32(epoch) + np.arange(6, dtype=np.float32).reshape(3, 2) / 8
    params = [{"W": W1, "b": np.full((3, 1), -epoch, np.float32)},
              {"W": np.full((1, 3), epoch / 2, np.float32), "b": np.full((1, 1), epoch, np.float32)}]
    return TrainState(params=params, opt_state=(), step=np.int32(10 * epoch), key=key,
                      epoch=np.int32(epoch))
"""
_common: dict = {}
exec(COMMON, _common)  # the very definitions the helper runs
NET, make_key, state_at = _common["NET"], _common["make_key"], _common["state_at"]

# The helper: "go START DELAY_MS" forks a child saving epochs START, START+1, ...;
# after the child's first save it waits DELAY_MS, SIGKILLs it and answers "killed".
HELPER = COMMON + r"""
import os, select, signal, sys, time

folder = sys.argv[1]
print("ready", flush=True)
for line in sys.stdin:
    start, delay_ms = map(int, line.split()[1:])
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        key = make_key()
        epoch = start
        while True:
            checkpoint.save(folder, state_at(epoch, key), NET, keep=2)
            if epoch == start:
                os.write(w, b"s")
            epoch += 1
    os.close(w)
    ok = select.select([r], [], [], 20)[0]
    if ok:
        time.sleep(delay_ms / 1000)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(r)
    print("killed" if ok else "no-save", flush=True)
"""


def _read_line(proc, timeout):
    if not select.select([proc.stdout], [], [], timeout)[0]:
        raise AssertionError(f"the helper did not answer within {timeout} s")
    return proc.stdout.readline().strip()


def test_sigkill_during_save_always_leaves_a_valid_latest(tmp_path):
    key = make_key()
    like = state_at(0, key)
    proc = subprocess.Popen([sys.executable, "-c", HELPER, str(tmp_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, JAX_PLATFORMS="cpu"))
    rng = random.Random(0)
    t0, start, leftovers = time.monotonic(), 1, 0
    try:
        assert _read_line(proc, 30) == "ready"
        for _ in range(ROUNDS):
            proc.stdin.write(f"go {start} {rng.randint(0, 30)}\n")
            proc.stdin.flush()
            assert _read_line(proc, 25) == "killed"
            leftovers += any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
            restored = checkpoint.restore(tmp_path, NET, like=like)
            epoch = int(restored.epoch)
            assert epoch >= start  # the child's first save completed before the kill
            want = state_at(epoch, key)
            for a, b in zip(jax.tree.leaves(restored._replace(key=jax.random.key_data(key))),
                            jax.tree.leaves(want._replace(key=jax.random.key_data(key))),
                            strict=True):
                np.testing.assert_array_equal(a, b, strict=False)
            assert np.array_equal(jax.random.key_data(restored.key), jax.random.key_data(key))
            start = epoch + 1
    finally:
        proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()
    # a clean save clears every temporary file the kills left and prunes to keep=2
    checkpoint.save(tmp_path, state_at(start, key), NET, keep=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["LATEST", f"ckpt-{start - 1:06d}.npz", f"ckpt-{start:06d}.npz"]
    print(f"{ROUNDS} kills in {time.monotonic() - t0:.1f} s, last epoch {start}, "
          f"{leftovers} left temporary files behind")
