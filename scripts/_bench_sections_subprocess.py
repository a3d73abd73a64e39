"""Whole-process sections of ``scripts/benchmark.py``: train, gradcheck, parallel, multiprocess."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

from _bench_core import Bench, ratio, table
from _bench_timing import log, process_wall

HERE = Path(__file__).resolve().parent


def _test_accuracy(impl: str, out: Path, stdout: str) -> str:
    """The final test accuracy a run reports (history.json for jaxnn, the last line for raw)."""
    try:
        if impl == "jaxnn":
            return f"{json.loads((out / 'history.json').read_text())['test_accuracy'][-1]:.4f}"
        return stdout.strip().splitlines()[-1].split()[2].rstrip(";")
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return "?"


def section_train(b: Bench) -> str:
    """8. ``python -m jaxnn train`` (defaults) vs scripts/raw_jax_digits.py, whole processes.

    Each process gets ``JAX_COMPILATION_CACHE_DIR`` set to a folder of its own in a
    temporary directory (``JAXNN_*`` variables removed, so ``jaxnn train`` respects it):
    the first run of a pair is cold (an empty cache, it compiles), the second warm.
    The user's own cache is neither used nor touched.
    """
    log("8. jaxnn train vs raw JAX script (whole processes)")
    title = ("### 8. `python -m jaxnn train` (defaults: digits recipe) vs a raw-JAX script "
             "doing the same job, whole process, start to exit")
    commands = {"jaxnn": lambda out: [sys.executable, "-m", "jaxnn", "train", "--out", str(out)],
                "raw": lambda out: [sys.executable, str(HERE / "raw_jax_digits.py")]}
    labels = {"jaxnn": "`python -m jaxnn train --out TMP`",
              "raw": "`python scripts/raw_jax_digits.py`"}
    env0 = {k: v for k, v in os.environ.items() if not k.startswith("JAXNN_")}
    walls: dict[tuple[str, str], list[float]] = {}
    status: dict[tuple[str, str], str] = {}
    accuracy: dict[str, str] = {}
    order = list(commands)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(b.s.process_repeats):
            impls = order[r % 2:] + order[: r % 2]
            caches = {impl: Path(tmp) / f"cache-{impl}-{r}" for impl in impls}
            for cache in ("cold", "warm"):
                for impl in impls:
                    out = Path(tmp) / f"run-{impl}-{r}-{cache}"
                    env = dict(env0, JAX_COMPILATION_CACHE_DIR=str(caches[impl]))
                    wall, why, stdout = process_wall(commands[impl](out), 300, env)
                    log(f"  {impl} {cache} #{r}: {wall or 0:.1f} s, {why}")
                    if why != "ok":
                        status[impl, cache] = why
                    elif wall is not None:
                        walls.setdefault((impl, cache), []).append(wall)
                        accuracy[impl] = _test_accuracy(impl, out, stdout)
    med = {k: statistics.median(v) for k, v in walls.items()}
    raw_cold = med.get(("raw", "cold"))
    rows = []
    for impl in commands:
        for cache in ("cold", "warm"):
            t = med.get((impl, cache))
            goal = ("≤ 1.2" if (impl, cache) == ("jaxnn", "cold")
                    else "< cold" if (impl, cache) == ("jaxnn", "warm") else "-")
            rows.append([labels[impl], f"{cache} ({'empty' if cache == 'cold' else '2nd run'})",
                         f"{t:.1f} s" if t else "-", ratio(t, raw_cold),
                         accuracy.get(impl, "-"), status.get((impl, cache), "ok"), goal])
            b.record("train", impl=impl, cache=cache, wall_s=t,
                     status=status.get((impl, cache), "ok"))
    return (
        title + "\n\n"
        + table(["command", "compile cache", "wall time", "× raw cold", "test accuracy",
                 "status", "goal"], rows)
        + f"\n\nMedian of {b.s.process_repeats} pair(s) of runs (cold then warm, each "
        "implementation with its own fresh JAX_COMPILATION_CACHE_DIR, JAX's default minimum "
        "compile time for caching), the two implementations alternated. The same job: "
        "scikit-learn's digits, 20% test, 64-512-10 ReLU, dropout keep 0.5, adam lr 1e-3, "
        "batch 64, 30 epochs, test scores each epoch. jaxnn train also checks the gradient "
        "before training, saves checkpoints and writes history.json and curves.png; the raw "
        "script does none of these (its split differs, so its accuracy is close, not equal)."
    )


def section_gradcheck(b: Bench) -> str:
    """9. ``python -m jaxnn gradcheck`` (the full built-in sweep) as a whole process."""
    log("9. jaxnn gradcheck subprocess")
    title = "### 9. `python -m jaxnn gradcheck` (full sweep), whole subprocess, start to exit"
    wall, status, _ = process_wall([sys.executable, "-m", "jaxnn", "gradcheck"], 300)
    b.record("gradcheck", wall_s=wall, status=status)
    return title + "\n\n" + table(["command", "wall time", "status", "goal"], [[
        "`python -m jaxnn gradcheck`", f"{wall:.1f} s" if wall is not None else "-", status,
        "< 60 s"]])


_PARALLEL_CHILD = r"""
import json, statistics, sys, time
import jax, jax.numpy as jnp, jaxnn
steps, repeats = int(sys.argv[1]), int(sys.argv[2])
net = jaxnn.Network((64, 128, 128, 10), ("relu", "relu", "softmax"), "cross_entropy")
B = 128
X = jax.random.normal(jax.random.key(1), (64, B * steps))
Y = jax.nn.one_hot(jax.random.randint(jax.random.key(2), (B * steps,), 0, 10), 10).T
p0 = jaxnn.init_params(jax.random.key(0), net)
out = {"devices": len(jax.devices())}
for name, mesh in (("1 device", None), (f"{len(jax.devices())} devices, mesh=", jaxnn.make_mesh())):
    kw = dict(epochs=1, key=jax.random.key(3), optimizer="adam", batch_size=B, progress=False,
              eval_train=False, mesh=mesh)
    jax.block_until_ready(jaxnn.fit(p0, net, (X, Y), **kw)[0])  # compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(jaxnn.fit(p0, net, (X, Y), **kw)[0])
        times.append((time.perf_counter() - t0) / steps)
    out[name] = statistics.median(times)
