"""Model selection in ``jaxnn train``: early stopping on a validation split, and the linear baseline.

With ``--val-fraction F`` > 0, F of the training split is held out
(``jaxnn.datasets.split_validation``) and scored after every epoch; the run
keeps the epoch with the lowest validation cost (formulas §3, without L2 or
dropout) and stops once ``--patience`` epochs bring no lower one. The test
split plays no part in that choice: its per-epoch scores are only recorded.

The baseline is scikit-learn's ``LinearRegression`` (regression: R²) or
``LogisticRegression`` (classification: accuracy) fitted on the whole
training split (validation part included) of the same standardised data, and
scored on the same test split. history.json gets, one entry per epoch:
``validation_<metric>`` (with a validation split), ``best_epoch`` (the epoch
whose params the run would keep if it stopped there) and
``baseline_test_<metric>`` (constant: the baseline's test score).
"""

from __future__ import annotations

import math

import numpy as np

SYMBOL = {"r2": "R²", "accuracy": "accuracy"}


class Stopped(Exception):
    """Raised from train_epochs' callback when the patience has run out."""


def add_arguments(p) -> None:
    """The flags of the validation split and early stopping (their own group)."""
    from jaxnn.cli import flags, recipes

    g = recipes.GENERIC
    v = p.add_argument_group("validation and early stopping")
    v.add_argument("--val-fraction", type=_fraction_or_zero, metavar="F", help="share of the "
                   "training split held out for validation; the run keeps the epoch with the "
                   "lowest validation cost (0 = none: train every epoch on the whole training "
                   f"split and keep the last) (default {g['val_fraction']})")
    v.add_argument("--patience", type=flags.positive_int, metavar="N", help="stop after N "
                   "epochs without a lower validation cost than the best so far (default "
                   f"{g['patience']})")


def _fraction_or_zero(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected 0 or a fraction strictly between 0 and 1, "
                                         f"got {text!r}")
    return value


class BestEpoch:
    """Tracks the validation cost after each epoch and a copy of the best state.

    ``start(state, epoch)`` before training, ``observe(state, epoch)`` after
    every epoch (the callback of ``train_epochs`` with ``epochs_per_call=1``),
    ``stop()`` when the patience has run out. ``best_state`` is None without a
    validation split (the last state is the one kept). ``val``: (X_val: (n_x, m_val),
    Y_val: (n_y, m_val)) or None.
    """

    def __init__(self, net, val, patience: int):
        import jax
        import jax.numpy as jnp

        from jaxnn import evaluate

        self.net, self.val, self.patience = net, val, patience
        self.best_epoch, self.best_cost, self.best_state = 0, math.inf, None
        self.last_epoch = self.steps = 0  # the last epoch and update count trained
        self.history: dict = {}  # train_epochs' history at the last callback
        self.scores: dict[str, list[float]] = {}
        self.best: list[int] = []
        self._score = jax.jit(evaluate, static_argnums=3)
        self._copy = jax.jit(lambda tree: jax.tree.map(jnp.copy, tree))  # one dispatch

    def _validation(self, state) -> dict[str, float]:
        import jax

        from jaxnn import distributed

        params = distributed.to_local(state.params) if jax.process_count() > 1 else state.params
        return {k: float(v) for k, v in
                jax.device_get(self._score(params, *self.val, self.net)).items()}

    def _keep(self, state, epoch: int, cost: float) -> None:
        # a copy: the next compiled call donates the buffers of the state it is given
        self.best_epoch, self.best_cost = epoch, cost
        self.best_state = self._copy(state)

    def start(self, state, epoch: int) -> None:
        """A resumed run: the checkpoint's own state is the one to beat."""
        self.last_epoch = self.best_epoch = epoch
        if self.val is not None and epoch > 0:
            self._keep(state, epoch, self._validation(state)["cost"])

    def observe(self, state, epoch: int) -> None:
        """After epoch ``epoch``: score the validation split, keep the state if it is the best."""
        self.last_epoch = epoch
        if self.val is None:
            return
        scores = self._validation(state)
        for k, v in scores.items():
            self.scores.setdefault(k, []).append(v)
        if scores["cost"] < self.best_cost:  # NaN never wins
            self._keep(state, epoch, scores["cost"])
        self.best.append(self.best_epoch)

    def stop(self) -> bool:
        return self.val is not None and self.last_epoch - self.best_epoch >= self.patience

    def columns(self, history: dict) -> dict[str, np.ndarray]:
        """validation_* and best_epoch for the epochs of ``history`` (train_epochs' names)."""
        n = len(history.get("epoch", ()))
        if self.val is None:
            return {"best_epoch": np.asarray(history.get("epoch", np.zeros(0, int)))}
        cols = {f"validation_{k}": np.asarray(v[:n]) for k, v in self.scores.items()}
        return cols | {"best_epoch": np.asarray(self.best[:n], dtype=int)}


def linear_baseline(ds) -> tuple[str, float]:
    """(model name, test score) of scikit-learn's linear model on ``ds``'s own split.

    R² (averaged over output units, as ``jaxnn.evaluate``) for regression,
    accuracy for classification; fitted on the standardised training split.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LinearRegression, LogisticRegression

    X, X_test = ds.X_train.T.astype(np.float64), ds.X_test.T.astype(np.float64)
    if ds.task == "regression":
        Y, Y_test = ds.Y_train.T.astype(np.float64), ds.Y_test.T.astype(np.float64)
        pred = LinearRegression().fit(X, Y).predict(X_test).reshape(Y_test.shape)
        ss_res = ((Y_test - pred) ** 2).sum(axis=0)
        ss_tot = ((Y_test - Y_test.mean(axis=0)) ** 2).sum(axis=0)
        return "LinearRegression", float(np.mean(1 - ss_res / ss_tot))

    def codes(Y):
        return np.argmax(Y, axis=0) if ds.task == "multiclass" else (Y[0] > 0.5).astype(int)

    with warnings.catch_warnings():  # a baseline short of full convergence is still a baseline
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)  # "many classes": the CLI's line says it
        model = LogisticRegression(max_iter=2000).fit(X, codes(ds.Y_train))
    return "LogisticRegression", float(np.mean(model.predict(X_test) == codes(ds.Y_test)))


def result_line(metric: str, score: float, baseline: tuple[str, float]) -> str:
    """``test R² 0.5233 (linear baseline 0.5226: scikit-learn's LinearRegression, same split)``."""
    name, value = baseline
    return (f"test {SYMBOL.get(metric, metric)} {score:.4f} (linear baseline {value:.4f}: "
            f"scikit-learn's {name} on the same split)")


def kept_line(keeper: BestEpoch, epochs: int) -> str:
    """Which epoch's params the run kept, and why."""
    if keeper.val is None:
        return f"kept the last epoch, {keeper.last_epoch} (no validation split: --val-fraction 0)"
    why = (f"stopped: no lower validation cost in the {keeper.patience} epochs after it "
           "(--patience)" if keeper.stop() else f"trained to --epochs {epochs}")
    return (f"kept epoch {keeper.best_epoch} of {keeper.last_epoch}, the lowest validation cost "
            f"({keeper.best_cost:.4g}); {why}")


def in_label_units(history: dict, ds) -> dict:
    """RMSE columns times the training split's label std: in the label's own units.

    The network fits standardised targets (``Dataset.y_std``); R² does not
    change with the scale, RMSE does. One target only (a CSV's label column).
    """
    if ds.y_std is None or ds.y_std.size != 1:
        return history
    scale = float(np.asarray(ds.y_std).reshape(()))
    return {k: np.asarray(v) * scale if k.endswith("rmse") else v for k, v in history.items()}
