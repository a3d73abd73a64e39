"""jaxnn benchmark: prints Markdown tables of speed RATIOS measured in one run (conventions §6).

Usage:
  python scripts/benchmark.py                  # everything (~3 min on 2 CPU cores)
  python scripts/benchmark.py --quick          # smoke run, < 1 minute (sections 1-4)
  python scripts/benchmark.py --sections grad,flops --json bench.json

Sections (``--sections``, by name or number):
  1 grad        hand-derived backward vs jax.grad: the same training step, the same jit
  2 throughput  jaxnn vs raw JAX, NumPy, Flax NNX, Equinox, PyTorch (CPU), idiomatic loops, Adam
  3 flops       achieved FLOP/s on the large net / this machine's measured f32 matmul ceiling
  4 ensemble    32 models in one vmapped program: time per model / one model alone
  5 train       ``python -m jaxnn train`` (defaults) as a subprocess, start to exit
  6 gradcheck   ``python -m jaxnn gradcheck`` (the full sweep) as a subprocess
  7 parallel    ``jaxnn.fit`` on 1 device vs ``mesh=`` over 4 forced CPU devices (subprocess)

Method: every number is the MEDIAN of repeated timed runs after a warm-up run
that compiles. A timed run is a whole run of N training steps that blocks
(``block_until_ready``) only at its end, divided by N: no loop blocks per step.
Ratios are computed between numbers from the same run of this script. Nothing
here asserts a speed; the goals are printed beside the numbers.

Nets: small = 64-128-128-10 (ReLU, ReLU, softmax, cross-entropy), batch 128;
large = 784-1024-1024-10, batch 512. Data are random float32 (speed does not
depend on the values). Flax, Equinox and PyTorch are optional (the [bench]
extra); a missing one prints "not installed". PyTorch and NumPy always run on
the CPU; everything in JAX runs on the default backend, whatever it is.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _peers as P  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

SECTIONS = ("grad", "throughput", "flops", "ensemble", "train", "gradcheck", "parallel")
NETS = {
    "small": ((64, 128, 128, 10), 128),
    "large": ((784, 1024, 1024, 10), 512),
}
N_BATCHES = 8  # distinct pre-made batches, cycled
ENSEMBLE = 32


def log(*args) -> None:
    """Progress goes to stderr; stdout is only the Markdown report."""
    print(*args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- settings


class Settings:
    def __init__(self, quick: bool, repeats: int | None):
        self.quick = quick
        # Steps per timed run. The small net runs 100 (the "100 steps fused" of raw JAX scan).
        self.steps = {"small": 50 if quick else 100, "large": 2 if quick else 20}
        self.ensemble_steps = 20 if quick else 100
        self.repeats = repeats or (3 if quick else 5)
        on_cpu = jax.default_backend() == "cpu"
        # The ceiling is the best median over these square sizes (small ones underrate a big chip).
        self.ceiling_sizes = ((2048,) if quick else (2048, 4096)) if on_cpu else (4096, 8192)


# ---------------------------------------------------------------------------------- timing


def timed(run, steps: int, repeats: int) -> float:
    """Median seconds per step of ``run(steps)`` over ``repeats`` runs, after one warm-up run."""
    run(steps)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(steps)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / steps


def timed_pair(run_a, run_b, steps: int, repeats: int) -> tuple[float, float]:
    """Like ``timed`` for two runs, interleaved (a, b, a, b, ...) so drift hits both alike."""
    run_a(steps)
    run_b(steps)
    ta, tb = [], []
    for _ in range(repeats):
        for run, times in ((run_a, ta), (run_b, tb)):
            t0 = time.perf_counter()
            run(steps)
            times.append(time.perf_counter() - t0)
    return statistics.median(ta) / steps, statistics.median(tb) / steps


class Unavailable(Exception):
    """A row that cannot be measured here (peer not installed, jaxnn part missing)."""


def _training_has(name: str) -> bool:
    try:
        from jaxnn import training
    except ImportError:
        return False
    return hasattr(training, name)


# Implementations of section 2: key -> (label, loop, factory(sizes, data)).
def _impls() -> dict:
    def need(module: str, factory):
        def make(sizes, data):
            if importlib.util.find_spec(module) is None:
                raise Unavailable("not installed")
            return factory(sizes, data)

        return make

    def need_fit(**kwargs):
        def make(sizes, data):
            if not _training_has("fit"):
                raise Unavailable("n/a (jaxnn.training.fit not available)")
            return P.make_jaxnn_fit(sizes, data, **kwargs)

        return make

    return {
        "jaxnn_fit": ("jaxnn.fit", "1 call = 1 epoch, lax.scan", need_fit()),
        "jaxnn_fit_noeval": ("jaxnn.fit, eval_train=False", "1 call = 1 epoch, lax.scan",
                             need_fit(eval_train=False)),
        "jaxnn_scan": ("jaxnn grads + optax.adam, no fit", "lax.scan over N steps",
                       P.make_jaxnn_scan),
        "raw_jax_step": ("raw JAX (jax.grad + optax)", "jit per step, donated",
                         P.make_raw_jax_step),
        "raw_jax_scan": ("raw JAX (jax.grad + optax)", "lax.scan over N steps",
                         P.make_raw_jax_scan),
        "numpy": ("NumPy, hand-written (CPU)", "Python loop", P.make_numpy),
        "flax_nnx": ("Flax NNX", "nnx.jit per step", need("flax", P.make_flax_nnx)),
        "equinox": ("Equinox", "eqx.filter_jit per step", need("equinox", P.make_equinox)),
        "torch": ("PyTorch eager (CPU)", "Python loop", need("torch", P.make_torch)),
    }


class Bench:
    def __init__(self, settings: Settings):
        self.s = settings
        self.data = {}
        self.memo: dict[tuple[str, str], float | str] = {}
        self.rows: list[dict] = []  # for --json
        self.impls = _impls()

    def batches(self, net: str) -> P.Batches:
        if net not in self.data:
            sizes, batch = NETS[net]
            self.data[net] = P.make_batches(sizes, batch, N_BATCHES)
        return self.data[net]

    def measure(self, key: str, net: str) -> float | str:
        """Seconds per step of implementation ``key`` on ``net`` (memoised), or a reason string."""
        if (key, net) not in self.memo:
            label, _, factory = self.impls[key]
            sizes, _ = NETS[net]
            t0 = time.perf_counter()
            try:
                run = factory(sizes, self.batches(net))
                self.memo[key, net] = timed(run, self.s.steps[net], self.s.repeats)
                log(f"  {label} [{net}]: {time.perf_counter() - t0:.1f} s")
            except Unavailable as e:
                self.memo[key, net] = str(e)
            except Exception as e:  # a broken peer must not sink the whole report
                traceback.print_exc(file=sys.stderr)
                self.memo[key, net] = f"error: {type(e).__name__}"
        return self.memo[key, net]

    def record(self, section: str, **row) -> None:
        self.rows.append({"section": section, **row})


# ---------------------------------------------------------------------------------- formatting


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def ms(t) -> str:
    return f"{t * 1e3:.3g}" if isinstance(t, float) else t


def per_s(t, batch) -> str:
    return f"{batch / t:,.0f}" if isinstance(t, float) else "-"


def ratio(a, b) -> str:
    return f"{a / b:.2f}" if isinstance(a, float) and isinstance(b, float) else "-"


def num(t):
    return t if isinstance(t, float) else None


# ---------------------------------------------------------------------------------- header


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    import jaxlib

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    info = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": f"{os.cpu_count()} (usable: {affinity})",
        "load average (1 min) at start": f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "?",
        "python": platform.python_version(),
        "jax / jaxlib": f"{jax.__version__} / {jaxlib.__version__}",
        "backend": jax.default_backend(),
        "devices": ", ".join(str(d) for d in jax.devices()),
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", "(unset)"),
        "numpy": np.__version__,
        "optax": optax.__version__,
    }
    for name in ("flax", "equinox", "torch"):
        if importlib.util.find_spec(name) is None:
            info[name] = "not installed"
        else:
            mod = __import__(name)
            info[name] = mod.__version__
            if name == "torch":
                info[name] += f" ({mod.get_num_threads()} threads)"
    return info


# ---------------------------------------------------------------------------------- sections


def section_grad(b: Bench) -> str:
    """1. manual / jax.grad time ratio for the same step under the same jit."""
    log("1. manual vs jax.grad")
    rows = []
    for net in ("small", "large"):
        sizes, batch = NETS[net]
        data = b.batches(net)
        steps = b.s.steps[net]
        loops = [
            ("make_train_step, jit per step, donated",
             lambda g, sizes=sizes, data=data: P.make_jaxnn_train_step(sizes, data, grad=g)),
            ("SGD steps in one lax.scan",
             lambda g, sizes=sizes, data=data: P.make_jaxnn_scan(
                 sizes, data, grad=g, tx=optax.sgd(0.01))),
        ]
        for loop, make in loops:
            log(f"  {loop} [{net}] ...")
            t_manual, t_auto = timed_pair(make("manual"), make("autodiff"), steps, b.s.repeats)
            if loop.startswith("make_train_step"):
                b.memo["train_step_manual", net] = t_manual
            rows.append([net, loop, ms(t_manual), ms(t_auto), ratio(t_manual, t_auto), "≤ 1.00"])
            b.record("grad", net=net, loop=loop, manual_s_per_step=t_manual,
                     autodiff_s_per_step=t_auto, ratio=t_manual / t_auto)
    return "### 1. Hand-derived backward vs jax.grad (same step, same jit)\n\n" + table(
        ["net", "loop", "manual ms/step", "jax.grad ms/step", "manual / jax.grad", "goal"], rows)


def section_throughput(b: Bench) -> str:
    """2. jaxnn vs peers, each in its idiomatic loop, Adam, on both nets."""
    log("2. throughput")
    ref_key = "jaxnn_fit" if _training_has("fit") else "jaxnn_scan"
    rows = []
    for key, (label, loop, _) in b.impls.items():
        cells = [label, loop]
        for net in ("small", "large"):
            t = b.measure(key, net)
            ref = b.measure(ref_key, net)
            batch = NETS[net][1]
            cells += [ms(t), per_s(t, batch), ratio(t, ref)]
            b.record("throughput", impl=label, loop=loop, net=net, s_per_step=num(t),
                     examples_per_s=batch / t if isinstance(t, float) else None,
                     note=None if isinstance(t, float) else t)
        rows.append(cells)
    ref_label = b.impls[ref_key][0]
    overhead = ""
    if _training_has("fit"):
        # The fixed cost of one fit call (state set-up, dispatch, history), seen on a 1-step epoch.
        sizes, _ = NETS["small"]
        per_call = timed(P.make_jaxnn_fit(sizes, b.batches("small")), 1, b.s.repeats)
        b.record("throughput", impl="jaxnn.fit fixed cost per call (1-step epoch, small net)",
                 s_per_call=per_call)
        overhead = (f" One `jaxnn.fit` call costs {per_call * 1e3:.1f} ms even for a 1-step "
                    "epoch (small net): that fixed cost is inside the jaxnn.fit rows.")
    return (
        "### 2. Training throughput, Adam (lr 1e-3), idiomatic loops\n\n"
        + table(["implementation", "loop", "small ms/step", "small ex/s", f"small × {ref_label}",
                 "large ms/step", "large ex/s", f"large × {ref_label}"], rows)
        + f"\n\nsmall: {'-'.join(map(str, NETS['small'][0]))}, batch {NETS['small'][1]}, "
        f"{b.s.steps['small']} steps per timed run; large: "
        f"{'-'.join(map(str, NETS['large'][0]))}, batch {NETS['large'][1]}, "
        f"{b.s.steps['large']} steps per timed run. × = time relative to {ref_label} "
        "(lower is faster)." + overhead
    )


def matmul_ceiling(n: int, repeats: int) -> float:
    """FLOP/s of a jitted n×n float32 matmul on the default device (median of repeats)."""
    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (n, n), jnp.float32)
    c = jax.random.normal(kb, (n, n), jnp.float32)
    f = jax.jit(jnp.matmul)
    jax.block_until_ready(f(a, c))
    times = []
    for _ in range(max(repeats, 5)):
        t0 = time.perf_counter()
        jax.block_until_ready(f(a, c))
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times)


def section_flops(b: Bench) -> str:
    """3. Achieved FLOP/s on the large net as a fraction of the measured matmul ceiling."""
    log("3. FLOP/s vs matmul ceiling")
    ceilings = {n: matmul_ceiling(n, b.s.repeats) for n in b.s.ceiling_sizes}
    n = max(ceilings, key=ceilings.get)
    ceiling = ceilings[n]
    sizes, batch = NETS["large"]
    flops = P.train_flops(sizes, batch)
    b.record("flops", what="ceiling", matmul_n=n, flop_per_s=ceiling, flops_per_step=flops)
    if ("train_step_manual", "large") not in b.memo:
        log("  make_train_step manual [large] ...")
        run = P.make_jaxnn_train_step(sizes, b.batches("large"))
        b.memo["train_step_manual", "large"] = timed(run, b.s.steps["large"], b.s.repeats)
    entries = [
        ("jaxnn.make_train_step (SGD, manual, donated), jit per step",
         b.memo["train_step_manual", "large"]),
        ("jaxnn.fit (adam)", b.measure("jaxnn_fit", "large")),
        ("jaxnn grads + optax.adam in lax.scan, no fit", b.measure("jaxnn_scan", "large")),
        ("raw JAX (adam) in lax.scan", b.measure("raw_jax_scan", "large")),
        ("PyTorch eager (adam, CPU)", b.measure("torch", "large")),
    ]
    rows = []
    for label, t in entries:
        if isinstance(t, float):
            rows.append([label, ms(t), f"{flops / t / 1e9:.1f}", f"{flops / t / ceiling:.0%}"])
            b.record("flops", what=label, s_per_step=t, flop_per_s=flops / t,
                     fraction_of_ceiling=flops / t / ceiling)
        else:
            rows.append([label, t, "-", "-"])
    return (
        "### 3. Achieved FLOP/s, large net, vs this machine's f32 matmul ceiling\n\n"
        f"Ceiling: jitted {n}×{n} float32 matmul on {jax.default_backend()}: "
        f"**{ceiling / 1e9:.1f} GFLOP/s** (median; best of sizes "
        + ", ".join(f"{k}: {v / 1e9:.1f}" for k, v in ceilings.items())
        + f"). One training step counts {flops / 1e9:.2f} GFLOP "
        "(2·m·n_in·n_out per matmul; forward 1 matmul per layer, backward 2 per layer "
        "except no dX for layer 1; elementwise work and the optimizer not counted). "
        "PyTorch runs on the CPU whatever the JAX backend.\n\n"
        + table(["implementation", "ms/step", "GFLOP/s", "fraction of ceiling"], rows)
    )


def section_ensemble(b: Bench) -> str:
    """4. E models in one vmapped program: time per model relative to one model alone."""
    log(f"4. ensemble of {ENSEMBLE}")
    sizes, batch = NETS["small"]
    data = b.batches("small")
    steps = b.s.ensemble_steps
    cases = []
    if _training_has("fit_ensemble") and _training_has("fit"):
        cases.append(("jaxnn.training.fit_ensemble vs jaxnn.fit (adam, 1 epoch per call)",
                      lambda: P.make_jaxnn_fit(sizes, data),
                      lambda: P.make_jaxnn_fit(sizes, data, n_models=ENSEMBLE)))
    else:
        cases.append(("jaxnn.training.fit_ensemble", None, None))
    cases.append(("jax.vmap of jaxnn grads + optax.adam in lax.scan, no fit",
                  lambda: P.make_jaxnn_scan(sizes, data),
                  lambda: P.make_jaxnn_ensemble_scan(sizes, data, ENSEMBLE)))
    rows = []
    for how, make_one, make_ens in cases:
        if make_one is None:
            rows.append([how, "n/a (not available)", "-", "-", "≤ 0.25"])
            continue
        log(f"  {how} ...")
        single = timed(make_one(), steps, b.s.repeats)
        t_ens = timed(make_ens(), steps, b.s.repeats)
        rel = t_ens / ENSEMBLE / single
        rows.append([how, ms(single), ms(t_ens), f"{rel:.2f}", "≤ 0.25"])
        b.record("ensemble", how=how, n_models=ENSEMBLE, single_s_per_step=single,
                 ensemble_s_per_step=t_ens, per_model_relative=rel)
    return (
        f"### 4. Ensemble of {ENSEMBLE} models (different seeds) in one vmapped program\n\n"
        + table(["how", "1 model ms/step", f"{ENSEMBLE} models ms/step",
                 "per model / 1 model alone", "goal"], rows)
        + f"\n\nsmall net, batch {batch}, {steps} steps per timed run."
    )


def _subprocess_wall(args: list[str], timeout: float, env: dict | None = None):
    """Wall time of ``python -m jaxnn ARGS`` from start to exit, and a status string."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "jaxnn", *args], capture_output=True,
                              text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1][:120].replace("|", "/")
        return wall, f"exit {proc.returncode}: {tail}"
    return wall, "ok"


