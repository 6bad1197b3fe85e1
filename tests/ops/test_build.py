"""Building and caching the custom op, and the fallback when it cannot be built."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mdaf_tf.ops import build

REPO = Path(__file__).resolve().parents[2]


def run_python(code, **env):
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO), **env}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=full_env
    )


def test_library_name_follows_the_source_and_the_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MDAF_TF_OP_CACHE", str(tmp_path / "cache"))
    original = build.library_path()
    assert original.parent == tmp_path / "cache"
    changed = tmp_path / "selective_scan_op.cc"
    changed.write_text(build.SOURCE.read_text() + "\n// changed\n")
    monkeypatch.setattr(build, "SOURCE", changed)
    assert build.library_path() != original


def test_cached_library_is_reused_without_recompiling(tmp_path, monkeypatch):
    monkeypatch.setenv("MDAF_TF_OP_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "/nonexistent/compiler")  # would fail if it compiled
    target = build.library_path()
    target.write_bytes(b"cached")
    assert build.build() == target
    assert target.read_bytes() == b"cached"


def test_failed_compile_raises_and_leaves_no_partial_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MDAF_TF_OP_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "false")
    with pytest.raises(RuntimeError, match="compiling selective_scan_op.cc failed"):
        build.build()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith((".so", ".tmp"))]


def test_missing_compiler_falls_back_to_chunked_with_one_warning(tmp_path):
    done = run_python(
        """
        import warnings
        import numpy as np
        from mdaf_tf.ops.selective_scan import resolve_impl, selective_scan
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            impls = [resolve_impl("auto") for _ in range(3)]
            y = selective_scan(np.ones((1, 3, 2)), np.ones((1, 3, 2)) * 0.1, -np.ones((2, 4)),
                               np.ones((1, 3, 4)), np.ones((1, 3, 4)), np.ones(2))
        print(impls, y.shape, len([w for w in caught if "fast selective scan" in str(w.message)]))
        """,
        MDAF_TF_OP_CACHE=str(tmp_path),
        CXX="/nonexistent/compiler",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "['chunked', 'chunked', 'chunked'] (1, 3, 2) 1"


def test_build_command_exits_2_with_one_error_line_when_compiling_fails(tmp_path):
    done = run_python(
        "import runpy; runpy.run_module('mdaf_tf.ops.build', run_name='__main__')",
        MDAF_TF_OP_CACHE=str(tmp_path),
        CXX="/nonexistent/compiler",
    )
    assert done.returncode == 2
    assert "error: cannot run the compiler '/nonexistent/compiler'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("enabled", [True, False])
def test_avx512_fp16_is_turned_off_only_where_native_turns_it_on(tmp_path, monkeypatch,
                                                                  enabled):
    # g++ 12 cannot compile TensorFlow's Eigen FP16 headers with -mavx512fp16
    compiler = tmp_path / f"fake-cxx-{enabled}"
    state = "[enabled]" if enabled else "[disabled]"
    compiler.write_text(f"#!/bin/sh\necho '  -mavx512fp16   {state}'\n")
    compiler.chmod(0o755)
    monkeypatch.setenv("CXX", str(compiler))
    flags = build.opt_flags()
    assert flags[:len(build.OPT_FLAGS)] == build.OPT_FLAGS
    assert ("-mno-avx512fp16" in flags) == enabled
