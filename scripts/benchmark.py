"""jaxnn benchmark: prints Markdown tables of speed RATIOS measured in one run (conventions §6).

Usage:
  python scripts/benchmark.py --out bench.md      # everything (< 10 min on 2 idle CPU cores)
  python scripts/benchmark.py --quick             # smoke run: few repeats, small sizes, no subprocesses
  python scripts/benchmark.py --sections fit,shuffle --quick --out bench.md

Sections (``--sections``, by name or number; ``all`` for every one):
  1 grad         hand-derived backward vs jax.grad: the same training step, the same jit
  2 fit          jaxnn.fit (eval off / running metrics / "full") vs raw JAX in one lax.scan
  3 overhead     the fixed cost of a one-batch fit call vs one raw jitted step call
  4 shuffle      the epoch order: jaxnn.epoch_order (host NumPy) vs jax.random.permutation
  5 peers        raw JAX, jaxnn.fit, NumPy, Flax NNX, Equinox, PyTorch (CPU): idiomatic loops
  6 flops        achieved FLOP/s on the large net / this machine's measured f32 matmul ceiling
  7 ensemble     32 models in one vmapped program: time per model / one model alone
  8 train        ``jaxnn train`` (defaults) vs scripts/raw_jax_digits.py, whole processes
  9 gradcheck    ``python -m jaxnn gradcheck`` (the full sweep) as a subprocess
  10 parallel    ``jaxnn.fit`` on 1 device vs ``mesh=`` over 4 forced CPU devices (subprocess)
  11 multiprocess  1 process x 4 devices vs 2 processes x 2 devices (scripts/_bench_multiprocess.py)

Method: every number is the MEDIAN of repeated timed runs after a warm-up run
that compiles. The implementations a table compares are timed INTERLEAVED:
round r runs each of them once, starting from the r-th (a rotating order), so
a change of load hits them alike. A timed run is a whole run of N training
steps that blocks (``block_until_ready``) only at its end, divided by N: no
loop blocks per step. Ratios are between numbers from the same run of this
script. Nothing here asserts a speed; the goals are printed beside the numbers.

Nets: small = 64-128-128-10 (ReLU, ReLU, softmax, cross-entropy), batch 128;
large = 784-1024-1024-10, batch 512 (``--quick``: 784-256-256-10, batch 128).
Data are random float32 (speed does not depend on the values). Flax, Equinox
and PyTorch are optional (the [bench] extra); a missing one prints "n/a (not
installed)". PyTorch and NumPy always run on the CPU; everything in JAX runs
on the default backend, whatever it is.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _peers as P  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jaxnn  # noqa: E402

SECTIONS = ("grad", "fit", "overhead", "shuffle", "peers", "flops", "ensemble", "train",
            "gradcheck", "parallel", "multiprocess")
ALIASES = {"throughput": "peers"}  # the older name of section 5
SUBPROCESS_SECTIONS = ("train", "gradcheck", "parallel", "multiprocess")
N_BATCHES = 8  # distinct pre-made batches, cycled
ENSEMBLE = 32
SHUFFLE_M = (12_800, 25_600)


def log(*args) -> None:
    """Progress goes to stderr; stdout is only the Markdown report."""
    print(*args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- settings


class Settings:
    def __init__(self, quick: bool, repeats: int | None):
        self.quick = quick
        self.nets = {
            "small": ((64, 128, 128, 10), 128),
            "large": ((784, 256, 256, 10), 128) if quick else ((784, 1024, 1024, 10), 512),
        }
        # Steps per timed run (one fit call = one epoch of this many steps).
        self.steps = {"small": 20 if quick else 100, "large": 2 if quick else 20}
        self.ensemble_steps = 10 if quick else 100
        self.repeats = repeats or (3 if quick else 5)
        # Per-call timings (overhead, shuffle) are short: more repeats for a stable median.
        self.call_repeats = repeats or (10 if quick else 50)
        self.process_repeats = repeats or (1 if quick else 3)  # whole-process runs (train)
        on_cpu = jax.default_backend() == "cpu"
        # The ceiling is the best median over these square sizes (small ones underrate a big chip).
        self.ceiling_sizes = ((1024,) if quick else (2048, 4096)) if on_cpu else (4096, 8192)


# ---------------------------------------------------------------------------------- timing


class Unavailable(Exception):
    """A row that cannot be measured here (peer not installed, jaxnn part missing)."""


def timed_group(runs: dict, steps: int, repeats: int) -> dict:
    """Median seconds per step of each ``run(steps)``, interleaved, after one warm-up run each.

    Round r runs every implementation once, starting from the r-th (a rotating
    order), so drift in the machine's load hits all of them alike. An
    implementation that raises gets the string "error: ..." instead of a time.
    """
    results: dict = {}
    times: dict[str, list[float]] = {}
    for key, run in runs.items():
        try:
            run(steps)  # compiles
            times[key] = []
        except Exception as e:  # a broken implementation must not sink the whole report
            traceback.print_exc(file=sys.stderr)
            results[key] = f"error: {type(e).__name__}"
    live = list(times)
    for r in range(repeats):
        k = r % max(len(live), 1)
        for key in live[k:] + live[:k]:
            if key in results:
                continue
            t0 = time.perf_counter()
            try:
                runs[key](steps)
            except Exception as e:
                traceback.print_exc(file=sys.stderr)
                results[key] = f"error: {type(e).__name__}"
                continue
            times[key].append(time.perf_counter() - t0)
    for key, ts in times.items():
        results.setdefault(key, statistics.median(ts) / steps)
    return {key: results[key] for key in runs}


def _need(module: str, factory):
    def make(sizes, data):
        if importlib.util.find_spec(module) is None:
            raise Unavailable("n/a (not installed)")
        return factory(sizes, data)

    return make


def _fit(**kwargs):
    return lambda sizes, data: P.make_jaxnn_fit(sizes, data, **kwargs)


# key -> (label, loop, factory(sizes, data) -> run(steps)).
IMPLS = {
    "raw_scan": ("raw JAX: jax.value_and_grad + optax.adam", "lax.scan over pre-sliced batches",
                 P.make_raw_jax_scan),
    "raw_step": ("raw JAX: jax.value_and_grad + optax.adam", "jit per step, donated",
                 P.make_raw_jax_step),
    "jaxnn_scan": ("jaxnn.value_and_manual_grad + optax.adam, no fit",
                   "lax.scan over pre-sliced batches", P.make_jaxnn_scan),
    "fit_off": ("jaxnn.fit(eval_train=False)", "1 call = 1 epoch", _fit(eval_train=False)),
    "fit": ("jaxnn.fit (default: running train metrics)", "1 call = 1 epoch", _fit()),
    "fit_full": ('jaxnn.fit(eval_train="full")', "1 call = 1 epoch", _fit(eval_train="full")),
    "fit_rest": ("jaxnn.fit, m = N·B + B/2: one leftover step of B/2", "1 call = 1 epoch",
                 lambda sizes, data: P.make_jaxnn_fit(sizes, data, rest=data.x.shape[1] // 2)),
    "numpy": ("NumPy, hand-written (CPU)", "Python loop", P.make_numpy),
    "flax_nnx": ("Flax NNX", "nnx.jit per step", _need("flax", P.make_flax_nnx)),
    "equinox": ("Equinox", "eqx.filter_jit per step", _need("equinox", P.make_equinox)),
    "torch": ("PyTorch eager (CPU)", "Python loop", _need("torch", P.make_torch)),
}


class Bench:
    def __init__(self, settings: Settings):
        self.s = settings
        self.data = {}
        self.memo: dict[tuple[str, str], float | str] = {}
        self.rows: list[dict] = []  # for --json

    def batches(self, net: str) -> P.Batches:
        if net not in self.data:
            sizes, batch = self.s.nets[net]
            self.data[net] = P.make_batches(sizes, batch, N_BATCHES)
        return self.data[net]

    def group(self, keys, net: str, factories: dict | None = None, steps: int | None = None,
              repeats: int | None = None, memo: bool = True) -> dict:
        """Seconds per step of each implementation on ``net``, timed together (interleaved).

        ``factories`` maps extra keys to ``factory(sizes, data)``; the others come from IMPLS.
        Results (a float, or the reason it is missing) also go to ``self.memo[key, net]``
        when ``memo`` (only for the default steps per run, which other sections reuse).
        """
        sizes, _ = self.s.nets[net]
        factories = factories or {}
        runs, out = {}, {}
        t0 = time.perf_counter()
        for key in keys:
            make = factories[key] if key in factories else IMPLS[key][2]
            try:
                runs[key] = make(sizes, self.batches(net))
            except Unavailable as e:
                out[key] = str(e)
            except Exception as e:
                traceback.print_exc(file=sys.stderr)
                out[key] = f"error: {type(e).__name__}"
        out.update(timed_group(runs, steps or self.s.steps[net], repeats or self.s.repeats))
        log(f"  [{net}] {', '.join(runs)}: {time.perf_counter() - t0:.1f} s")
        for key in keys if memo else ():
            self.memo[key, net] = out[key]
        return {key: out[key] for key in keys}

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


def net_name(b: Bench, net: str) -> str:
    sizes, batch = b.s.nets[net]
    return f"{'-'.join(map(str, sizes))}, batch {batch}"


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
        sizes, _ = b.s.nets[net]
        data = b.batches(net)
        loops = {
            "make_train_step, jit per step, donated":
                lambda g, sizes=sizes, data=data: P.make_jaxnn_train_step(sizes, data, grad=g),
            "SGD steps in one lax.scan":
                lambda g, sizes=sizes, data=data: P.make_jaxnn_scan(
                    sizes, data, grad=g, tx=optax.sgd(0.01)),
        }
        for loop, make in loops.items():
            log(f"  {loop} [{net}] ...")
            t = timed_group({"manual": make("manual"), "autodiff": make("autodiff")},
                            b.s.steps[net], b.s.repeats)
            if loop.startswith("make_train_step"):
                b.memo["train_step_manual", net] = t["manual"]
            rows.append([net, loop, ms(t["manual"]), ms(t["autodiff"]),
                         ratio(t["manual"], t["autodiff"]), "≤ 1.00"])
            b.record("grad", net=net, loop=loop, manual_s_per_step=num(t["manual"]),
                     autodiff_s_per_step=num(t["autodiff"]))
    return "### 1. Hand-derived backward vs jax.grad (same step, same jit)\n\n" + table(
        ["net", "loop", "manual ms/step", "jax.grad ms/step", "manual / jax.grad", "goal"], rows)


FIT_KEYS = ("raw_scan", "jaxnn_scan", "fit_off", "fit", "fit_full", "fit_rest")
FIT_GOALS = {"fit_off": "≤ 1.05", "fit": "≤ 1.15"}


def section_fit(b: Bench) -> str:
    """2. jaxnn.fit per step, eval off / default / full, vs raw JAX in one lax.scan."""
    log("2. jaxnn.fit vs raw JAX")
    res = {net: b.group(FIT_KEYS, net) for net in ("small", "large")}
    rows = []
    for key in FIT_KEYS:
        label, loop, _ = IMPLS[key]
        cells = [label, loop]
        for net in ("small", "large"):
            t, raw = res[net][key], res[net]["raw_scan"]
            cells += [ms(t), ratio(t, raw)]
            b.record("fit", impl=label, net=net, s_per_step=num(t), raw_s_per_step=num(raw))
        rows.append(cells + [FIT_GOALS.get(key, "-")])
    return (
        "### 2. `jaxnn.fit` vs raw JAX, Adam (lr 1e-3), ms per step\n\n"
        + table(["implementation", "loop", "small ms/step", "small × raw", "large ms/step",
                 "large × raw", "goal (× raw, both nets)"], rows)
        + f"\n\nsmall: {net_name(b, 'small')}, {b.s.steps['small']} steps per timed run; large: "
        f"{net_name(b, 'large')}, {b.s.steps['large']} steps per timed run. raw = the first "
        "row (lower is faster). A jaxnn.fit run is ONE `fit` call training one epoch of "
        "m = steps·B examples (shuffled by `jaxnn.epoch_order`, m a multiple of B, so no "
        "leftover step, except in the last row), its fixed per-call cost included "
        "(section 3). The last row's epoch has N full steps and one of B/2 examples, divided "
        "by N: without a per-step mask it costs about (N + 0.5)/N of the default row. The raw "
        f"rows cycle over {N_BATCHES} batches already on the device, in order."
    )


def section_overhead(b: Bench) -> str:
    """3. The fixed cost of one fit call on a single batch vs one raw jitted step call."""
    log("3. per-call overhead (small net)")
    extra = {"fit_1": _fit(), "fit_1_off": _fit(eval_train=False),
             "init_state": P.make_jaxnn_init_state}
    keys = ("raw_step", "fit_1", "fit_1_off", "init_state")
    t = b.group(keys, "small", factories=extra, steps=1, repeats=b.s.call_repeats, memo=False)
    labels = {
        "raw_step": "raw JAX: one jitted step call (jax.value_and_grad + optax.adam), blocked",
        "fit_1": "jaxnn.fit, one batch (m = B), epochs=1, default metrics",
        "fit_1_off": "jaxnn.fit, one batch (m = B), epochs=1, eval_train=False",
        "init_state": "of which: jaxnn.init_state(params, key, optimizer=\"adam\") alone",
    }
    rows = []
    for key in keys:
        goal = "≤ 4" if key == "fit_1" else "-"
        rows.append([labels[key], ms(t[key]), ratio(t[key], t["raw_step"]), goal])
        b.record("overhead", what=labels[key], s_per_call=num(t[key]))
    return (
        "### 3. Fixed cost of a call: a one-batch `jaxnn.fit` vs one raw jitted step\n\n"
        + table(["call", "ms per call", "× raw step call", "goal"], rows)
        + f"\n\nsmall net ({net_name(b, 'small')}), adam, every call compiled before timing "
        f"and blocked at its end; median of {b.s.call_repeats} calls each, interleaved."
    )


def section_shuffle(b: Bench) -> str:
    """4. One epoch's order: jaxnn.epoch_order on the host vs jax.random.permutation on device."""
    log("4. shuffle")
    key = jax.random.key(0)
    key_data = np.asarray(jax.random.key_data(key))
    rows = []
    for m in SHUFFLE_M:
        permute = jax.jit(jax.random.permutation, static_argnums=(1,))

        def host(steps, m=m):
            for e in range(steps):
                jaxnn.epoch_order(key_data, e, m)

        def host_put(steps, m=m):
            for e in range(steps):
                jax.block_until_ready(jax.device_put(jaxnn.epoch_order(key_data, e, m)))

        def device(steps, m=m, permute=permute):
            for e in range(steps):
                jax.block_until_ready(permute(jax.random.fold_in(key, e), m))

        t = timed_group({"host": host, "host_put": host_put, "device": device}, 5,
                        b.s.call_repeats)
        per_step = m / 128  # steps per epoch at the small net's batch
        saved = (t["device"] - t["host_put"]) / per_step if all(
            isinstance(v, float) for v in t.values()) else None
        rows.append([f"{m:,}", ms(t["host"]), ms(t["host_put"]), ms(t["device"]),
                     ratio(t["device"], t["host_put"]),
                     f"{saved * 1e3:.3f}" if saved is not None else "-"])
        b.record("shuffle", m=m, epoch_order_s=num(t["host"]), epoch_order_put_s=num(t["host_put"]),
                 device_permutation_s=num(t["device"]))
    return (
        "### 4. One epoch's order: `jaxnn.epoch_order` (host NumPy) vs `jax.random.permutation`\n\n"
        + table(["m", "epoch_order ms", "epoch_order + device_put ms",
                 "jax.random.permutation (jit, device) ms", "device / (host + put)",
                 "ms/step saved at B = 128"], rows)
        + f"\n\nPer epoch; median of {b.s.call_repeats} runs of 5 epochs each, interleaved. "
        "jaxnn.fit draws each epoch's order with `epoch_order` from (key, epoch) and sends it "
        "to the device (the middle column is what it pays); `jax.random.permutation` sorts on "
        f"the device ({jax.default_backend()} here)."
    )


