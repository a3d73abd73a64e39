"""pytest option ``--jaxnn-report PATH``: every gradient-check failure of a session in one file.

Opt-in: ``pytest -p jaxnn.check.pytest_plugin --jaxnn-report PATH``, or
``pytest_plugins = ["jaxnn.check.pytest_plugin"]`` in a conftest.py. (It is
not registered under pytest's ``pytest11`` entry point: that would import
jaxnn, hence jax, at the start of every pytest session of every project
installed beside it.) With the option, each test failed by a
``GradientCheckError`` (``raise_if_failed``, ``assert_vjp``, ``assert_grad``)
adds its test id and its whole located report (the exception's ``report``)
to PATH, which is rewritten at the start of the session; the last line
counts them. Tests that pass are not recorded: their
reports are not seen by pytest. Under pytest-xdist the reports travel with
each test's result to the controller, which alone writes the file.

    pytest -p jaxnn.check.pytest_plugin --jaxnn-report gradcheck-failures.md
"""

from __future__ import annotations

from pathlib import Path

import pytest

KEY = "jaxnn_report"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--jaxnn-report PATH`` to pytest's options.

    Args:
      parser: pytest's option parser.
    """
    parser.getgroup("jaxnn").addoption(
        "--jaxnn-report",
        metavar="PATH",
        default=None,
        help="write the located report of every test failed by a jaxnn GradientCheckError to PATH",
    )


def pytest_configure(config: pytest.Config) -> None:
    """With ``--jaxnn-report``, register the writer (not on an xdist worker: the controller writes).

    Args:
      config: pytest's config.
    """
    path = config.getoption("jaxnn_report", None)
    if path and not hasattr(config, "workerinput"):
        config.pluginmanager.register(ReportWriter(Path(path)), "jaxnn-report-writer")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Attach the failed check's report text to the test's result (it travels to xdist's controller).

    Args:
      item: the test.
      call: the phase's outcome.
    """
    outcome = yield
    if not item.config.getoption("jaxnn_report", None) or call.excinfo is None:
        return
    from jaxnn.check.report import GradientCheckError  # here: pytest starts without importing jax

    err = call.excinfo.value
    if isinstance(err, GradientCheckError):
        text = str(err.report) if err.report is not None else str(err)
        outcome.get_result().user_properties.append((KEY, text))


class ReportWriter:
    """Writes the session's failed-check reports to one file (the session's own plugin object).

    Args:
      path: the file, emptied now.

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "checks.md"
    >>> writer = ReportWriter(path)
    >>> writer.pytest_sessionfinish()  # a session with no failed check
    >>> path.read_text()
    '0 gradient-check failure(s) recorded.\\n'
    """

    def __init__(self, path: Path):
        self.path = path
        self.count = 0
        path.write_text("", encoding="utf-8")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Append each failed check's report (test id, phase, the located report).

        Args:
          report: one phase's result of one test.
        """
        for key, text in report.user_properties:
            if key == KEY:
                with open(self.path, "a", encoding="utf-8") as out:
                    out.write(f"## {report.nodeid} ({report.when})\n\n{text}\n\n")
                self.count += 1

    def pytest_sessionfinish(self) -> None:
        """Close the file with the count of reports written."""
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(f"{self.count} gradient-check failure(s) recorded.\n")
