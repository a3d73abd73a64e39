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
  12 checker     jaxnn.check_vjp vs jax's check_grads vs torch gradcheck, 16 rules (_bench_checker.py)

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

Code: this file is the command line, the report header and the main loop;
_bench_timing.py the interleaved timing, medians and machine info;
_bench_core.py the settings, the implementations' table and the Markdown
cells; _bench_sections_training.py sections 1-7; _bench_sections_subprocess.py
sections 8-11; _peers.py and _peers_other.py the implementations timed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _bench_core import Bench, Settings  # noqa: E402
from _bench_sections_subprocess import (  # noqa: E402
    section_gradcheck,
    section_multiprocess,
    section_parallel,
    section_train,
)
from _bench_sections_training import (  # noqa: E402
    section_ensemble,
    section_fit,
    section_flops,
    section_grad,
    section_overhead,
    section_peers,
    section_shuffle,
)
from _bench_timing import log, machine_info  # noqa: E402

SECTIONS = ("grad", "fit", "overhead", "shuffle", "peers", "flops", "ensemble", "train",
            "gradcheck", "parallel", "multiprocess", "checker")
ALIASES = {"throughput": "peers"}  # the older name of section 5
SUBPROCESS_SECTIONS = ("train", "gradcheck", "parallel", "multiprocess")


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
    "checker": lambda b: __import__("_bench_checker").section_checker(b),
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