PEER_KEYS = ("raw_scan", "raw_step", "fit", "numpy", "flax_nnx", "equinox", "torch")


def section_peers(b: Bench) -> str:
    """5. jaxnn.fit and the peers, each in its idiomatic loop, Adam, on both nets."""
    log("5. peers")
    res = {net: b.group(PEER_KEYS, net) for net in ("small", "large")}
    rows = []
    for key in PEER_KEYS:
        label, loop, _ = IMPLS[key]
        cells = [label, loop]
        for net in ("small", "large"):
            t, raw = res[net][key], res[net]["raw_scan"]
            batch = b.s.nets[net][1]
            cells += [ms(t), per_s(t, batch), ratio(t, raw)]
            b.record("peers", impl=label, loop=loop, net=net, s_per_step=num(t),
                     note=None if isinstance(t, float) else t)
        rows.append(cells)
    return (
        "### 5. Training throughput, Adam (lr 1e-3), idiomatic loops\n\n"
        + table(["implementation", "loop", "small ms/step", "small ex/s", "small × raw",
                 "large ms/step", "large ex/s", "large × raw"], rows)
        + f"\n\nsmall: {net_name(b, 'small')}, {b.s.steps['small']} steps per timed run; "
        f"large: {net_name(b, 'large')}, {b.s.steps['large']} steps per timed run. "
        "× raw = time relative to the first row (raw JAX in one lax.scan; lower is faster)."
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
    """6. Achieved FLOP/s on the large net as a fraction of the measured matmul ceiling."""
    log("6. FLOP/s vs matmul ceiling")
    ceilings = {n: matmul_ceiling(n, b.s.repeats) for n in b.s.ceiling_sizes}
    n = max(ceilings, key=ceilings.get)
    ceiling = ceilings[n]
    sizes, batch = b.s.nets["large"]
    flops = P.train_flops(sizes, batch)
    b.record("flops", what="ceiling", matmul_n=n, flop_per_s=ceiling, flops_per_step=flops)
    if ("train_step_manual", "large") not in b.memo:
        log("  make_train_step manual [large] ...")
        run = P.make_jaxnn_train_step(sizes, b.batches("large"))
        b.memo["train_step_manual", "large"] = timed_group(
            {"manual": run}, b.s.steps["large"], b.s.repeats)["manual"]
    keys = ("fit_off", "fit", "jaxnn_scan", "raw_scan", "torch")
    missing = [k for k in keys if (k, "large") not in b.memo]
    if missing:  # not measured by sections 2 or 5 in this run: measure them together now
        b.group(missing, "large")
    entries = [("jaxnn.make_train_step (SGD, manual, donated), jit per step",
                b.memo["train_step_manual", "large"], "-")]
    entries += [(IMPLS[k][0] + ", " + IMPLS[k][1], b.memo[k, "large"],
                 "≥ 90%" if k.startswith("fit") else "-") for k in keys]
    rows = []
    for label, t, goal in entries:
        if isinstance(t, float):
            rows.append([label, ms(t), f"{flops / t / 1e9:.1f}", f"{flops / t / ceiling:.0%}", goal])
            b.record("flops", what=label, s_per_step=t, flop_per_s=flops / t,
                     fraction_of_ceiling=flops / t / ceiling)
        else:
            rows.append([label, t, "-", "-", goal])
    return (
        "### 6. Achieved FLOP/s, large net, vs this machine's f32 matmul ceiling\n\n"
        f"Ceiling: jitted {n}×{n} float32 matmul on {jax.default_backend()}: "
        f"**{ceiling / 1e9:.1f} GFLOP/s** (median; best of sizes "
        + ", ".join(f"{k}: {v / 1e9:.1f}" for k, v in ceilings.items())
        + f"). One training step of the large net ({net_name(b, 'large')}) counts "
        f"{flops / 1e9:.2f} GFLOP (2·m·n_in·n_out per matmul; forward 1 matmul per layer, "
        "backward 2 per layer except no dX for layer 1; elementwise work and the optimizer "
        "not counted). The ms/step are those of sections 1, 2 and 5 when they ran. PyTorch "
        "runs on the CPU whatever the JAX backend.\n\n"
        + table(["implementation", "ms/step", "GFLOP/s", "fraction of ceiling", "goal"], rows)
    )


def section_ensemble(b: Bench) -> str:
    """7. E models in one vmapped program: time per model relative to one model alone."""
    log(f"7. ensemble of {ENSEMBLE}")
    sizes, _ = b.s.nets["small"]
    data = b.batches("small")
    steps = b.s.ensemble_steps
    cases = [
        ("jaxnn.fit_ensemble vs jaxnn.fit (adam, 1 epoch per call)",
         lambda: P.make_jaxnn_fit(sizes, data),
         lambda: P.make_jaxnn_fit(sizes, data, n_models=ENSEMBLE)),
        ("jax.vmap of jaxnn grads + optax.adam in lax.scan, no fit",
         lambda: P.make_jaxnn_scan(sizes, data),
         lambda: P.make_jaxnn_ensemble_scan(sizes, data, ENSEMBLE)),
    ]
    rows = []
    for how, make_one, make_ens in cases:
        log(f"  {how} ...")
        t = timed_group({"one": make_one(), "ens": make_ens()}, steps, b.s.repeats)
        rel = (t["ens"] / ENSEMBLE / t["one"]) if all(isinstance(v, float) for v in t.values()) \
            else None
        rows.append([how, ms(t["one"]), ms(t["ens"]), f"{rel:.2f}" if rel else "-", "≤ 0.25"])
        b.record("ensemble", how=how, n_models=ENSEMBLE, single_s_per_step=num(t["one"]),
                 ensemble_s_per_step=num(t["ens"]), per_model_relative=rel)
    return (
        f"### 7. Ensemble of {ENSEMBLE} models (different seeds) in one vmapped program\n\n"
        + table(["how", "1 model ms/step", f"{ENSEMBLE} models ms/step",
                 "per model / 1 model alone", "goal"], rows)
        + f"\n\nsmall net ({net_name(b, 'small')}), {steps} steps per timed run, interleaved."
    )


def _process_wall(command: list[str], timeout: float, env: dict | None = None):
    """Wall time of a whole process from start to exit, a status string, and its stdout."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s", ""
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1][:120].replace("|", "/")
        return wall, f"exit {proc.returncode}: {tail}", proc.stdout
    return wall, "ok", proc.stdout


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
                    wall, why, stdout = _process_wall(commands[impl](out), 300, env)
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
    wall, status, _ = _process_wall([sys.executable, "-m", "jaxnn", "gradcheck"], 300)
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


# ---------------------------------------------------------------------------------- main


def parse_sections(text: str) -> list[str]:
    chosen = []
    for item in text.split(","):
        item = ALIASES.get(item.strip(), item.strip())
        if not item:
            continue
        if item == "all":
            chosen += SECTIONS
            continue
        if item.isdigit() and 1 <= int(item) <= len(SECTIONS):
            item = SECTIONS[int(item) - 1]
        if item not in SECTIONS:
            raise argparse.ArgumentTypeError(
                f"unknown section {item!r}; choose from {', '.join(SECTIONS)}, all "
                f"(or 1-{len(SECTIONS)}).")
        chosen.append(item)
    return [s for s in SECTIONS if s in chosen]


MAKERS = {
    "grad": section_grad,
    "fit": section_fit,
    "overhead": section_overhead,
    "shuffle": section_shuffle,
    "peers": section_peers,
    "flops": section_flops,
    "ensemble": section_ensemble,
    "train": section_train,
    "gradcheck": section_gradcheck,
    "parallel": section_parallel,
    "multiprocess": section_multiprocess,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="few repeats and small sizes, and by default no subprocess "
                        f"sections ({', '.join(SUBPROCESS_SECTIONS)}): a smoke run")
    parser.add_argument("--sections", type=parse_sections, default=None,
                        help=f"comma-separated, by name or number: {', '.join(SECTIONS)}, or "
                        "all (default: all; with --quick: all but the subprocess sections)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per number (median); default 5, or 3 with --quick (and "
                        "50 / 10 per-call runs in overhead and shuffle, 3 / 1 process pairs in "
                        "train); given, it sets them all")
    parser.add_argument("--out", metavar="PATH",
                        help="also write the Markdown report to PATH (rewritten after each section)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be >= 1")
    sections = args.sections or [
        s for s in SECTIONS if not (args.quick and s in SUBPROCESS_SECTIONS)]

    settings = Settings(args.quick, args.repeats)
    bench = Bench(settings)
    info = machine_info()
    t_start = time.perf_counter()
    report = ["## jaxnn benchmark" + (" (--quick: a smoke run, not for quoting)" if args.quick
                                      else ""), ""]
    report += [f"- {k}: {v}" for k, v in info.items()]
    report.append("")
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        report.append("> Warning: the machine was busy when this run started (load average "
                      "above half the cores): other processes share it and the numbers are "
                      "noisy.\n")
    print("\n".join(report), flush=True)

    def write_out() -> None:
        if args.out:
            Path(args.out).write_text("\n".join(report) + "\n")

    for name in sections:
        t0 = time.perf_counter()
        text = MAKERS[name](bench) + "\n"
        report.append(text)
        print(text, flush=True)
        write_out()
        log(f"   ({name}: {time.perf_counter() - t0:.0f} s)")
    total = time.perf_counter() - t_start
    load = f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "?"
    report.append(f"Sections: {', '.join(sections)}. Total benchmark time: {total:.0f} s; "
                  f"load average (1 min) at end: {load}.")
    print(report[-1], flush=True)
    write_out()

    if args.json:
        payload = {"machine": info, "quick": args.quick, "repeats": settings.repeats,
                   "steps_per_run": settings.steps, "nets": settings.nets, "sections": sections,
                   "total_s": total, "results": bench.rows}
        Path(args.json).write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
