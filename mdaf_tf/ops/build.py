"""Compile the selective-scan custom op (``selective_scan_op.cc``) into a cached shared library.

The library lives in ``$MDAF_TF_OP_CACHE`` (default ``~/.cache/mdaf_tf``) under a name keyed by
the source's hash, the TensorFlow version and the compiler flags, so a changed source or a new
TensorFlow rebuilds it. Builds run under a file lock and write to a temporary file renamed into
place, so concurrent processes never load a half-written library. It is compiled for the machine
that runs it (``-march=native``), hence at first use rather than at install time.

``python -m mdaf_tf.ops.build`` builds it now and prints the path.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import tensorflow as tf

from mdaf_tf.files import atomic_path

SOURCE = Path(__file__).with_name("selective_scan_op.cc")
OPT_FLAGS = ["-O3", "-ffast-math", "-march=native", "-fPIC", "-shared"]
# -march=native turns on AVX512-FP16 on Sapphire Rapids and later, and the Eigen headers that
# TensorFlow ships do not compile with it under g++ 12 (PacketMathFP16.h); the op has no
# float16 arithmetic, so it loses nothing without it.
_NO_FP16 = "-mno-avx512fp16"


def cache_dir() -> Path:
    return Path(os.environ.get("MDAF_TF_OP_CACHE", Path.home() / ".cache" / "mdaf_tf"))


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


def library_path() -> Path:
    """Where the library for this source, TensorFlow version and compiler flags lives."""
    key = hashlib.sha256()
    key.update(SOURCE.read_bytes())
    key.update(tf.__version__.encode())
    key.update(" ".join([_compiler(), *opt_flags(), *tf.sysconfig.get_compile_flags()]).encode())
    return cache_dir() / f"selective_scan_op-{key.hexdigest()[:16]}.so"


def build(verbose: bool = False) -> Path:
    """Compile the op unless the cached library exists; return its path.

    Raises ``RuntimeError`` with the compiler's message when compilation fails.
    """
    target = library_path()
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():  # built by another process while we waited
            return target
        # The compiler writes a temporary sibling, renamed over the target only when it
        # succeeds (and removed when it fails): a concurrent loader never sees half a library.
        with atomic_path(target, suffix=".tmp") as tmp:
            cmd = [
                _compiler(),
                *opt_flags(),
                str(SOURCE),
                "-o",
                str(tmp),
                *tf.sysconfig.get_compile_flags(),
                *tf.sysconfig.get_link_flags(),
            ]
            if verbose:
                print(" ".join(cmd), file=sys.stderr)
            try:
                result = subprocess.run(cmd, capture_output=True, text=True)
            except OSError as err:
                raise RuntimeError(f"cannot run the C++ compiler {cmd[0]!r}: {err}") from err
            if result.returncode != 0:
                errors = [ln for ln in result.stderr.splitlines() if "error" in ln]
                raise RuntimeError(f"compiling {SOURCE.name} failed: "
                                   f"{(errors or [result.stderr.strip()[-300:]])[0]}\n"
                                   f"{result.stderr[-4000:]}")
    return target


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
