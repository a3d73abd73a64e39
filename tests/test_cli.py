"""The ``jaxnn`` command itself (jaxnn.cli): --help of every command, --version, one-line
errors, the compilation cache setting, and the real entry point in one subprocess."""

import re
import subprocess
import sys

import pytest

import jaxnn
from jaxnn import cli
from jaxnn.cli import train as cli_train

COMMANDS = sorted(cli.build_parser()._subparsers._group_actions[0].choices)


@pytest.mark.parametrize("argv", [[], *([c] for c in COMMANDS)], ids=["jaxnn", *COMMANDS])
def test_help_of_every_command(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([*argv, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: jaxnn {' '.join(argv)}".rstrip())
    assert len(out.splitlines()) > 8


def test_help_names_the_cache_and_the_recipes(capsys):
    for argv in ([], ["train"]):
        with pytest.raises(SystemExit):
            cli.main([*argv, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "$JAXNN_CACHE_DIR" in out and "$JAX_COMPILATION_CACHE_DIR" in out
        assert "~/.cache/jaxnn/xla" in out
    assert "iris: --layers 16" in out and "diabetes:" in out  # train's epilog


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"jaxnn {jaxnn.__version__}\n"


@pytest.mark.parametrize("argv,match", [
    ([], r"^jaxnn: error: the following arguments are required: \{train,gradcheck\}"),
    (["fit"], r"^jaxnn: error: argument \{train,gradcheck\}: invalid choice: 'fit'"),
    (["train", "--epochs"], r"^jaxnn train: error: argument --epochs: expected one argument"),
    (["train", "--bogus"], r"^jaxnn: error: unrecognized arguments: --bogus"),
])
def test_parse_errors_are_one_line(argv, match, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(match, err), err


@pytest.mark.parametrize("environ,expected", [
    ({}, "~/.cache/jaxnn/xla"),
    ({"JAXNN_CACHE_DIR": "/tmp/c"}, "/tmp/c"),
    ({"JAXNN_CACHE_DIR": ""}, None),
    ({"JAX_COMPILATION_CACHE_DIR": "/tmp/jax"}, None),  # JAX's own setting stands
    ({"JAX_COMPILATION_CACHE_DIR": "/tmp/jax", "JAXNN_CACHE_DIR": "/tmp/c"}, "/tmp/c"),
])
def test_cache_dir(environ, expected):
    got = cli_train.cache_dir(environ)
    assert got == (expected if expected is None or not expected.startswith("~")
                   else cli_train.os.path.expanduser(expected))


def test_entry_point_imports_sklearn_and_matplotlib_only_when_needed(tmp_path):
    """`python -m jaxnn train --csv ... --no-plot`: no traceback, no matplotlib, and of
    scikit-learn only the linear models of the baseline printed beside the result (worth
    its import: the user sees the comparison), not its data sets."""
    rows = ["a,b,label"] + [f"{i % 7},{(3 * i) % 5},{int(i % 7 > 3)}" for i in range(40)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "jaxnn", "train", "--csv", "t.csv",
         "--layers", "", "--epochs", "2", "--no-plot", "--no-progress", "--out", "o"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**cli_train.os.environ, "JAXNN_CACHE_DIR": ""})
    assert run.returncode == 0, run.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines()
                if line.startswith("import time:")}
    assert "jaxnn.cli.train" in imported and "Traceback" not in run.stderr
    assert not {m for m in imported if m.split(".")[0] == "matplotlib"}
    assert "sklearn.linear_model" in imported and "sklearn.datasets" not in imported
    assert "| test |" in run.stdout and "(linear baseline " in run.stdout


def test_ctrl_c_is_one_line(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_train, "run", interrupted)
    with pytest.raises(SystemExit) as e:
        cli.main(["train"])
    assert e.value.code == 130 and capsys.readouterr().err == "jaxnn train: interrupted (Ctrl-C)\n"


def test_jaxnn_traceback_shows_the_error_behind_the_line(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXNN_TRACEBACK", "1")
    monkeypatch.setenv("JAXNN_CACHE_DIR", "")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="^--resume: .*nothing"):
        cli.main(["train", "--resume", "--out", "nothing"])
