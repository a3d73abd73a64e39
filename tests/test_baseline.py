"""`jaxnn train --csv` with its defaults never loses to a linear model (issue 22, item 5).

Each generated CSV (scikit-learn's generators, with noise, a few hundred rows)
trains through the CLI with no training flag; the test score of the epoch the
run kept must reach scikit-learn's LinearRegression / LogisticRegression on the
same split, within 0.005. The baseline the run printed and recorded is
recomputed here from the same split, so a wrong baseline fails too. The
bundled recipes (diabetes among them) are held to it in tests/test_accuracy.py.
"""

import csv
import json

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_friedman1, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression

from jaxnn import cli, datasets

MARGIN = 0.005


def _friedman():  # smooth, non-linear: the network must find the curvature
    return make_friedman1(n_samples=200, noise=1.0, random_state=0)


def _linear():  # linear with noise: the network must not lose to least squares
    return make_regression(n_samples=200, n_features=10, n_informative=6, noise=10.0,
                           random_state=0)


def _three_classes():
    return make_classification(n_samples=300, n_features=10, n_informative=5, n_classes=3,
                               flip_y=0.05, random_state=0)


def _two_classes():
    return make_classification(n_samples=300, n_features=10, n_informative=4, flip_y=0.05,
                               random_state=1)


CASES = {"friedman1": (_friedman, "r2"), "linear": (_linear, "r2"),
         "three_classes": (_three_classes, "accuracy"), "two_classes": (_two_classes, "accuracy")}


def _write(path, F, y, metric):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"x{j}" for j in range(F.shape[1])] + ["target"])
        for row, t in zip(F, y):
            w.writerow([f"{v:.6g}" for v in row] + [f"{t:.6g}" if metric == "r2" else int(t)])


def independent_baseline(ds) -> float:
    """scikit-learn's linear model on the Dataset's own (standardised) split."""
    X, X_test = ds.X_train.T.astype(float), ds.X_test.T.astype(float)
    if ds.task == "regression":
        y, y_test = ds.Y_train[0], ds.Y_test[0]
        pred = LinearRegression().fit(X, y).predict(X_test)
        return 1 - np.sum((y_test - pred) ** 2) / np.sum((y_test - y_test.mean()) ** 2)
    y, y_test = (np.argmax(Y, 0) if ds.task == "multiclass" else Y[0] for Y in
                 (ds.Y_train, ds.Y_test))
    return np.mean(LogisticRegression(max_iter=2000).fit(X, y).predict(X_test) == y_test)


def kept_score(history: dict, metric: str) -> float:
    """The test score of the epoch whose params the run kept (history.json's best_epoch)."""
    row = history["epoch"].index(history["best_epoch"][-1])
    return history[f"test_{metric}"][row]


@pytest.mark.parametrize("case", CASES)
def test_csv_defaults_match_the_linear_baseline(case, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JAXNN_CACHE_DIR", "")
    make, metric = CASES[case]
    F, y = make()
    _write(tmp_path / f"{case}.csv", F, y, metric)
    # output flags only: --save-every 1000 skips the intermediate checkpoints (fsyncs)
    assert cli.main(["train", "--csv", str(tmp_path / f"{case}.csv"), "--out",
                     str(tmp_path / "run"), "--no-plot", "--no-progress",
                     "--save-every", "1000"]) == 0
    out = capsys.readouterr().out
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    score = kept_score(history, metric)
    baseline = history[f"baseline_test_{metric}"][-1]
    # the same split: the loader's default label column (the last) and seed 0
    assert baseline == pytest.approx(independent_baseline(datasets.load_csv(
        tmp_path / f"{case}.csv")), abs=1e-4)
    symbol = "R²" if metric == "r2" else "accuracy"
    assert f"test {symbol} {score:.4f} (linear baseline {baseline:.4f}" in out
    assert "validation" in out.split("| test |")[0]  # the defaults hold a validation split out
    assert score >= baseline - MARGIN, f"{case}: test {metric} {score:.4f} < {baseline:.4f}"
