"""What ``jaxnn train`` prints and writes: the gradient-check line, the score table,
``history.json`` and ``curves.png``.

The printed table and history.json use the same names: the row ``train`` is
``train_<metric>``, the row ``test`` is ``test_<metric>`` (the held-out split,
called ``validation`` inside ``jaxnn.train_epochs``, whose history says ``val_``),
the row ``validation`` is ``validation_<metric>`` (the split early stopping
watches, ``jaxnn.cli.selection``). RMSE is in the label's own units.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

# train_epochs' name -> history.json's; "cost" is the mean of the epoch's minibatch costs
# (with dropout and L2, as trained), not a score of the final params.
_RENAME = {"cost": "batch_cost"}


def gradcheck_line(check, m: int, s: dict) -> str:
    """One line: what was compared, on what, and the verdict of ``check_gradients``' autodiff
    method (``check``, a ``MethodResult``): error <= threshold + noise bound (conventions §3)."""
    extras = [f"dropout keep {s['keep_prob']:g}" if s["keep_prob"] < 1 else "",
              f"L2 {s['l2']:g}" if s["l2"] > 0 else ""]
    on = ", ".join(["first batch", f"m = {m}", *[e for e in extras if e]])
    if check.error == 0:
        verdict = "0 (the two gradients coincide bit for bit)"
    else:
        verdict = f"{check.error:.1e}"
    ok = check.status == "pass"
    where = "" if ok or not check.worst_leaf else f", worst {check.worst_leaf}"
    return (f"gradient check ({on}): dW, db of every layer from the hand-derived backward pass "
            f"(formulas §4) vs jax.grad of the same cost: relative error {verdict}; threshold "
            f"{check.threshold:.0e} + noise bound {check.noise:.1e} (conventions §3): "
            + ("ok" if ok else f"FAILED{where}"))


def cli_history(history: dict) -> dict:
    """train_epochs' history -> the names of the printed table (val_* -> test_*)."""
    out = {}
    for k, v in history.items():
        k = "test_" + k[4:] if k.startswith("val_") else _RENAME.get(k, k)
        out[k] = v
    return out


def table(history: dict, metrics: tuple[str, ...], row: int = -1) -> str:
    """One epoch's (default the last) train, validation (if any) and test scores, in Markdown."""
    names = ["cost", *metrics]
    rows = [f"| split | {' | '.join(names)} |", f"|---|{'---|' * len(names)}"]
    for split in ("train", "validation", "test"):
        if f"{split}_cost" in history:
            rows.append(f"| {split} | " + " | ".join(
                f"{float(history[f'{split}_{k}'][row]):.4f}" for k in names) + " |")
    return "\n".join(rows)


def write_history(history: dict, settings: dict, path: Path) -> None:
    """history.json: ``{"settings": {...}, "epoch": [...], "train_cost": [...], ...}``."""
    from jaxnn import save_history

    save_history(history, path, settings=settings)


def read_history(path: Path, upto: int | None = None) -> dict:
    """write_history's arrays (without the settings), the rows of epochs <= ``upto`` only;
    {} when there is no file yet.

    history.json is written before each checkpoint, so after a kill it may hold
    rows past the newest checkpoint: the resumed run recomputes those epochs.
    """
    from jaxnn import load_history

    if not path.is_file():
        return {}
    history = load_history(path)
    if upto is None or "epoch" not in history:
        return history
    rows = history["epoch"] <= upto
    return {k: v[..., rows] for k, v in history.items()}


def log_reads_well(values) -> bool:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    # Under one decade a log axis has at most one labelled tick: linear reads better.
    return v.size > 1 and v.min() > 0 and v.max() / v.min() >= 10


def plot(history: dict, path: Path, metric: str, title: str) -> None:
    """curves.png: cost and ``metric`` per epoch, train and test."""
    # The object API with the Agg canvas: a file, never a window, and no pyplot import.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    epoch = history["epoch"]
    for ax, what in zip(axes, ("cost", metric)):
        shown = []
        for split, style in (("train", "-"), ("test", "--")):
            key = f"{split}_{what}"
            if key in history:
                ax.plot(epoch, history[key], style, label=split)
                shown.append(history[key])
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        ax.legend()
        if what == "cost" and shown and log_reads_well(np.concatenate(shown)):
            ax.set_yscale("log")
    fig.suptitle(title)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    # a temporary file renamed over curves.png: never a half-written image, and never
    # an open() of whatever is at that name (a FIFO there would block)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(png.getvalue())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def title(net, dataset: str, s: dict) -> str:
    """curves.png's title: data set, network and optimizer."""
    acts = "/".join(a.name for a in net.layer_activations)
    extras = "".join([f", dropout keep {s['keep_prob']:g}" if s["keep_prob"] < 1 else "",
                      f", L2 {s['l2']:g}" if s["l2"] > 0 else ""])
    batch = "full batch" if not s["batch_size"] else f"batch {s['batch_size']}"
    return (f"jaxnn train: {dataset}, {'-'.join(map(str, net.layer_sizes))} {acts}, "
            f"{net.loss_fn.name}; {s['optimizer']} lr {s['lr']:g}, {batch}{extras}")
