"""``jaxnn train``: train on a bundled data set (with its recipe) or a CSV file.

A thin layer over the library: ``jaxnn.datasets`` loads the data (X: (n_x, m)),
``jaxnn.train_epochs`` trains, ``jaxnn.checkpoint`` saves and resumes. Before
training it checks the hand-derived backward pass (formulas §4) against
``jax.grad`` on the first batch. Writes to ``--out``: checkpoints (``LATEST``
names the newest), ``history.json`` and ``curves.png``. The settings start
from ``jaxnn.cli.recipes``; the flags are ``jaxnn.cli.flags``'s.

Nothing lost: the run holds ``--out``'s lock (``jaxnn.checkpoint.lock``) from
start to end, so a second run on the same folder is refused at once; a folder
that already holds a run is refused unless ``--resume`` continues it or
``--overwrite`` clears it; ``history.json`` is rewritten atomically before each
checkpoint, so a killed run's history covers every epoch of its newest
checkpoint and a resumed run continues it without a gap.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import textwrap
import time
from pathlib import Path

from jaxnn.cli import flags, recipes, report, selection
from jaxnn.cli.processes import join_processes, leave, same_flags_everywhere
from jaxnn.cli.run_folder import check_out, claim, regular_file, write_history

HELP = "train a network on a bundled data set (each with a recipe that reaches its band) or a CSV file"

# Settings a resumed run must share with the checkpoint (the rest may change).
FIXED_ON_RESUME = ("dataset", "csv", "label_column", "task", "test_fraction", "layers",
                   "activation", "init", "optimizer", "lr", "batch_size", "l2", "keep_prob",
                   "seed", "val_fraction")
DEFAULT_CACHE = "~/.cache/jaxnn/xla"
CACHE_HELP = (
    "Compiled programs are cached on disk, so a second run starts faster: in $JAXNN_CACHE_DIR "
    f"if set ('' turns the cache off), else in $JAX_COMPILATION_CACHE_DIR if set, else in "
    f"{DEFAULT_CACHE}.")


def epilog() -> str:
    """--help's text after the flags: the recipes and the compilation cache."""
    def fill(text, **kw):
        return textwrap.fill(text, 79, break_on_hyphens=False, **kw)

    listed = "\n".join(fill(recipes.describe(name), initial_indent="  ",
                            subsequent_indent="      ") for name in recipes.RECIPES)
    intro = ("recipes: the settings of --dataset NAME, each reaching the test score the test "
             "suite holds it to, and the linear baseline printed beside it; any flag given "
             "overrides its entry. A --csv run starts from " + recipes.describe(None) + ": "
             "features and regression targets standardised with the training split's "
             "statistics, 20% of the training split held out for validation, and the epoch with "
             "the lowest validation cost kept (early stopping after --patience epochs without a "
             "lower one). Every run prints its test score beside scikit-learn's "
             "LinearRegression / LogisticRegression on the same split.")
    return f"{fill(intro)}\n{listed}\n\n{fill(CACHE_HELP)}"


def add_arguments(p) -> None:
    from jaxnn import OPTIMIZERS, datasets

    flags.add_arguments(p, datasets.available(), tuple(OPTIMIZERS))
    selection.add_arguments(p)


def cache_dir(environ) -> str | None:
    """The compilation cache folder for this run, or None to leave JAX's setting alone."""
    if "JAXNN_CACHE_DIR" in environ:
        return environ["JAXNN_CACHE_DIR"] or None
    if environ.get("JAX_COMPILATION_CACHE_DIR"):
        return None  # JAX has read it at import: respected as it is
    return os.path.expanduser(DEFAULT_CACHE)


def _configure_cache() -> None:
    path = cache_dir(os.environ)
    if path:
        import jax

        jax.config.update("jax_compilation_cache_dir", path)
        if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.3)


def _check_memory(net, s: dict, m_train: int) -> None:
    """Before init_params allocates: the network, its optimizer state and a batch must fit."""
    from jaxnn import check_memory

    try:
        check_memory(net, s["batch_size"] or m_train, optimizer=s["optimizer"])
    except ValueError as e:
        raise ValueError(f"--layers {s['layers']}: {e}") from None


