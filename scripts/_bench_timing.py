"""Timing helpers of ``scripts/benchmark.py``: interleaved medians, whole processes, the machine.

Every number is the median of repeated timed runs after a warm-up run that
compiles; implementations compared in one table are timed interleaved, in a
rotating order (see ``timed_group``).
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import jax
import numpy as np
import optax


def log(*args) -> None:
    """Progress goes to stderr; stdout is only the Markdown report."""
    print(*args, file=sys.stderr, flush=True)


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

def process_wall(command: list[str], timeout: float, env: dict | None = None):
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
