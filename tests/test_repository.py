"""The repository explains itself: one repository URL used everywhere, and no reference to a
document outside the repository."""

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def repository_url() -> str:
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    url = urls["Repository"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url), url
    assert urls["Homepage"] == url and urls["Documentation"].startswith(url), urls
    return url


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def test_readme_installs_from_the_repository():
    url = repository_url()
    readme = (ROOT / "README.md").read_text()
    assert f'pip install "jaxnn @ git+{url}"' in readme
    assert "not from the package\nindex" in readme or "not from the package index" in readme
    # the Quickstart commands of a clone stay as they are
    assert 'pip install . && jaxnn train' in readme and 'pip install ".[test]" && pytest' in readme
    others = {u for u in re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", readme) if u != url}
    assert not others, f"README.md names another repository URL than pyproject's {url}: {others}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_installs_from_the_repository_and_has_a_colab_badge(path):
    url = repository_url()
    owner_repo = url.removeprefix("https://github.com/")
    nb = cells(path)
    badge = source(next(c for c in nb if c["cell_type"] == "markdown"))
    colab = f"https://colab.research.google.com/github/{owner_repo}/blob/main/notebooks/{path.name}"
    assert f"]({colab})" in badge and "colab-badge.svg" in badge, (
        f"{path.name}: the first markdown cell must be the Open in Colab badge linking {colab}")
    setup = source(next(c for c in nb if c["cell_type"] == "code"))
    assert f'JAXNN_REPO = "{url}"' in setup, f"{path.name}: the first code cell must install from {url}"
    assert 'f"jaxnn @ git+{JAXNN_REPO}"' in setup
    # the runtime's jax/jaxlib are pinned by a constraint, so pip cannot replace them
    assert '"--constraint", pins' in setup and "jax=={jax.__version__}" in setup
    assert "EDIT ME" not in setup
    for cell in nb:
        for other in re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", source(cell)):
            assert other == url, f"{path.name} names another repository URL: {other}"


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True,
                             check=True, timeout=30).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: no list of tracked files")
    return [ROOT / name for name in out.split("\0") if name]


# written in pieces, so this file does not match itself
OUTSIDE = [re.compile(p, re.I) for p in (r"seed" + r" §", r"\.\./" + r"shared", r"seed/" + r"neural-network")]
OUTSIDE.append(re.compile(r"CONVENTIONS" + r" §"))  # the team's notes; "conventions §3" is the docs page


def test_nothing_refers_to_a_document_outside_the_repository():
    hits = []
    for path in tracked_files():
        if not path.is_file():
            continue  # deleted in the working tree
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        for n, line in enumerate(text.splitlines(), 1):
            if any(p.search(line) for p in OUTSIDE):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:120]}")
    assert not hits, ("cite docs/formulas.md as 'formulas §N' and docs/conventions.md as "
                      "'conventions §N' instead of documents outside the repository:\n  "
                      + "\n  ".join(hits))
