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