def _cli_command_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(f"jaxnn._cli_{name}") is not None
    except ImportError:
        return False


def section_train(b: Bench) -> str:
    """5. ``python -m jaxnn train`` (defaults: digits, 30 epochs, adam) as a whole process.

    ``jaxnn train`` keeps compiled programs in a persistent cache (``JAXNN_CACHE_DIR``);
    the benchmark points it at a fresh temporary folder, so the first run is cold (it
    compiles) and the second warm, and the user's own cache is neither used nor touched.
    """
    log("5. jaxnn train subprocess")
    title = "### 5. `python -m jaxnn train` with defaults, whole subprocess, start to exit"
    header = ["command", "compile cache", "wall time", "status"]
    if not _cli_command_exists("train"):
        b.record("train", wall_s=None, status="not available")
        return title + "\n\n" + table(header, [["`python -m jaxnn train --out TMP`", "-",
                                                 "n/a (not available)", "-"]])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, JAXNN_CACHE_DIR=str(Path(tmp) / "xla-cache"))
        for i, cache in enumerate(("cold (empty)", "warm (2nd run)")):
            args = ["train", "--out", str(Path(tmp) / f"run{i}")]
            wall, status = _subprocess_wall(args, timeout=900, env=env)
            rows.append(["`python -m jaxnn train --out TMP`", cache,
                         f"{wall:.1f} s" if wall is not None else "-", status])
            b.record("train", cache=cache, wall_s=wall, status=status)
            if status != "ok":
                break
    return title + "\n\n" + table(header, rows)


