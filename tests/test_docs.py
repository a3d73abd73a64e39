"""The API reference builds from the docstrings with warnings as errors (mkdocs --strict)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOT_API = {"cli", "__main__", "__init__"}  # the CLI is documented by `jaxnn --help` and the README


def test_every_public_module_has_an_api_page():
    modules = {p.stem for p in (ROOT / "jaxnn").glob("*.py")
               if not p.stem.startswith("_") and p.stem not in NOT_API}
    pages = {p.stem for p in (ROOT / "docs" / "api").glob("*.md")}
    nav = (ROOT / "mkdocs.yml").read_text()
    missing = sorted(m for m in modules if m not in pages or f"api/{m}.md" not in nav)
    assert not missing, (f"add docs/api/<name>.md ('# jaxnn.<name>' then '::: jaxnn.<name>') and "
                         f"a nav entry in mkdocs.yml for: {missing}")


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    pytest.importorskip("material")
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
         "-d", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the docstrings really made it in, doctests rendered as code blocks
    page = (site / "api" / "backward" / "index.html").read_text()
    assert "value_and_manual_grad" in page and "delta recursion" in page
    assert re.search(r'class="[^"]*highlight', page)
    assert "Quickstart" in (site / "readme" / "index.html").read_text()  # README included
