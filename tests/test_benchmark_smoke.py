"""scripts/benchmark.py runs: a --quick run of one tiny section prints its table (no timing asserted)."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"


def run(*args, timeout=120):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout)


def test_quick_shuffle_section_prints_and_writes_its_table(tmp_path):
    out = tmp_path / "bench.md"
    proc = run("--quick", "--sections", "shuffle", "--repeats", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "- backend: " in proc.stdout and "- jax / jaxlib: " in proc.stdout
    assert "### 4. One epoch's order" in proc.stdout
    rows = [ln for ln in proc.stdout.splitlines() if ln.startswith("| 12,800 |")]
    assert len(rows) == 1 and rows[0].count("|") == 7, proc.stdout
    written = out.read_text()
    assert "### 4. One epoch's order" in written and rows[0] in written
    assert "### 2." not in proc.stdout  # only the section asked for ran

