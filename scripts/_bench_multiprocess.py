"""Benchmark rows: ``jaxnn.fit`` on 1 process x 4 devices vs 2 processes x 2 devices.

Both runs train the same small net (64-128-128-10, relu, softmax +
cross-entropy) with adam, batch 128 (32 columns per device), on the same 4
forced CPU devices in all; the 2-process run starts through
``scripts/launch_local.py`` (gloo collectives over 127.0.0.1). On ONE
machine the two processes share the same cores, so the difference is the
cost of the cross-process all-reduce of dW, db each step (and of the
processes competing for the cores), not a speed-up: real multi-host runs add
compute with each host, and their network sets the collective's cost.

``scripts/benchmark.py`` calls ``bench_multiprocess()`` and prints
``HEADER`` and the rows as a Markdown table, with ``NOTE`` under it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = ["run", "ms/step", "steps/s", "× 1 process"]
NOTE = ("small net (64-128-128-10), adam, batch 128 (32 columns per device), eval_train=False, "
        "median of repeated epochs after compilation. All 4 devices are forced on the same "
        "CPU cores of one machine: the 2-process row measures the cost of the all-reduce "
        "across processes (gloo over 127.0.0.1), not a speed-up.")

_CHILD = r"""
import json, statistics, sys, time
import jaxnn.devices.processes as dist
if dist.requested_by_environment():
    dist.initialize(heartbeat_timeout_s=30)
import jax, jaxnn
steps, repeats = int(sys.argv[1]), int(sys.argv[2])
net = jaxnn.Network((64, 128, 128, 10), ("relu", "relu", "softmax"), "cross_entropy")
B = 128
X = jax.random.normal(jax.random.key(1), (64, B * steps))  # the same on every process
Y = jax.nn.one_hot(jax.random.randint(jax.random.key(2), (B * steps,), 0, 10), 10).T
p0 = jaxnn.init_params(jax.random.key(0), net)
kw = dict(epochs=1, key=jax.random.key(3), optimizer="adam", batch_size=B, progress=False,
          eval_train=False, mesh=jaxnn.make_mesh())
jax.block_until_ready(jaxnn.fit(p0, net, (X, Y), **kw)[0])  # compile
times = []
for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(jaxnn.fit(p0, net, (X, Y), **kw)[0])
    times.append((time.perf_counter() - t0) / steps)
if dist.is_main_process():
    print("RESULT " + json.dumps({"s_per_step": statistics.median(times),
                                  "devices": jax.device_count(),
                                  "processes": jax.process_count()}), flush=True)
"""


def _run(command, env, timeout):
    """(seconds per step, None) from a child's RESULT line, or (None, why it failed)."""
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout,
                              start_new_session=True)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    for line in proc.stdout.splitlines():
        if "RESULT " in line:
            return json.loads(line.split("RESULT ", 1)[1])["s_per_step"], None
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines()
             if ln.strip() and "[Gloo]" not in ln and "[launch]" not in ln]
    tail = (lines or ["?"])[-1][:120].replace("|", "/")
    return None, f"exit {proc.returncode}: {tail}"


def bench_multiprocess(steps: int = 100, repeats: int = 5, timeout: float = 600) -> list[list[str]]:
    """Time ``jaxnn.fit`` per step on 1 process x 4 devices and on 2 processes x 2 devices.

    Args:
      steps: minibatch steps per timed epoch (the data has steps x 128 columns).
      repeats: timed epochs per run (the median is reported), after one to compile.
      timeout: seconds each run may take before it is killed.

    Returns:
      Rows for a Markdown table with columns ``HEADER``; a failed run's row says why.

    >>> rows = bench_multiprocess(steps=5, repeats=1)  # doctest: +SKIP
    """
    with tempfile.TemporaryDirectory() as tmp:
        child = Path(tmp) / "bench_child.py"
        child.write_text(_CHILD)
        env = {k: v for k, v in os.environ.items() if not k.startswith("JAXNN_")}
        one_env = dict(env, XLA_FLAGS="--xla_force_host_platform_device_count=4",
                       JAX_PLATFORMS="cpu")
        args = [str(child), str(steps), str(repeats)]
        one, why_one = _run([sys.executable, *args], one_env, timeout)
        two, why_two = _run([sys.executable, str(HERE / "launch_local.py"), "-n", "2",
                             "--devices-per-process", "2", "--timeout", str(timeout), "--",
                             sys.executable, *args], env, timeout + 30)
    rows = []
    for name, t, why in (("1 process x 4 devices", one, why_one),
                         ("2 processes x 2 devices", two, why_two)):
        if t is None:
            rows.append([name, f"n/a ({why})", "-", "-"])
        else:
            rel = f"{t / one:.2f}" if one else "-"
            rows.append([name, f"{t * 1e3:.3g}", f"{1 / t:,.0f}", rel])
    return rows


if __name__ == "__main__":
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for row in bench_multiprocess(steps=int(sys.argv[1]) if len(sys.argv) > 1 else 100):
        print("| " + " | ".join(row) + " |")
    print("\n" + NOTE)
