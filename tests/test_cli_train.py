"""Tests of `jaxnn train` (jaxnn._cli_train) through jaxnn.cli.main."""

import csv

import numpy as np
import pytest

from jaxnn import checkpoint, cli, training

FAST = ["--dataset", "iris", "--layers", "8", "--batch-size", "32", "--no-progress",
        "--save-every", "2"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXNN_CACHE_DIR", "")  # no persistent compilation cache from tests
    monkeypatch.chdir(tmp_path)


def _arrays(folder):
    with np.load(checkpoint.resolve(folder), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files if k != "meta"}


def test_every_flag_has_help():
    parser = cli.build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    flags = [a for a in train._actions if a.option_strings and a.dest != "help"]
    assert len(flags) >= 18
    assert all(a.help and len(a.help) > 10 for a in flags), [a.dest for a in flags if not a.help]


def test_train_writes_outputs_and_resume_matches_a_straight_run(tmp_path, capsys):
    assert cli.main(["train", *FAST, "--epochs", "4", "--out", "a"]) == 0
    out = capsys.readouterr().out
    assert "gradient check" in out and out.count(" ok") >= 1
    assert "| test |" in out and "steps/s" in out
    assert {p.name for p in (tmp_path / "a").iterdir()} >= {"LATEST", "history.json", "curves.png"}
    assert (tmp_path / "a" / "curves.png").stat().st_size > 10_000
    assert cli.main(["train", "--resume", "--epochs", "6", "--out", "a", "--no-progress",
                     "--no-plot"]) == 0
    assert cli.main(["train", *FAST, "--epochs", "6", "--out", "b", "--no-plot"]) == 0
    history = training.load_history(tmp_path / "a" / "history.json")
    np.testing.assert_array_equal(history["epoch"], np.arange(1, 7))
    a, b = _arrays(tmp_path / "a"), _arrays(tmp_path / "b")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert checkpoint.read_metadata(tmp_path / "a")["config"]["dataset"] == "iris"


@pytest.mark.parametrize("flags,match", [
    (["--lr", "-1"], "--lr -1.0: must be a number > 0"),
    (["--layers", "12,x"], "--layers '12,x' must be comma-separated integers"),
    (["--keep-prob", "0"], "--keep-prob 0.0: must be in"),
    (["--dataset", "nope"], "--dataset 'nope': choose one of"),
    (["--optimizer", "lbfgs"], "--optimizer 'lbfgs'"),
    (["--batch-size", "-3"], "--batch-size -3"),
    (["--activation", "softmax"], "--activation 'softmax'"),
    (["--csv", "missing.csv"], "--csv: .*missing.csv"),
    (["--resume", "--out", "nothing"], "--resume: checkpoint nothing does not exist"),
])
def test_invalid_flags_give_one_line_errors(flags, match, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", *flags])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxnn train: error: ") and err.count("\n") == 1
    assert pytest.importorskip("re").search(match, err), err


def test_resume_refuses_other_settings(tmp_path, capsys):
    assert cli.main(["train", *FAST, "--epochs", "2", "--out", "r", "--no-plot"]) == 0
    with pytest.raises(SystemExit):
        cli.main(["train", "--resume", "--out", "r", "--lr", "0.5"])
    assert "drop --lr 0.5 (checkpoint: 0.001)" in capsys.readouterr().err


def test_csv_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    with open(tmp_path / "toy.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["a", "b", "label", "c"])
        for x in X:
            w.writerow([x[0], x[1], "yes" if x[0] + x[1] > 0 else "no", x[2]])
    assert cli.main(["train", "--csv", "toy.csv", "--label-column", "label", "--layers", "",
                     "--epochs", "40", "--batch-size", "0", "--lr", "0.5", "--optimizer", "gd",
                     "--keep-prob", "1", "--no-progress", "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "runs/toy" in out and (tmp_path / "runs" / "toy" / "LATEST").is_file()
    test_acc = float(out.split("| test |")[1].split("|")[1])
    assert test_acc >= 0.9
