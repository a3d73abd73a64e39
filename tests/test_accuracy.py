"""Accuracy on real data through the CLI: `jaxnn train --dataset NAME` with no training flag.

Each bundled data set trains with its recipe (jaxnn/cli/recipes.py) and must reach
its band on the test split. Only output flags are added (--out, --no-plot,
--no-progress), which do not change what is trained. The score is read from the
history.json the run wrote and checked against the table it printed.
"""

import json

import pytest

from jaxnn import cli
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
    score = history[f"test_{metric}"][-1]
    assert f"{score:.4f}" in out.split("| test |")[1].split("\n")[0]
    assert history["settings"] | cli_recipes.RECIPES[name] == history["settings"]
    assert score >= band, f"{name}: test {metric} {score:.4f} < {band}"
