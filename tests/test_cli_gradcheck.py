"""``jaxnn gradcheck``: flags, output table, exit status (jaxnn.cli.gradcheck)."""

import argparse
import importlib.util

import jax
import pytest

import jaxnn
from jaxnn.cli import gradcheck as cli_gradcheck

jax.config.update("jax_numpy_rank_promotion", "raise")


def parse(*argv):
    parser = argparse.ArgumentParser(prog="jaxnn gradcheck")
    cli_gradcheck.add_arguments(parser)
    return parser.parse_args(argv)


def table_rows(out):
    return [
        l
        for l in out.splitlines()
        if l.startswith("| ") and not l.startswith("| case") and not l.startswith("| ---")
    ]


def test_help_text():
    assert isinstance(cli_gradcheck.HELP, str) and "finite differences" in cli_gradcheck.HELP


def test_one_network(capsys):
    # the network of test_check's jit test: its compiled programs are reused
    args = parse("--layer-sizes", "4,4", "--activations", "softmax", "--loss", "cross_entropy")
    assert cli_gradcheck.run(args) == 0
    out = capsys.readouterr().out
    rows = table_rows(out.split("\n\n")[0])
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[0] == "4-4 softmax cross_entropy"
    assert float(cells[1]) <= 1e-5 and float(cells[2]) <= 1e-6 and float(cells[3]) <= 1e-10
    assert cells[4] == "pass"
    assert "PASSED" in out  # the full report follows the row


def test_float64_and_method_subset(capsys):
    args = parse(
        "--layer-sizes",
        "4,4",
        "--activations",
        "sigmoid",
        "--loss",
        "bce",
        "--dtype",
        "float64",
        "--methods",
        "autodiff,jvp",
        "--batch-size",
        "3",
    )
    assert cli_gradcheck.run(args) == 0
    cells = [c.strip() for c in table_rows(capsys.readouterr().out)[0].strip("|").split("|")]
    assert float(cells[1]) <= 1e-10 and cells[2] == "-"


def test_sweep_prints_a_row_per_case_and_exits_0(capsys):
    args = parse("--sweep", "--depths", "1,2")
    assert cli_gradcheck.run(args) == 0
    out = capsys.readouterr().out
    rows = table_rows(out)
    assert len(rows) == 8 + 6 * 8
    assert all("| pass " in r for r in rows)
    assert "56 cases, 56 passed, 0 failed" in out


def test_no_network_flags_means_the_sweep(monkeypatch, capsys):
    seen = {}

    def fake_sweep(**kwargs):
        seen.update(kwargs)
        return []

    monkeypatch.setattr(cli_gradcheck, "run_sweep", fake_sweep)
    assert cli_gradcheck.run(parse()) == 0
    assert seen["depths"] == (1, 2, 3, 4) and seen["dtype"] == "float32"
    assert "152 cases" in capsys.readouterr().out


def test_a_failing_case_exits_1(monkeypatch, capsys):
    import jaxnn.check as check

    real = check.check_gradients

    def off_by_1_percent(params, cache, Y, net):  # a wrong backward pass, so the case fails
        return jax.tree.map(lambda g: 1.01 * g, jaxnn.backward(params, cache, Y, net))

    monkeypatch.setattr(
        cli_gradcheck, "check_gradients", lambda *a, **k: real(*a, **dict(k, backward=off_by_1_percent))
    )
    args = parse("--layer-sizes", "4,4", "--activations", "tanh", "--loss", "mse")
    assert cli_gradcheck.run(args) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "FAILED" in out


@pytest.mark.parametrize(
    "argv, match",
    [
        (
            ["--layer-sizes", "4,x,3", "--activations", "relu,softmax"],
            "--layer-sizes must be comma-separated",
        ),
        (["--layer-sizes", "4,3"], "needs both --layer-sizes and --activations"),
        (["--layer-sizes", "4,3", "--activations", "relu,relu"], "len\\(activations\\) = 2"),
        (["--layer-sizes", "4,3", "--activations", "swish"], "Unknown activation 'swish'"),
        (
            ["--layer-sizes", "4,3", "--activations", "relu", "--loss", "bce"],
            "does not fit the output activation",
        ),
        (["--sweep", "--loss", "mse"], "--sweep runs the built-in cases"),
        (["--methods", "autodiff,magic"], "--methods: unknown magic"),
        (["--eps", "0"], "--eps must be a finite number > 0"),
        (["--eps", "nan"], "--eps must be a finite number > 0"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--depths", "0,2"], "--depths must be comma-separated positive integers"),
    ],
)
def test_bad_flags_raise_value_error(argv, match):
    with pytest.raises(ValueError, match=match):
        cli_gradcheck.run(parse(*argv))


@pytest.mark.skipif(
    importlib.util.find_spec("jaxnn.cli.train") is None, reason="jaxnn.cli.train not written yet"
)
def test_dispatcher_turns_value_errors_into_one_line(capsys):
    from jaxnn import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["gradcheck", "--eps", "-1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["jaxnn gradcheck: error: --eps must be a finite number > 0, got -1.0."]
    assert cli.main(["gradcheck", "--layer-sizes", "4,4", "--activations", "identity"]) == 0