def section_gradcheck(b: Bench) -> str:
    """6. ``python -m jaxnn gradcheck`` (the full built-in sweep) as a whole process."""
    log("6. jaxnn gradcheck subprocess")
    title = "### 6. `python -m jaxnn gradcheck` (full sweep), whole subprocess, start to exit"
    header = ["command", "wall time", "status", "goal"]
    if not _cli_command_exists("gradcheck"):
        b.record("gradcheck", wall_s=None, status="not available")
        return title + "\n\n" + table(header, [["`python -m jaxnn gradcheck`",
                                                 "n/a (not available)", "-", "< 60 s"]])
    wall, status = _subprocess_wall(["gradcheck"], timeout=900)
    b.record("gradcheck", wall_s=wall, status=status)
    return title + "\n\n" + table(header, [["`python -m jaxnn gradcheck`",
                                             f"{wall:.1f} s" if wall is not None else "-",
                                             status, "< 60 s"]])


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
    """7. ``jaxnn.fit`` on one device vs data parallel over 4 forced CPU devices.

    Runs in a subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``:
    on one CPU the 4 "devices" share the same cores, so this measures the overhead of
    sharding and the all-reduce, not a speed-up. On real multi-chip hardware run
    notebook 03 or ``jaxnn.fit(..., mesh=jaxnn.make_mesh())`` there.
    """
    log("7. data parallel, 4 forced CPU devices (subprocess)")
    title = "### 7. Data parallel: `jaxnn.fit` on 1 device vs `mesh=` over 4 forced CPU devices"
    header = ["run", "ms/step", "steps/s", "× 1 device"]
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    steps = 20 if b.s.quick else 100
    try:
        proc = subprocess.run([sys.executable, "-c", _PARALLEL_CHILD, str(steps),
                               str(b.s.repeats)], capture_output=True, text=True, timeout=900,
                              env=env)
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
        res = json.loads(line[len("RESULT "):])
    except (subprocess.TimeoutExpired, StopIteration) as e:
        b.record("parallel", status=f"failed: {type(e).__name__}")
        return title + "\n\nn/a (the child process failed)"
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


