"""The state a ``scripts/benchmark.py`` run shares across sections: settings, implementations, tables."""

from __future__ import annotations

import importlib.util
import sys
import time
import traceback

import _peers as P
import _peers_other as O
import jax
from _bench_timing import Unavailable, log, timed_group

N_BATCHES = 8  # distinct pre-made batches, cycled


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


def _need(module: str, factory):
    def make(sizes, data):
        if importlib.util.find_spec(module) is None:
            raise Unavailable("n/a (not installed)")
        return factory(sizes, data)

    return make


def fit_impl(**kwargs):
    """A factory(sizes, data) of ``jaxnn.fit`` runs with these keyword arguments."""
    return lambda sizes, data: P.make_jaxnn_fit(sizes, data, **kwargs)


# key -> (label, loop, factory(sizes, data) -> run(steps)).
IMPLS = {
    "raw_scan": ("raw JAX: jax.value_and_grad + optax.adam", "lax.scan over pre-sliced batches",
                 P.make_raw_jax_scan),
    "raw_step": ("raw JAX: jax.value_and_grad + optax.adam", "jit per step, donated",
                 P.make_raw_jax_step),
    "jaxnn_scan": ("jaxnn.value_and_manual_grad + optax.adam, no fit",
                   "lax.scan over pre-sliced batches", P.make_jaxnn_scan),
    "fit_off": ("jaxnn.fit(eval_train=False)", "1 call = 1 epoch", fit_impl(eval_train=False)),
    "fit": ("jaxnn.fit (default: running train metrics)", "1 call = 1 epoch", fit_impl()),
    "fit_full": ('jaxnn.fit(eval_train="full")', "1 call = 1 epoch", fit_impl(eval_train="full")),
    "fit_rest": ("jaxnn.fit, m = N·B + B/2: one leftover step of B/2", "1 call = 1 epoch",
                 lambda sizes, data: P.make_jaxnn_fit(sizes, data, rest=data.x.shape[1] // 2)),
    "numpy": ("NumPy, hand-written (CPU)", "Python loop", O.make_numpy),
    "flax_nnx": ("Flax NNX", "nnx.jit per step", _need("flax", O.make_flax_nnx)),
    "equinox": ("Equinox", "eqx.filter_jit per step", _need("equinox", O.make_equinox)),
    "torch": ("PyTorch eager (CPU)", "Python loop", _need("torch", O.make_torch)),
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
