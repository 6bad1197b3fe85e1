"""Compile the selective-scan custom op (``selective_scan_op.cc``) into a cached shared library.

Built through :mod:`mdaf_tf.native` (cached in ``$MDAF_TF_OP_CACHE``, default
``~/.cache/mdaf_tf``, under a name keyed by the source, the compiler command and the
TensorFlow version, so a changed source or a new TensorFlow rebuilds it; built under a file
lock into a temporary renamed into place). It is compiled for the machine that runs it
(``-march=native``), hence at first use rather than at install time.

``python -m mdaf_tf.ops.build`` builds it now and prints the path.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import tensorflow as tf

from mdaf_tf import native

SOURCE = Path(__file__).with_name("selective_scan_op.cc")
OPT_FLAGS = ["-O3", "-ffast-math", "-march=native", "-fPIC", "-shared"]
# -march=native turns on AVX512-FP16 on Sapphire Rapids and later, and the Eigen headers that
# TensorFlow ships do not compile with it under g++ 12 (PacketMathFP16.h); the op has no
# float16 arithmetic, so it loses nothing without it.
_NO_FP16 = "-mno-avx512fp16"


def _compiler() -> str:
    return os.environ.get("CXX", "g++")


@functools.lru_cache(maxsize=4)
def _native_has_fp16(compiler: str) -> bool:
    try:
        out = subprocess.run([compiler, "-march=native", "-Q", "--help=target"],
                             capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.split()[:2] == ["-mavx512fp16", "[enabled]"] for line in out.splitlines())


def opt_flags() -> list[str]:
    """OPT_FLAGS, without AVX512-FP16 where -march=native would turn it on."""
    return OPT_FLAGS + ([_NO_FP16] if _native_has_fp16(_compiler()) else [])


def _flags() -> tuple[list[str], list[str]]:
    return [*opt_flags(), *tf.sysconfig.get_compile_flags()], tf.sysconfig.get_link_flags()


def library_path() -> Path:
    """Where the library for this source, TensorFlow version and compiler flags lives."""
    flags, link = _flags()
    return native.library_path(SOURCE, [_compiler(), *flags, *link], tf.__version__)


def build(verbose: bool = False) -> Path:
    """Compile the op unless the cached library exists; return its path.

    Raises ``RuntimeError`` with the compiler's message when compilation fails.
    """
    flags, link = _flags()
    return native.compile_library(SOURCE, _compiler(), flags, link, key_extra=tf.__version__,
                                  verbose=verbose)


def main() -> int:
    try:
        path = build(verbose=True)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
