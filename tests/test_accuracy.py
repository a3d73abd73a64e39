"""Accuracy on real data through the CLI: `jaxnn train --dataset NAME` with no training flag.

Each bundled data set trains with its recipe (jaxnn/cli/recipes.py) and must reach
its band on the test split, and match the linear baseline (scikit-learn's
LogisticRegression / LinearRegression on the same split) within 0.005. Only
output flags are added (--out, --no-plot, --no-progress), which do not change
what is trained. The score (of the epoch the run kept) is read from the
history.json the run wrote and checked against the table and the line it printed;
the baseline is recomputed here from the same split.
"""

import json

import pytest
from test_baseline import MARGIN, independent_baseline, kept_score

from jaxnn import cli, datasets
from jaxnn.cli import recipes as cli_recipes

BANDS = {"digits": ("accuracy", 0.97), "breast_cancer": ("accuracy", 0.95),
         "iris": ("accuracy", 0.93), "wine": ("accuracy", 0.95), "diabetes": ("r2", 0.40)}


def test_every_recipe_has_a_band():
    assert set(BANDS) == set(cli_recipes.RECIPES)


@pytest.mark.parametrize("name", BANDS)
def test_recipe_reaches_its_band(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JAXNN_CACHE_DIR", "")  # cold, as in CI
    metric, band = BANDS[name]
    assert cli.main(["train", "--dataset", name, "--out", str(tmp_path), "--no-plot",
                     "--no-progress"]) == 0
    out = capsys.readouterr().out
    history = json.loads((tmp_path / "history.json").read_text())
    score = kept_score(history, metric)
    assert f"{score:.4f}" in out.split("| test |")[1].split("\n")[0]
    assert history["settings"] | cli_recipes.RECIPES[name] == history["settings"]
    assert score >= band, f"{name}: test {metric} {score:.4f} < {band}"
    seed = cli_recipes.starting_settings(name)["seed"]
    baseline = history[f"baseline_test_{metric}"][-1]
    assert baseline == pytest.approx(independent_baseline(datasets.load(name, seed=seed)),
                                     abs=1e-4)
    assert f"(linear baseline {baseline:.4f}" in out
    print(f"{name}: test {metric} {score:.4f}, linear baseline {baseline:.4f}")
    assert score >= baseline - MARGIN, f"{name}: {score:.4f} < baseline {baseline:.4f}"
