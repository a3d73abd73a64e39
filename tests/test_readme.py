"""The README is a front door that works as written: its tour (fit -> save -> load in three
lines, a custom_vjp rule checked) and its pytest example are extracted from README.md and run in
a temporary folder, and they fail when what they check is wrong; its links reach files."""

import re
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxnn

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
# the three lines: fit, save the params it returns, load them back from the same folder
THREE_LINES = re.compile(r"^params, history = jaxnn\.fit\(params, net, .*\)\n"
                         r"jaxnn\.checkpoint\.save\((\"[\w.-]+\"), params, net\).*\n"
                         r"(params = jaxnn\.checkpoint\.load\(\1, net\).*)$", re.M)


def python_block(*needles: str) -> str:
    """The one ```python block of README.md that contains every needle."""
    blocks = [b for b in re.findall(r"^```python\n(.*?)^```", README, re.S | re.M)
              if all(n in b for n in needles)]
    assert len(blocks) == 1, f"expected one python block of README.md with {needles}, found {len(blocks)}"
    return blocks[0]


def run(code: str, ns: dict, what: str) -> dict:
    exec(compile(code, f"README.md ({what})", "exec"), ns)
    return ns


def tour_parts() -> tuple[str, str, str, str]:
    """(up to the save line, the load line, what follows it, the folder name)."""
    tour = python_block("jaxnn.checkpoint.save(", "jaxnn.checkpoint.load(")
    match = THREE_LINES.search(tour)
    assert match, "the README's tour must show fit, save and load as three consecutive lines"
    rest = tour[match.end(2):]
    return tour[:match.start(2)], match.group(2), rest, match.group(1).strip('"')


def test_readme_tour_fit_save_load_runs_as_written(tmp_path, monkeypatch):
    before_load, load_line, rest, folder = tour_parts()
    monkeypatch.chdir(tmp_path)
    ns = run(before_load, {"__name__": "readme_tour"}, "tour up to the save")  # asserts the gradients agree
    trained = ns["params"]
    assert ns["history"]["cost"][-1] < ns["history"]["cost"][0]  # fit really trained
    run(load_line, ns, "the load line")
    run(rest, ns, "the custom_vjp check")
    loaded = ns["params"]
    # the params came back from the file, bit for bit, as what fit returned
    assert loaded is not trained and loaded[0]["W"] is not trained[0]["W"]
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(trained), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert (tmp_path / folder / "LATEST").read_text().strip() == "ckpt-000000.npz"
    assert jaxnn.checkpoint.read_metadata(tmp_path / folder)["network"] == ns["net"].describe()
    assert ns["report"].passed


def test_readme_tour_checks_fail_on_wrong_code(tmp_path, monkeypatch):
    before_load, load_line, rest, folder = tour_parts()
    monkeypatch.chdir(tmp_path)
    ns = run(before_load, {"__name__": "readme_tour"}, "tour up to the save")
    # the load line refuses a folder saved for another network, naming both
    other = jaxnn.Network((4, 8, 3), ("relu", "softmax"), "cross_entropy")
    with pytest.raises(ValueError, match=r"saved for Network\(\(4, 16, 3\).*net is Network\(\(4, 8, 3\)"):
        run(load_line, dict(ns, net=other), "the load line, another network")
    # a custom_vjp rule 1% off fails the tour's check
    rule = "jax.nn.sigmoid(x) * g"
    assert rest.count(rule) == 1
    run(rest.replace(rule, "1.01 * " + rule), ns, "the custom_vjp check, a wrong rule")
    assert not ns["report"].passed


def test_readme_pytest_example_passes_and_catches_a_wrong_derivative():
    example = python_block("raise_if_failed()", "def test_")
    tests = lambda ns: [f for name, f in ns.items() if name.startswith("test_")]  # noqa: E731
    ns = run(example, {"__name__": "test_my_model"}, "pytest example")
    assert len(tests(ns)) == 2
    for test in tests(ns):
        test()  # passes
    derivative = "jax.nn.sigmoid(Z) * (1 + Z * (1 - jax.nn.sigmoid(Z)))"
    assert example.count(derivative) == 1
    wrong = run(example.replace(derivative, "1.001 * " + derivative), {}, "pytest example, wrong g'")
    for test in tests(wrong):
        with pytest.raises(AssertionError, match="FAIL"):  # GradientCheckError, with the table
            test()


def test_readme_assert_vjp_example_passes_and_its_search_finds_a_branch_bug():
    example = python_block("jaxnn.assert_vjp(", "def test_")
    ns = run(example, {"__name__": "test_my_ops"}, "assert_vjp example")
    ns["test_softsign_rule"]()  # passes: returns the report, raises nothing
    rule = "g / (1 + jnp.abs(x)) ** 2"
    assert example.count(rule) == 1
    # the |x| > 20 branch as the asymptote 1 / x**2: no N(0, 1) point reaches it, the search does
    branch = "jnp.where(jnp.abs(x) > 20, g / x**2, g / (1 + jnp.abs(x)) ** 2)"
    wrong = run(example.replace(rule, branch), {"__name__": "test_my_ops"}, "a branch bug")
    located = r"FAILED at primals\[0\]: .*worst entry primals\[0\]\[\d\].*search: worst of 64 points"
    with pytest.raises(jaxnn.GradientCheckError, match=located):
        wrong["test_softsign_rule"]()


def test_readme_is_a_front_door_whose_links_reach_files():
    lines = README.splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines: move details into docs/ pages"
    assert "## Quickstart" in lines
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)\s]*)?\)", README)
    local = [t for t in targets if not t.startswith(("http://", "https://", "mailto:"))]
    assert len(local) >= 20
    missing = sorted({t for t in local if not (ROOT / t).exists()})
    assert not missing, f"README.md links to files that do not exist: {missing}"
    # every guide page the README sends a reader to is in the site's nav
    nav = (ROOT / "mkdocs.yml").read_text()
    guides = sorted({t.removeprefix("docs/") for t in local if re.fullmatch(r"docs/[a-z]+\.md", t)})
    assert {"checking.md", "training.md", "devices.md", "benchmarks.md"} <= set(guides)
    assert all(f": {g}" in nav for g in guides), guides