# ---------------------------------------------------------------------------------- main


def parse_sections(text: str) -> list[str]:
    chosen = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if item.isdigit() and 1 <= int(item) <= len(SECTIONS):
            item = SECTIONS[int(item) - 1]
        if item not in SECTIONS:
            raise argparse.ArgumentTypeError(
                f"unknown section {item!r}; choose from {', '.join(SECTIONS)} (or 1-{len(SECTIONS)}).")
        chosen.append(item)
    return [s for s in SECTIONS if s in chosen]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer steps and repeats, and by default no subprocess sections "
                        "(train, gradcheck): a < 1 minute smoke run")
    parser.add_argument("--sections", type=parse_sections, default=None,
                        help=f"comma-separated, by name or number: {', '.join(SECTIONS)} "
                        "(default: all; with --quick: grad, throughput, flops, ensemble)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per number (median); default 5, or 3 with --quick")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    sections = args.sections or [
        s for s in SECTIONS if not (args.quick and s in ("train", "gradcheck", "parallel"))]
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be >= 1")

    settings = Settings(args.quick, args.repeats)
    bench = Bench(settings)
    info = machine_info()
    t_start = time.perf_counter()
    out = ["## jaxnn benchmark" + (" (--quick)" if args.quick else ""), ""]
    out += [f"- {k}: {v}" for k, v in info.items()]
    print("\n".join(out) + "\n", flush=True)
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        print("> Warning: the machine was busy when this run started (load average above half "
              "the cores): other processes share the CPU and the numbers are noisy.\n", flush=True)

    makers = {
        "grad": section_grad,
        "throughput": section_throughput,
        "flops": section_flops,
        "ensemble": section_ensemble,
        "train": section_train,
        "gradcheck": section_gradcheck,
        "parallel": section_parallel,
    }
    for name in sections:
        t0 = time.perf_counter()
        print(makers[name](bench) + "\n", flush=True)
        log(f"   ({name}: {time.perf_counter() - t0:.0f} s)")
    total = time.perf_counter() - t_start
    print(f"Total benchmark time: {total:.0f} s; load average (1 min) at end: "
          f"{os.getloadavg()[0]:.2f}.", flush=True)

    if args.json:
        payload = {"machine": info, "quick": args.quick, "repeats": settings.repeats,
                   "steps_per_run": settings.steps, "sections": sections,
                   "total_s": total, "results": bench.rows}
        Path(args.json).write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
