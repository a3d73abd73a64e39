"""Tests of `jaxnn train` (jaxnn.cli.train) through jaxnn.cli.main.main, in process."""

import csv
import json
import re

import numpy as np
import pytest

from jaxnn import checkpoint, cli
from jaxnn.cli import recipes as cli_recipes
from jaxnn.cli import report as cli_report

# iris with one small network: every run here reuses its compiled programs.
FAST = ["--dataset", "iris", "--layers", "8", "--batch-size", "32", "--no-progress",
        "--save-every", "2"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXNN_CACHE_DIR", "")  # no persistent compilation cache from tests
    monkeypatch.chdir(tmp_path)


def _arrays(folder):
    with np.load(checkpoint.resolve(folder), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files if k != "meta"}


def _one_line_error(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", *argv])
    assert e.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("jaxnn train: error: ") and captured.err.count("\n") == 1
    return captured


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_every_flag_has_help():
    parser = cli.build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    flags = [a for a in train._actions if a.option_strings and a.dest != "help"]
    assert len(flags) >= 25
    assert all(a.help and len(a.help) > 10 for a in flags), [a.dest for a in flags if not a.help]


def test_train_writes_outputs_and_resume_matches_a_straight_run(tmp_path, capsys):
    assert cli.main(["train", *FAST, "--epochs", "4", "--out", "a"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"gradient check \(first batch, m = 32\): dW, db of every layer from the "
                     r"hand-derived backward pass .* vs jax\.grad of the same cost: relative "
                     r"error .*: ok\n", out)
    assert "training 4-8-3 tanh/softmax on iris" in out
    assert "the iris recipe but --layers --epochs --batch-size ->" in out
    assert "| test |" in out and "steps/s" in out
    assert {p.name for p in (tmp_path / "a").iterdir()} >= {"LATEST", "history.json", "curves.png"}
    assert (tmp_path / "a" / "curves.png").stat().st_size > 10_000
    assert cli.main(["train", "--resume", "--epochs", "6", "--out", "a", "--no-progress",
                     "--no-plot"]) == 0
    resumed = capsys.readouterr().out
    assert cli.main(["train", *FAST, "--epochs", "6", "--out", "b", "--no-plot"]) == 0
    a, b = _arrays(tmp_path / "a"), _arrays(tmp_path / "b")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert checkpoint.read_metadata(tmp_path / "a")["config"]["dataset"] == "iris"

    # history.json: the printed table's names (test, not val), all 6 epochs, the settings.
    history = json.loads((tmp_path / "a" / "history.json").read_text())
    assert set(history) == {"settings", "epoch", "batch_cost", "train_cost", "train_accuracy",
                            "test_cost", "test_accuracy", "best_epoch", "baseline_test_accuracy"}
    assert history["best_epoch"] == history["epoch"]  # the recipe: no validation split
    assert history["epoch"] == [1, 2, 3, 4, 5, 6]
    settings = history["settings"]
    assert settings["layers"] == "8" and settings["batch_size"] == 32 and settings["epochs"] == 6
    assert settings["network"]["layer_sizes"] == [4, 8, 3]
    table = resumed.split("| split | cost | accuracy |")[1]
    for split in ("train", "test"):
        printed = table.split(f"| {split} | ")[1].split("\n")[0].strip(" |").split(" | ")
        assert printed == [f"{history[f'{split}_{k}'][-1]:.4f}" for k in ("cost", "accuracy")]


@pytest.mark.parametrize("flags,match", [
    (["--seed", "-1"], r"argument --seed: expected a non-negative integer below 2\*\*63, got -1"),
    (["--seed", "x"], r"argument --seed: expected a non-negative integer below 2\*\*63, got 'x'"),
    (["--seed", str(2**63)], r"argument --seed: expected a non-negative integer below 2\*\*63"),
    (["--lr", "-1"], r"argument --lr: expected a finite number > 0, got -1"),
    (["--lr", "abc"], r"argument --lr: expected a finite number > 0, got 'abc'"),
    (["--lr", "inf"], r"argument --lr: expected a finite number > 0"),
    (["--epochs", "0"], r"argument --epochs: expected an integer >= 1, got 0"),
    (["--layers", "12,x"], r"argument --layers: expected hidden sizes as comma-separated "
                           r"integers >= 1 such as 128,64 \(\'\' for none\), got '12,x'"),
    (["--layers", "0"], r"argument --layers: expected hidden sizes"),
    (["--keep-prob", "0"], r"argument --keep-prob: expected a probability in \(0, 1\]"),
    (["--test-fraction", "1"], r"argument --test-fraction: expected a fraction strictly"),
    (["--l2", "-0.1"], r"argument --l2: expected a finite number >= 0"),
    (["--batch-size", "-3"], r"argument --batch-size: expected a non-negative integer"),
    (["--save-every", "0"], r"argument --save-every: expected an integer >= 1"),
    (["--keep", "0"], r"argument --keep: expected an integer >= 1"),
    (["--dataset", "nope"], r"argument --dataset: invalid choice: 'nope' \(choose from"),
    (["--optimizer", "lbfgs"], r"argument --optimizer: invalid choice: 'lbfgs'"),
    (["--activation", "softmax"], r"argument --activation: invalid choice: 'softmax'"),
    (["--task", "ranking"], r"argument --task: invalid choice: 'ranking'"),
    (["--csv", "missing.csv"], r"--csv missing.csv: .*missing.csv"),
    (["--csv", "."], r"--csv \.: .*folder"),
    (["--csv", "x.csv", "--dataset", "iris"], r"--csv: give either --dataset or --csv"),
    (["--task", "regression"], r"--task applies to --csv files"),
    (["--label-column", "0"], r"--label-column applies to --csv files"),
    (["--resume", "--out", "nothing"], r"--resume: .*nothing"),
    (["--dataset", "iris", "--test-fraction", "0.99"], r"--dataset iris: .*test_fraction"),
    (["--process-id", "1"], r"--process-id needs --coordinator, --num-processes too"),
    (["--coordinator", "nohost", "--num-processes", "2", "--process-id", "0"],
     r"--coordinator: coordinator_address = 'nohost' must be HOST:PORT"),
    (["--coordinator", "127.0.0.1:1234", "--num-processes", "2", "--process-id", "2"],
     r"--process-id 2: expected 0\.\.1 \(--num-processes 2\)"),
])
def test_invalid_flags_give_one_line_errors_naming_the_flag(flags, match, capsys):
    err = _one_line_error(flags, capsys).err
    assert re.search(match, err), err


def test_out_inside_a_file_fails_before_training(tmp_path, capsys):
    (tmp_path / "f").write_text("not a folder")
    for out in ("f", "f/run"):
        captured = _one_line_error(["--dataset", "iris", "--out", out], capsys)
        assert f"--out {out}: f is a file, not a folder" in captured.err
        assert captured.out == ""  # nothing ran: no gradient check, no training


def test_resume_refuses_other_settings_and_corrupt_checkpoints(tmp_path, capsys):
    assert cli.main(["train", *FAST, "--epochs", "2", "--out", "r", "--no-plot"]) == 0
    capsys.readouterr()
    err = _one_line_error(["--resume", "--out", "r", "--lr", "0.5"], capsys).err
    assert "drop --lr 0.5 (checkpoint: 0.01)" in err
    path = checkpoint.resolve(tmp_path / "r")
    data = bytearray(path.read_bytes())
    for corrupt in (data[: len(data) // 2], b"", b"not a zip file at all"):
        path.write_bytes(bytes(corrupt))
        err = _one_line_error(["--resume", "--out", "r", "--epochs", "4"], capsys).err
        assert re.search(rf"--resume: .*{path.name}", err), err


def test_resume_of_a_checkpoint_without_cli_settings(tmp_path, capsys):
    import jax

    from jaxnn import Network, init_params, init_state

    net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    state = init_state(init_params(jax.random.key(0), net), jax.random.key(1))
    checkpoint.save(tmp_path / "lib", state, net)
    err = _one_line_error(["--resume", "--out", "lib"], capsys).err
    assert "--resume: the checkpoint in lib holds no jaxnn train settings" in err


def test_divergence_is_one_line_naming_the_epoch(capsys):
    assert cli.main(["train", "--dataset", "diabetes", "--layers", "", "--optimizer", "gd",
                     "--lr", "1e30", "--epochs", "2", "--no-progress", "--no-plot",
                     "--out", "d"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("jaxnn train: error: ") and captured.err.count("\n") == 1
    assert re.search(r"training diverged in epoch \d \(update \d+\): .* is NaN or inf; try a "
                     r"smaller --lr \(now 1e\+30\)", captured.err), captured.err


def test_mesh_flag_and_a_lost_peer_process(monkeypatch, capsys):
    import jax

    import jaxnn

    meshes = []

    def lost(*args, mesh=None, **kwargs):  # what a survivor sees when another process dies
        meshes.append(mesh)
        raise jaxnn.distributed.PeerLostError("process 1 of 2: another process of the run died")

    monkeypatch.setattr(jaxnn, "train_epochs", lost)
    for flags in ([], ["--mesh"]):
        assert cli.main(["train", *FAST, "--epochs", "2", "--out", "p", "--no-plot", *flags]) == 1
        err = capsys.readouterr().err
        assert err == "jaxnn train: error: process 1 of 2: another process of the run died\n"
    assert meshes[0] is None  # one process: data parallel only with --mesh
    assert list(meshes[1].devices.flat) == jax.devices()


@pytest.fixture
def label_first_csv(tmp_path):
    """label,a,b,c: integer classes in the FIRST column, float features."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    _write_csv(tmp_path / "toy.csv", ["label", "a", "b", "c"],
               [[int(x[0] + x[1] > 0), *x] for x in X])
    return "toy.csv"


FAST_CSV = ["--layers", "", "--epochs", "2", "--no-progress", "--no-plot"]


def test_csv_says_which_label_and_task_it_took(label_first_csv, capsys):
    assert cli.main(["train", "--csv", label_first_csv, *FAST_CSV]) == 0
    out = capsys.readouterr().out
    assert out.startswith("--csv toy.csv: label = column 3 'c' (the last) (--label-column picks "
                          "another), task = regression (inferred: non-integer numbers; --task "
                          "classification if they are classes), 3 features.\n")
    assert "| split | cost | r2 | rmse |" in out
    assert cli.main(["train", "--csv", label_first_csv, "--label-column", "label",
                     *FAST_CSV, "--overwrite"]) == 0
    out = capsys.readouterr().out
    assert "label = column 'label'" in out and "task = binary classification, 2 classes" in out
    assert "| split | cost | accuracy |" in out


def test_task_flag_overrides_the_inferred_task(label_first_csv, capsys):
    assert cli.main(["train", "--csv", label_first_csv, "--label-column", "0", "--task",
                     "regression", *FAST_CSV, "--out", "reg"]) == 0
    out = capsys.readouterr().out
    assert "label = column 0 'label'" in out and "task = regression (--task)" in out
    assert "| split | cost | r2 | rmse |" in out
    err = _one_line_error(["--csv", label_first_csv, "--task", "classification"], capsys).err
    assert "--task classification: the label, column 3 'c' (the last), holds non-integer" in err


@pytest.mark.parametrize("content,match", [
    ("a,b,label\n1,2,0\n3,4\n", r"--csv bad.csv: bad.csv .*3 has 2 fields, expected 3"),
    ("a,b,label\n1,x,0\n3,4,1\n", r"--csv bad.csv: .*column 'b': 'x' is not a number"),
    ("a,b,label\n", r"--csv bad.csv: .*no data rows"),
    (b"\xff\xfe\x00\x01binary", r"--csv bad.csv: "),
])
def test_bad_csv_is_one_line(tmp_path, content, match, capsys):
    path = tmp_path / "bad.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    err = _one_line_error(["--csv", "bad.csv", *FAST_CSV], capsys).err
    assert re.search(match, err), err


def test_csv_training_learns(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    _write_csv(tmp_path / "toy.csv", ["a", "b", "label", "c"],
               [[x[0], x[1], "yes" if x[0] + x[1] > 0 else "no", x[2]] for x in X])
    assert cli.main(["train", "--csv", "toy.csv", "--label-column", "label", "--layers", "",
                     "--epochs", "40", "--batch-size", "0", "--lr", "0.5", "--optimizer", "gd",
                     "--keep-prob", "1", "--no-progress", "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "runs/toy" in out and (tmp_path / "runs" / "toy" / "LATEST").is_file()
    assert float(out.split("| test |")[1].split("|")[1]) >= 0.9


def test_flags_override_the_recipe():
    args = cli.build_parser().parse_args(["train", "--dataset", "iris", "--epochs", "3"])
    s = _cli_train_settings(args)
    assert s["epochs"] == 3 and s["lr"] == cli_recipes.RECIPES["iris"]["lr"]
    assert s["layers"] == cli_recipes.RECIPES["iris"]["layers"]
    default = _cli_train_settings(cli.build_parser().parse_args(["train"]))
    assert {k: default[k] for k in cli_recipes.RECIPES["digits"]} == cli_recipes.RECIPES["digits"]


def test_resume_without_epochs_trains_to_the_recipes_count():
    args = cli.build_parser().parse_args(["train", "--resume"])
    saved = {**cli_recipes.starting_settings("iris"), "dataset": "iris", "init": "xavier"}
    del saved["epochs"]  # as the checkpoint's config holds it
    from jaxnn.cli import train as cli_train

    assert cli_train.settings(args, saved)["epochs"] == cli_recipes.RECIPES["iris"]["epochs"]


def _cli_train_settings(args):
    from jaxnn.cli import train as cli_train

    return cli_train.settings(args, None)


@pytest.mark.parametrize("err,expected", [
    (0.0, "relative error 0 (the two gradients coincide bit for bit); threshold 1e-05 + noise "
          "bound 0.0e+00"),
    (2.5e-8, "relative error 2.5e-08; threshold 1e-05 + noise bound 1.0e-09"),
])
def test_gradient_check_line(err, expected):
    from jaxnn.check import MethodResult

    def result(error, noise, status, worst_leaf=None):
        fields = dict.fromkeys(MethodResult._fields)
        return MethodResult(**fields | {"method": "autodiff", "error": error, "noise": noise,
                                        "threshold": 1e-5, "status": status,
                                        "worst_leaf": worst_leaf})

    s = {"keep_prob": 0.5, "l2": 0.1}
    line = cli_report.gradcheck_line(result(err, 1e-9 if err else 0.0, "pass"), 64, s)
    assert line.startswith("gradient check (first batch, m = 64, dropout keep 0.5, L2 0.1): ")
    assert expected in line and line.endswith(": ok")
    failed = cli_report.gradcheck_line(result(1e-3, 1e-9, "FAIL", "W^[2]"), 64, s)
    assert failed.endswith(": FAILED, worst W^[2]")


def test_plot_title_and_axis():
    from jaxnn import Network

    net = Network((4, 16, 3), ("tanh", "softmax"), "cross_entropy")
    s = {"optimizer": "adam", "lr": 0.01, "batch_size": 0, "keep_prob": 1.0, "l2": 0.0}
    assert cli_report.title(net, "iris", s) == ("jaxnn train: iris, 4-16-3 tanh/softmax, "
                                                 "cross_entropy; adam lr 0.01, full batch")
    assert cli_report.log_reads_well([1.0, 0.5, 0.05])
    assert not cli_report.log_reads_well([0.6, 0.4, 0.3])  # under a decade: linear
    assert not cli_report.log_reads_well([0.5, 0.0])


# ---------------------------------------------- validation split, early stopping, baseline


@pytest.fixture
def noisy_csv(tmp_path):
    """x0..x3 and a noisy non-linear target y (the last column): easy to overfit."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 4))
    y = np.sin(2 * X[:, 0]) + X[:, 1] + rng.normal(scale=0.8, size=120)
    _write_csv(tmp_path / "noisy.csv", ["x0", "x1", "x2", "x3", "y"], [[*x, t] for x, t in
                                                                        zip(X, y)])
    return "noisy.csv"


def test_load_csv_takes_the_last_column_by_default(noisy_csv):
    from jaxnn import datasets

    ds = datasets.load_csv(noisy_csv)
    assert ds.label_column == "y" and ds.feature_names == ("x0", "x1", "x2", "x3")
    same = datasets.load_csv(noisy_csv, label_column=-1)
    assert np.array_equal(ds.X_train, same.X_train) and np.array_equal(ds.Y_test, same.Y_test)


def test_early_stopping_keeps_the_best_epoch_and_resumes_from_it(noisy_csv, tmp_path, capsys):
    import jax

    from jaxnn import Network, datasets, evaluate, init_params, init_state

    flags = ["--csv", noisy_csv, "--layers", "32", "--lr", "0.05", "--l2", "0",
             "--patience", "5", "--epochs", "300", "--no-progress", "--no-plot"]
    assert cli.main(["train", *flags, "--out", "es"]) == 0
    out = capsys.readouterr().out
    assert "(77 train / 19 validation / 24 test)" in out
    history = json.loads((tmp_path / "es" / "history.json").read_text())
    epoch, best = history["epoch"], history["best_epoch"]
    kept = best[-1]
    # stopped 5 epochs after the lowest validation cost, long before --epochs
    assert epoch[-1] == kept + 5 < 300 and len(epoch) == epoch[-1]
    val = history["validation_cost"]
    assert val[kept - 1] == min(val) and all(v > val[kept - 1] for v in val[kept:])
    assert best == [int(np.argmin(val[:e])) + 1 for e in epoch]  # the best so far, per epoch
    assert f"kept epoch {kept} of {epoch[-1]}, the lowest validation cost" in out
    row = out.split("| test |")[1].split("\n")[0].strip(" |").split(" | ")
    assert row == [f"{history[f'test_{k}'][kept - 1]:.4f}" for k in ("cost", "r2", "rmse")]
    baseline = history["baseline_test_r2"][-1]
    assert f"test R² {history['test_r2'][kept - 1]:.4f} (linear baseline {baseline:.4f}" in out

    # LATEST is the kept epoch's state: its params give the kept test scores
    assert checkpoint.read_metadata(tmp_path / "es")["epoch"] == kept
    ds = datasets.load_csv(noisy_csv)
    net = Network((4, 32, 1), ("tanh", "identity"), "mse")
    like = init_state(init_params(jax.random.key(0), net), jax.random.key(1), optimizer="adam")
    params = checkpoint.restore(tmp_path / "es", net, like=like).params
    scores = evaluate(params, ds.X_test, ds.Y_test, net)
    assert float(scores["r2"]) == pytest.approx(history["test_r2"][kept - 1], abs=1e-5)
    # RMSE is reported in the label's units: the standardised RMSE times the label's std
    assert float(scores["rmse"]) * float(ds.y_std[0, 0]) == pytest.approx(
        history["test_rmse"][kept - 1], rel=1e-5)

    # --resume continues from the kept epoch; history.json drops the epochs after it
    assert cli.main(["train", "--resume", "--out", "es", "--epochs", str(kept + 3),
                     "--no-progress", "--no-plot"]) == 0
    resumed = json.loads((tmp_path / "es" / "history.json").read_text())
    assert resumed["epoch"] == list(range(1, kept + 4))
    assert resumed["validation_cost"][:kept] == val[:kept]


def test_val_fraction_zero_trains_every_epoch_and_keeps_the_last(noisy_csv, tmp_path, capsys):
    assert cli.main(["train", "--csv", noisy_csv, "--val-fraction", "0", "--epochs", "7",
                     "--no-progress", "--no-plot", "--out", "all"]) == 0
    out = capsys.readouterr().out
    history = json.loads((tmp_path / "all" / "history.json").read_text())
    assert history["best_epoch"] == history["epoch"] == list(range(1, 8))
    assert "validation_cost" not in history and "| validation |" not in out
    assert "(96 train / 24 test)" in out and "kept the last epoch, 7" in out


@pytest.mark.parametrize("flags,match", [
    (["--val-fraction", "1"], r"argument --val-fraction: expected 0 or a fraction strictly"),
    (["--val-fraction", "x"], r"argument --val-fraction: expected 0 or a fraction strictly"),
    (["--patience", "0"], r"argument --patience: expected an integer >= 1, got 0"),
])
def test_validation_flags_are_checked(flags, match, capsys):
    err = _one_line_error(flags, capsys).err
    assert re.search(match, err), err