print("RESULT " + json.dumps(out))
"""


def section_parallel(b: Bench) -> str:
    """10. ``jaxnn.fit`` on one device vs data parallel over 4 forced CPU devices.

    Runs in a subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``:
    on one CPU the 4 "devices" share the same cores, so this measures the overhead of
    sharding and the all-reduce, not a speed-up. On real multi-chip hardware run
    notebook 03 or ``jaxnn.fit(..., mesh=jaxnn.make_mesh())`` there.
    """
    log("10. data parallel, 4 forced CPU devices (subprocess)")
    title = "### 10. Data parallel: `jaxnn.fit` on 1 device vs `mesh=` over 4 forced CPU devices"
    header = ["run", "ms/step", "steps/s", "× 1 device"]
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    steps = 5 if b.s.quick else 100
    proc = None
    try:
        proc = subprocess.run([sys.executable, "-c", _PARALLEL_CHILD, str(steps),
                               str(b.s.repeats)], capture_output=True, text=True, timeout=300,
                              env=env)
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
        res = json.loads(line[len("RESULT "):])
    except (subprocess.TimeoutExpired, StopIteration) as e:
        why = type(e).__name__ if proc is None else (
            f"exit {proc.returncode}: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:200])
        b.record("parallel", status=f"failed: {why}")
        return title + f"\n\nn/a (the child process failed: {why})"
    one = res.pop("1 device")
    res.pop("devices")
    rows = [["1 device", f"{one * 1e3:.3g}", f"{1 / one:,.0f}", "1.00"]]
    for name, t in res.items():
        rows.append([name, f"{t * 1e3:.3g}", f"{1 / t:,.0f}", f"{t / one:.2f}"])
        b.record("parallel", run=name, s_per_step=t, one_device_s_per_step=one)
    note = ("small net (64-128-128-10), adam, batch 128 (32 columns per device), "
            f"{steps} steps per epoch, eval_train=False. The 4 devices are forced on the "
            "same CPU cores: this shows the cost of sharding and the all-reduce, not a speed-up.")
    return title + "\n\n" + table(header, rows) + "\n\n" + note


def section_multiprocess(b: Bench) -> str:
    """11. ``jaxnn.fit`` on 1 process x 4 devices vs 2 processes x 2 devices.

    The rows come from ``bench_multiprocess()`` in scripts/_bench_multiprocess.py;
    when it is missing or fails, the section says why and the run goes on.
    """
    log("11. multi-process (scripts/_bench_multiprocess.py)")
    title = "### 11. Across processes: 1 process × 4 devices vs 2 processes × 2 devices"
    try:
        import _bench_multiprocess as MP

        rows = MP.bench_multiprocess(steps=5 if b.s.quick else 100, repeats=b.s.repeats,
                                     timeout=120 if b.s.quick else 300)
        header = getattr(MP, "HEADER", ["run", "ms/step", "steps/s", "× 1 process"])
        note = getattr(MP, "NOTE", "")
    except Exception as e:  # its author's file: report, do not sink the other sections
        traceback.print_exc(file=sys.stderr)
        why = f"{type(e).__name__}: {e}".splitlines()[0][:200]
        b.record("multiprocess", status=f"failed: {why}")
        return (title + f"\n\nn/a: scripts/_bench_multiprocess.py `bench_multiprocess()` "
                f"could not run ({why}).")
    for row in rows:
        b.record("multiprocess", row=row)
    if "speed-up" not in note:
        note += " On one machine this measures the collective overhead, not a speed-up."
    return title + "\n\n" + table(header, rows) + "\n\n" + note.strip()
