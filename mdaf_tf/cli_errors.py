"""One-line errors with exit code 2 for the command-line tools."""

from __future__ import annotations

import sys

from mdaf_tf.config import ConfigError
from mdaf_tf.data import DataError
from mdaf_tf.export import ExportError
from mdaf_tf.training.checkpoint import CheckpointError

USER_ERRORS = (ConfigError, DataError, ExportError, CheckpointError)


def fail(error: Exception, prog: str = "error") -> int:
    message = " ".join(str(error).split())
    print(f"{prog}: {message}", file=sys.stderr)
    return 2
