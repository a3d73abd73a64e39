"""The flags of ``jaxnn train``, each checked as it is parsed.

A bad value stops argparse with one line that names the flag and what it
expects (``argument --seed: expected a non-negative integer, got -1``).
Settings flags default to None, so that a run can tell a flag given from a
recipe's or a checkpoint's value (see ``jaxnn.cli.recipes``).
"""

from __future__ import annotations

import argparse
import textwrap

from jaxnn.cli import recipes

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "identity")
INITS = ("he", "xavier", "glorot", "small_normal")
TASKS = ("classification", "regression")


def _number(kind, text: str, what: str, ok):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
    return value


def positive_int(text: str) -> int:
    return _number(int, text, "an integer >= 1", lambda v: v >= 1)


def non_negative_int(text: str) -> int:
    return _number(int, text, "a non-negative integer", lambda v: v >= 0)


def seed(text: str) -> int:
    """A seed: an integer 0..2**63-1 (what numpy and jax.random accept)."""
    return _number(int, text, "a non-negative integer below 2**63", lambda v: 0 <= v < 2**63)


def positive_float(text: str) -> float:
    return _number(float, text, "a finite number > 0", lambda v: 0 < v < float("inf"))


def non_negative_float(text: str) -> float:
    return _number(float, text, "a finite number >= 0", lambda v: 0 <= v < float("inf"))


def keep_prob(text: str) -> float:
    return _number(float, text, "a probability in (0, 1] (1 = no dropout)", lambda v: 0 < v <= 1)


def fraction(text: str) -> float:
    return _number(float, text, "a fraction strictly between 0 and 1", lambda v: 0 < v < 1)


def layers(text: str) -> str:
    """'128, 64' -> '128,64'; '' (no hidden layer) stays ''."""
    parts = [p.strip() for p in text.split(",")] if text.strip() else []
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected hidden sizes as comma-separated integers "
                                         f">= 1 such as 128,64 ('' for none), got {text!r}")
    return ",".join(str(int(p)) for p in parts)


def add_arguments(p: argparse.ArgumentParser, datasets: tuple[str, ...],
                  optimizers: tuple[str, ...]) -> None:
    """The ``train`` flags (argparse expands % in help: write it %%)."""
    g = recipes.GENERIC
    data = p.add_argument_group("data")
    data.add_argument("--dataset", choices=datasets, help="built-in data set, trained with its "
                      f"recipe (see below) (default {g['dataset']})")
    data.add_argument("--csv", metavar="PATH", help="train on this CSV file (one row per "
                      "example, with a header) instead of --dataset")
    data.add_argument("--label-column", metavar="NAME|INDEX",
                      help="the CSV's label column, by header name or index (default: last)")
    data.add_argument("--task", choices=TASKS, help="what the CSV's label is (default: "
                      "classification for integer or text labels, regression for other numbers)")
    data.add_argument("--test-fraction", type=fraction, metavar="F",
                      help=f"share of examples held out for testing (default {g['test_fraction']})")
    net = p.add_argument_group("network")
    net.add_argument("--layers", type=layers, metavar="N,N,...", help="hidden layer sizes, "
                     "comma separated; '' for none")
    net.add_argument("--activation", choices=ACTIVATIONS, help="hidden activation")
    net.add_argument("--init", choices=INITS, help="weight init (default: he for "
                     "relu/leaky_relu, xavier otherwise)")
    opt = p.add_argument_group("training")
    opt.add_argument("--optimizer", choices=optimizers, help="gd is the plain gradient "
                     f"descent of formulas §5 (default {g['optimizer']})")
    opt.add_argument("--lr", type=positive_float, help="learning rate")
    opt.add_argument("--epochs", type=positive_int, help="total epochs; with --resume, train "
                     "on up to this many")
    opt.add_argument("--batch-size", type=non_negative_int, metavar="B",
                     help="examples per update; 0 = full batch")
    opt.add_argument("--l2", type=non_negative_float, metavar="LAMBDA", help="L2 weight decay "
                     f"λ, adding λ/(2m) Σ||W||² to the cost (default {g['l2']})")
    opt.add_argument("--keep-prob", type=keep_prob, metavar="P", help="dropout: probability "
                     "of keeping a hidden unit, 1 = off")
    opt.add_argument("--seed", type=seed, help="seed of the train/test split, "
                     f"init, data order and dropout (default {g['seed']})")
    opt.add_argument("--grad", choices=("manual", "autodiff"), help="manual: the hand-derived "
                     f"backward pass; autodiff: jax.grad (default {g['grad']})")
    out = p.add_argument_group("output")
    out.add_argument("--out", metavar="DIR", help="output folder (default runs/<dataset>)")
    out.add_argument("--resume", action="store_true", help="continue from the newest "
                     "checkpoint in --out, with its settings (history.json continues too)")
    out.add_argument("--overwrite", action="store_true", help="start afresh in an --out that "
                     "holds a run: delete its checkpoints, history.json and curves.png first "
                     "(without it or --resume, such an --out is refused)")
    out.add_argument("--save-every", type=positive_int, default=10, metavar="N",
                     help="save a checkpoint every N epochs and at the end (default 10)")
    out.add_argument("--keep", type=positive_int, default=3, metavar="N",
                     help="checkpoints kept in --out, newest first (default 3)")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    out.add_argument("--no-plot", action="store_true", help="do not write curves.png")
    par = p.add_argument_group("several devices or processes", textwrap.fill(
        "Several processes (hosts) join one run with all three of --coordinator, "
        "--num-processes and --process-id, or from the environment: JAXNN_COORDINATOR, "
        "JAXNN_NUM_PROCESSES and JAXNN_PROCESS_ID, or what jax.distributed detects (Cloud TPU, "
        "SLURM, Open MPI) with --distributed. Every process runs the same command; training is "
        "data parallel over the devices of all processes, and process 0 alone prints and "
        "writes --out (a folder every process names the same).", 79))
    par.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0 and a "
                     "free port there, the same on every process")
    par.add_argument("--num-processes", type=positive_int, metavar="P", help="processes in "
                     "the run")
    par.add_argument("--process-id", type=non_negative_int, metavar="I", help="this "
                     "process's id, 0..P-1")
    par.add_argument("--startup-timeout", type=positive_int, default=60, metavar="S",
                     help="seconds to wait for every process to join before giving up with a "
                     "line that says what to check (default 60)")
    par.add_argument("--distributed", action="store_true", help="join the run that "
                     "jax.distributed detects from the environment (Cloud TPU, SLURM, Open MPI)")
    par.add_argument("--mesh", action="store_true", help="one process: train data parallel "
                     "over all its devices (B must be a multiple of their count); on with "
                     "several processes")
