"""Fixtures shared by the pipeline tests."""

from __future__ import annotations

import pytest

from pipelines.errors import run_cli


@pytest.fixture
def cli(capsys):
    """Run ``module.main(argv)`` like the command line; returns (exit code, stderr)."""

    def run(module, *argv):
        code = 0
        try:
            run_cli(module.main, [str(a) for a in argv])
        except SystemExit as e:
            code = e.code
        return code, capsys.readouterr().err

    return run


@pytest.fixture(autouse=True)
def no_progress_lines(monkeypatch):
    """A run's stderr holds its summary and errors only, however slow the machine: the tests
    that check progress lines set the interval themselves."""
    from pipelines import progress

    monkeypatch.setattr(progress, "REPORT_INTERVAL_S", 3600.0)
