"""``jaxnn gradcheck``: check the hand-derived gradients from the command line.

With network flags it checks one network; without them (or with ``--sweep``)
it runs the built-in sweep, ``jaxnn.check.run_sweep``: every hidden activation
x every valid output pairing x depths 1-4. One Markdown table row per case;
exit status 1 if any case fails. The work is ``jaxnn.check``'s; this module
only parses flags and prints.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time

from jaxnn import Network
from jaxnn.check import METHODS, check_gradients, make_problem, run_sweep, sweep_cases
from jaxnn.cli import flags
from jaxnn.core.compat import enable_x64

HELP = (
    "Compare the hand-derived gradients with jax.grad, central finite differences (float64) "
    "and jax.jvp, for one network (--layer-sizes, --activations, --loss) or the built-in sweep "
    "over every activation x loss pairing x depth 1-4. A comparison passes when its error is within "
    "the threshold plus the floating-point noise bound estimated for that case. Exit status 1 if any "
    "case fails."
)

_COLUMNS = ("case", "vs autodiff", "vs finite diff", "vs jvp", "result", "time (s)")
# "4-4-4-4-4 leaky_relu,leaky_relu,leaky_relu,softmax cross_entropy" fits
_WIDTHS = (64, 12, 14, 9, 6, 8)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``gradcheck`` flags."""
    net = parser.add_argument_group("one network (omit all three for the sweep)")
    net.add_argument("--layer-sizes", metavar="N_X,N_1,...,N_L", help="e.g. 4,8,3")
    net.add_argument("--activations", metavar="G_1,...,G_L", help="one per layer, e.g. relu,softmax")
    net.add_argument("--loss", help="bce, mse or cross_entropy (default mse)")
    parser.add_argument(
        "--sweep", action="store_true", help="run the built-in sweep (the default without network flags)"
    )
    parser.add_argument("--depths", default="1,2,3,4", metavar="L,...", help="sweep depths (default 1,2,3,4)")
    parser.add_argument("--width", type=int, default=4, help="units per layer in the sweep (default 4)")
    parser.add_argument("--batch-size", type=int, default=8, help="examples m (default 8)")
    parser.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="the model's dtype (default float32)",
    )
    parser.add_argument("--seed", type=flags.seed, default=0,
                        help="seed of params, data and directions, 0..2**63-1")
    parser.add_argument("--eps", type=float, default=1e-6, help="finite-difference step (default 1e-6)")
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated subset of {','.join(METHODS)} (default: all)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print every case's full report, not only failures"
    )


def _ints(flag: str, text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(" ", ",").split(",") if v)
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise ValueError(f"{flag} must be comma-separated positive integers (e.g. 4,8,3), got {text!r}.")
    return values


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _row(cells) -> str:
    widths = _WIDTHS
    return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"


def _err(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.2e}"


def _print_row(row) -> None:
    cells = (
        row.case,
        _err(row.autodiff),
        _err(row.finite_difference),
        _err(row.jvp),
        "pass" if row.passed else "FAIL",
        f"{row.seconds:.2f}",
    )
    print(_row(cells), flush=True)


def run(args: argparse.Namespace) -> int:
    """Run the check(s) the flags describe; return 0 if all pass, 1 otherwise."""
    methods = _names(args.methods)
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(
            f"--methods: unknown {', '.join(bad) or '(none given)'}; choose from {','.join(METHODS)}."
        )
    if not (math.isfinite(args.eps) and args.eps > 0):
        raise ValueError(f"--eps must be a finite number > 0, got {args.eps!r}.")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}.")
    if args.width < 1:
        raise ValueError(f"--width must be >= 1, got {args.width}.")
    network_flags = [f for f in ("layer_sizes", "activations", "loss") if getattr(args, f) is not None]
    if args.sweep and network_flags:
        raise ValueError(
            "--sweep runs the built-in cases; leave out --layer-sizes, --activations and --loss."
        )
    x64 = enable_x64(True) if args.dtype == "float64" else contextlib.nullcontext()
    with x64:
        if network_flags:
            return _one(args, methods)
        return _sweep(args, methods)


def _one(args, methods) -> int:
    if args.layer_sizes is None or args.activations is None:
        raise ValueError(
            "a single network needs both --layer-sizes and --activations (and optionally --loss)."
        )
    net = Network(_ints("--layer-sizes", args.layer_sizes), _names(args.activations), args.loss or "mse")
    params, X, Y = make_problem(net, args.batch_size, args.dtype, args.seed)
    t = time.perf_counter()
    report = check_gradients(params, X, Y, net, methods=methods, eps=args.eps, seed=args.seed)
    seconds = time.perf_counter() - t
    errors = report.errors
    print(_row(_COLUMNS))
    print(_row(tuple("-" * w for w in _WIDTHS)))
    case = (
        f"{'-'.join(map(str, net.layer_sizes))} {','.join(net.describe()['activations'])} {net.loss_fn.name}"
    )
    cells = (
        case,
        _err(errors.get("autodiff", math.nan)),
        _err(errors.get("finite_difference", math.nan)),
        _err(errors.get("jvp", math.nan)),
        "pass" if report.passed else "FAIL",
        f"{seconds:.2f}",
    )
    print(_row(cells))
    print()
    print(report)
    return 0 if report.passed else 1


def _sweep(args, methods) -> int:
    depths = _ints("--depths", args.depths)
    n = len(sweep_cases(depths))
    print(
        f"jaxnn gradcheck: {n} cases (every hidden activation x output pairing x depth "
        f"{','.join(map(str, depths))}), width {args.width}, m = {args.batch_size}, {args.dtype} model; "
        "finite differences and jvp in float64; a case passes when each error <= threshold + its "
        "estimated noise bound (-v prints every report with both).",
        flush=True,
    )
    print(_row(_COLUMNS))
    print(_row(tuple("-" * w for w in _WIDTHS)), flush=True)
    t = time.perf_counter()
    rows = run_sweep(
        depths=depths,
        width=args.width,
        m=args.batch_size,
        dtype=args.dtype,
        seed=args.seed,
        eps=args.eps,
        methods=methods,
        on_row=_print_row,
    )
    total = time.perf_counter() - t
    failed = [r for r in rows if not r.passed]
    for r in rows if args.verbose else failed:
        print()
        print(r.report)
    print()
    print(f"{len(rows)} cases, {len(rows) - len(failed)} passed, {len(failed)} failed, in {total:.1f} s.")
    sys.stdout.flush()
    return 1 if failed else 0