def settings(args, saved: dict | None) -> dict:
    """Explicit flags, else the checkpoint's settings (--resume), else the recipe."""
    given = {k: getattr(args, k) for k in recipes.GENERIC if getattr(args, k) is not None}
    if saved is not None:
        clash = [f"--{k.replace('_', '-')} {given[k]} (checkpoint: {saved.get(k)})"
                 for k in FIXED_ON_RESUME if k in given and given[k] != saved.get(k)]
        if clash:
            raise ValueError("--resume continues with the checkpoint's settings; drop "
                             + ", ".join(clash) + ".")
        # --epochs is not saved: without it, train to the recipe's count
        return {**recipes.starting_settings(saved.get("dataset")), **saved, **given}
    if "csv" in given and "dataset" in given:
        raise ValueError("--csv: give either --dataset or --csv, not both.")
    if "csv" not in given:
        for flag in ("label_column", "task"):
            if flag in given:
                raise ValueError(f"--{flag.replace('_', '-')} applies to --csv files; a "
                                 "bundled --dataset has its own label and task.")
    dataset = None if "csv" in given else given.get("dataset", recipes.GENERIC["dataset"])
    s = {**recipes.starting_settings(dataset), **given}
    if s["csv"] is not None:
        s["dataset"] = None
    return s


def _load_data(s: dict):
    """The Dataset, and for --csv one line saying which label and task it took."""
    from jaxnn import datasets

    if s["dataset"] is not None:
        try:
            ds = datasets.load(s["dataset"], test_fraction=s["test_fraction"], seed=s["seed"])
        except ValueError as e:
            raise ValueError(f"--dataset {s['dataset']}: {e}") from None
        return ds, ""
    path, label = s["csv"], s["label_column"]
    regular_file("--csv", path)
    label = int(label) if label.lstrip("-").isdigit() else label
    try:
        ds = datasets.load_csv(path, label_column=label, task="regression" if s["task"] ==
                               "regression" else "auto", test_fraction=s["test_fraction"],
                               seed=s["seed"])
    except OSError as e:
        raise ValueError(f"--csv {path}: cannot read it ({e.strerror or e}).") from None
    except ValueError as e:
        raise ValueError(f"--csv {path}: {e}") from None
    name = f"column {ds.label_column!r}"
    if isinstance(label, int):  # the file's other columns are the n_x features
        j = label % (ds.n_x + 1)
        name = f"column {j} {ds.label_column!r}" + (" (the last)" if j == ds.n_x else "")
    if s["task"] == "classification" and ds.task == "regression":
        raise ValueError(f"--task classification: the label, {name}, holds non-integer numbers; "
                         "classes must be integers or names (or drop --task for regression).")
    if ds.task == "regression":
        task = "regression" + (" (--task)" if s["task"] else " (inferred: non-integer numbers; "
                               "--task classification if they are classes)")
    else:
        k = len(ds.class_names)
        task = (f"{ds.task} classification, {k} classes"
                + (" (--task)" if s["task"] else " (inferred: integer or text labels"
                   + ("; --task regression if they are a quantity)" if k > 10 else ")")))
    return ds, (f"--csv {path}: label = {name} (--label-column picks another), task = {task}, "
                f"{ds.n_x} features.")


def _gradcheck(params, X, Y, net, s, key):
    """The pre-training check on one batch: ``jaxnn.check_gradients``' autodiff method (the
    hand-derived backward pass vs jax.grad, conventions §3's verdict with its noise bound),
    with the run's L2 and dropout (the same mask)."""
    from jaxnn import check_gradients

    dropout = {"key": key, "keep_prob": s["keep_prob"]} if s["keep_prob"] < 1 else {}
    return check_gradients(params, X, Y, net, methods=("autodiff",), l2=s["l2"],
                           **dropout)["autodiff"]


def _joined(old: dict, history: dict) -> dict:
    """The resumed history's rows, then this run's (named as history.json names them)."""
    import numpy as np

    history = report.cli_history(history)
    return {k: np.concatenate([old[k], v]) if k in old else v for k, v in history.items()}


def _epochs(epoch) -> str:
    return "no rows" if len(epoch) == 0 else f"epochs {int(epoch[0])}..{int(epoch[-1])}" + (
        f" ({len(epoch)} rows)" if len(epoch) != epoch[-1] - epoch[0] + 1 else "")


def _read_checkpoint(out: Path) -> dict:
    from jaxnn import checkpoint

    try:
        config = checkpoint.read_metadata(out).get("config")
    except (FileNotFoundError, ValueError) as e:
        raise ValueError(f"--resume: {e}") from None
    if not isinstance(config, dict) or not set(FIXED_ON_RESUME) <= set(config):
        raise ValueError(f"--resume: the checkpoint in {out} holds no jaxnn train settings (it "
                         "was saved by another program); resume it with jaxnn.checkpoint.restore.")
    return config


