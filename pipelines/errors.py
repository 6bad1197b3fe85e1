"""User-facing pipeline errors and the CLI wrapper that turns them into exit code 2."""

from __future__ import annotations

import sys


class PipelineError(Exception):
    """A problem with the user's input or output path, reported as one line."""


def run_cli(main, argv=None) -> int:
    """Run ``main(argv)``; a PipelineError or OSError prints one line and exits with 2."""
    try:
        main(argv)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        print(f"error: {e.strerror}: {e.filename}", file=sys.stderr)
        raise SystemExit(2) from None
    return 0
