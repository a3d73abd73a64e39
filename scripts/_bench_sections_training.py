"""Training-throughput sections of ``scripts/benchmark.py``.

grad, fit, overhead, shuffle, peers, flops and ensemble: each times implementations
in this process, interleaved, and returns its Markdown table.
"""

from __future__ import annotations

import statistics
import time

import _peers as P
import jax
import jax.numpy as jnp
import numpy as np
import optax
from _bench_core import IMPLS, N_BATCHES, Bench, fit_impl, ms, net_name, num, per_s, ratio, table
from _bench_timing import log, timed_group

import jaxnn

ENSEMBLE = 32
SHUFFLE_M = (12_800, 25_600)


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
    extra = {"fit_1": fit_impl(), "fit_1_off": fit_impl(eval_train=False),
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
