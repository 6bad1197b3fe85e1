import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tiny_run import install_fallback_reader  # noqa: E402

install_fallback_reader()