def run(args) -> int:
    from jaxnn import distributed

    try:
        with contextlib.ExitStack() as stack:  # --out's lock, released however the run ends
            stack.enter_context(distributed.peer_loss_as_error())  # any collective's, too
            return _run(args, stack)
    except distributed.PeerLostError as e:  # every survivor says so: process 0 may be the lost one
        line = f"jaxnn train: error: {' '.join(str(e).split())}"
        if distributed.process_count() > 1:
            leave(line, 1)
        print(line, file=sys.stderr)
        return 1
    except RuntimeError as e:  # XLA out of memory despite the estimate: one line, never a hang
        from jaxnn import is_out_of_memory, out_of_memory_text

        if not is_out_of_memory(e):
            raise
        raise ValueError(f"out of memory: {out_of_memory_text(e)}; use fewer or smaller "
                         "--layers or a smaller --batch-size.") from None


def _run(args, stack: contextlib.ExitStack) -> int:
    t_start = time.perf_counter()
    _configure_cache()
    join_processes(args)
    import jax
    import numpy as np

    from jaxnn import (
        DivergenceError,
        Network,
        checkpoint,
        distributed,
        init_params,
        init_state,
        make_mesh,
        metric_names,
        train_epochs,
    )

    main = distributed.is_main_process()
    say = print if main else (lambda *a, **k: None)
    out = Path(args.out) if args.out else None
    saved = None
    if args.resume:
        out = out or Path("runs") / (args.dataset or (Path(args.csv).stem if args.csv else
                                                      recipes.GENERIC["dataset"]))
        if main and out.is_dir():  # else _read_checkpoint says what is missing
            claim(out, args, stack)
        saved = _read_checkpoint(out)
    s = settings(args, saved)
    out = out or Path("runs") / (s["dataset"] or Path(s["csv"]).stem)
    same_flags_everywhere(s, args, out)
    if args.overwrite and args.resume:
        raise ValueError("--overwrite starts afresh, --resume continues: give one of them.")
    if main and not args.resume:
        claim(out, args, stack)
    check_out(out)
    ds, data_line = _load_data(s)
    if data_line:
        say(data_line, flush=True)
    full_ds, val = ds, None  # the linear baseline fits the whole training split
    if s["val_fraction"] > 0:
        from jaxnn.datasets import split_validation

        try:
            ds, val = split_validation(ds, s["val_fraction"], seed=s["seed"])
        except ValueError as e:
            raise ValueError(f"--val-fraction {s['val_fraction']:g}: {e}") from None
    held = "" if val is None else f"{val[0].shape[1]} validation / "
    layers = [int(n) for n in s["layers"].split(",") if n]
    act = s["activation"]
    init = s["init"] or ("he" if act in ("relu", "leaky_relu") else "xavier")
    net = Network((ds.n_x, *layers, ds.n_y), (act,) * len(layers) + (ds.output_activation,),
                  ds.loss)
    mesh = make_mesh() if args.mesh or jax.process_count() > 1 else None
    k_init, k_train, k_check = jax.random.split(jax.random.key(s["seed"]), 3)
    _check_memory(net, s, ds.m_train)
    # synced here: a failed asynchronous allocation surfaces now, not as a hang later
    params = jax.block_until_ready(init_params(k_init, net, init=init))
    B = s["batch_size"] or ds.m_train
    config = {k: s[k] for k in recipes.GENERIC if k != "epochs"} | {"init": init}
    state = init_state(params, k_train, optimizer=s["optimizer"], learning_rate=s["lr"])
    if saved is not None:
        try:
            state = checkpoint.restore(out, net, like=state)
        except ValueError as e:
            raise ValueError(f"--resume: {e}") from None
    done = int(state.epoch)
    if done >= s["epochs"]:
        raise ValueError(f"--epochs {s['epochs']}: the checkpoint in {out} has {done} epochs "
                         f"already; pass --epochs > {done} to train further.")
    if main:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"--out {out}: cannot create the folder ({e.strerror}).") from None

    check = _gradcheck(state.params, ds.X_train[:, :B], ds.Y_train[:, :B], net, s, k_check)
    say(report.gradcheck_line(check, min(B, ds.m_train), s), flush=True)
    if check.status != "pass":
        return 1
    recipe = ""
    if s["dataset"] in recipes.RECIPES and saved is None:
        changed = [f"--{k.replace('_', '-')}" for k, v in recipes.RECIPES[s["dataset"]].items()
                   if getattr(args, k) is not None and v != s[k]]
        recipe = f", the {s['dataset']} recipe" + (f" but {' '.join(changed)}" if changed else "")
    acts = "/".join(a.name for a in net.layer_activations)
    say(f"training {'-'.join(map(str, net.layer_sizes))} {acts} on {ds.name} ({ds.m_train} "
        f"train / {held}{ds.m_test} test), {s['optimizer']} lr {s['lr']:g}, batch {B}, epochs "
        f"{done + 1}..{s['epochs']}{recipe}"
        + (f", data parallel over {mesh.size} device(s), {jax.process_count()} process(es)"
           if mesh is not None else "") + f" -> {out}", flush=True)
    history_path = out / "history.json"
    old = report.read_history(history_path, upto=done) if saved is not None else {}
    have = old.get("epoch", np.zeros(0, int))
    if saved is not None and not np.array_equal(have, np.arange(1, done + 1)):
        say(f"note: {history_path} holds {_epochs(have)}, not every epoch 1..{done} of the "
            "checkpoint (written by an older jaxnn, or edited); the curves miss the rest.",
            flush=True)
    settings_out = config | {"epochs": s["epochs"], "network": net.describe()}

    keeper = selection.BestEpoch(net, val, s["patience"])
    keeper.start(state, done)

    def rows(history):  # train_epochs' history + validation_*, best_epoch; RMSE in label units
        return selection.in_label_units(history | keeper.columns(history), full_ds)

    def save(state, history):  # after each compiled call; every process calls, 0 writes
        epoch, keeper.steps = (int(np.max(v)) for v in jax.device_get((state.epoch, state.step)))
        keeper.observe(state, epoch)
        keeper.history = history
        if epoch % args.save_every == 0 or epoch == s["epochs"]:
            if main:  # the history first: it then always covers the newest checkpoint
                write_history(_joined(old, rows(history)), settings_out, history_path)
            checkpoint.save(out, state, net, config=config, keep=args.keep)
        if keeper.stop():
            raise selection.Stopped

    step0, t0 = int(state.step), time.perf_counter()
    try:
        state, history = train_epochs(
            state, net, ds, epochs=s["epochs"] - done, optimizer=s["optimizer"], batch_size=B,
            grad=s["grad"], l2=s["l2"], keep_prob=s["keep_prob"], validation=ds,
            progress=False if args.no_progress or not main else None, callback=save,
            # one program for every call: calls end on the multiples of --save-every
            # (with a validation split, one epoch per call: the best epoch is kept exactly)
            epochs_per_call=1 if val is not None else math.gcd(args.save_every,
                                                                s["epochs"] - done), mesh=mesh)
    except selection.Stopped:  # the patience ran out; the best state is on the keeper
        history = keeper.history
    except DivergenceError as e:
        if main:
            print(f"jaxnn train: error: training diverged in epoch {e.epoch} (update {e.step}): "
                  f"{e.where} is NaN or inf; try a smaller --lr (now {s['lr']:g}), --optimizer "
                  "adam, or --l2 > 0.", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - t0
    steps = keeper.steps - step0
    history = _joined(old, rows(history))
    metric = metric_names(net)[0]
    baseline = selection.linear_baseline(full_ds)
    history[f"baseline_test_{metric}"] = np.full(len(history["epoch"]), baseline[1])
    if main:
        write_history(history, settings_out, history_path)
    if keeper.best_state is not None:  # LATEST names the params kept (history.json covers them)
        state = keeper.best_state
        checkpoint.save(out, state, net, config=config, keep=args.keep)
    # The table is the kept epoch's history entries (train_epochs says what they measure):
    # no extra evaluation pass to compile.
    kept = np.flatnonzero(history["epoch"] == history["best_epoch"][-1])
    row = int(kept[-1]) if kept.size else -1
    say("\n" + report.table(history, metric_names(net), row=row), flush=True)
    say(selection.kept_line(keeper, s["epochs"]), flush=True)
    say(selection.result_line(metric, float(history[f"test_{metric}"][row]), baseline),
        flush=True)
    if main and not args.no_plot:
        report.plot(history, out / "curves.png", metric_names(net)[0],
                         report.title(net, ds.name, s))
    say(f"\ntrained {keeper.last_epoch - done} epochs, {steps} steps in {seconds:.2f} s (incl. "
        f"compilation): {steps / seconds:.0f} steps/s; total {time.perf_counter() - t_start:.1f}"
        f" s. Wrote {out}/ (checkpoint, history.json{'' if args.no_plot else ', curves.png'}).")
    return 0
