"""Native builds: one C or C++ source compiled into a shared library, cached and shared.

Used by the selective-scan custom op (:mod:`mdaf_tf.ops.build`) and the pipelines' record
encoder (:mod:`pipelines.native`). The library lives in ``$MDAF_TF_OP_CACHE`` (default
``~/.cache/mdaf_tf``) under a name keyed by the source's bytes, the whole compiler command
and anything else the caller names (a TensorFlow version), so a changed source, compiler or
flag rebuilds it. Builds run under a file lock and write a temporary sibling renamed into
place (:func:`mdaf_tf.files.atomic_path`): concurrent processes never load half a library
and never compile the same one twice. Standard library only.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from mdaf_tf.files import atomic_path


def cache_dir() -> Path:
    return Path(os.environ.get("MDAF_TF_OP_CACHE", Path.home() / ".cache" / "mdaf_tf"))


def library_path(source: Path, command: Sequence[str], key_extra: str = "") -> Path:
    """Where ``source`` compiled by ``command`` (the compiler and every flag) is cached."""
    key = hashlib.sha256(Path(source).read_bytes())
    key.update(" ".join(command).encode())
    key.update(key_extra.encode())
    return cache_dir() / f"{Path(source).stem}-{key.hexdigest()[:16]}.so"


def compile_library(source: Path, compiler: str, flags: Sequence[str],
                    link_flags: Sequence[str] = (), *, key_extra: str = "",
                    verbose: bool = False) -> Path:
    """``compiler FLAGS SOURCE -o LIBRARY LINK_FLAGS`` unless the library is cached; its path.

    A RuntimeError names the source and the compiler's first error line (with the end of its
    output) when compilation fails or the compiler cannot be run."""
    source = Path(source)
    target = library_path(source, [compiler, *flags, *link_flags], key_extra)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():  # built by another process while this one waited
            return target
        with atomic_path(target, suffix=".tmp") as tmp:
            cmd = [compiler, *flags, str(source), "-o", str(tmp), *link_flags]
            if verbose:
                print(" ".join(cmd), file=sys.stderr)
            try:
                result = subprocess.run(cmd, capture_output=True, text=True)
            except OSError as err:
                raise RuntimeError(f"cannot run the compiler {compiler!r}: {err}") from err
            if result.returncode != 0:
                errors = [ln for ln in result.stderr.splitlines() if "error" in ln]
                raise RuntimeError(f"compiling {source.name} failed: "
                                   f"{(errors or [result.stderr.strip()[-300:]])[0]}\n"
                                   f"{result.stderr[-4000:]}")
    return target
