"""``python -m mdaf_tf.train`` with the tiny stand-in model, for the fault tests.

    python tests/fault_driver.py [train flags...]

Runs ``mdaf_tf.train.main`` unchanged (data checks, checkpoints, Ctrl-C handling, export,
messages and exit codes) with ``tests/training/tiny_run.tiny_model`` in place of the
registry's models so that a run takes seconds. With ``FAULT_DRIVER_NO_EXPORT_CHECK=1`` the
fresh-process export check is left out (the tests compare the exports themselves).
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS.parent))
sys.path.insert(0, str(TESTS / "training"))

from tiny_run import tiny_model  # noqa: E402

from mdaf_tf import export, train  # noqa: E402
from mdaf_tf.training import runner  # noqa: E402

runner.default_build_model = tiny_model
if os.environ.get("FAULT_DRIVER_NO_EXPORT_CHECK") == "1":
    export.verify_export = lambda *a, **k: {
        "examples": 0,
        "serving_default": {"probability": 0.0, "finite": True},
        "predict_examples": {"probability": 0.0, "finite": True},
    }

if __name__ == "__main__":
    sys.exit(train.main(sys.argv[1:]))
