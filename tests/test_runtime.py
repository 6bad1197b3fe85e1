"""The BFC CPU allocator is requested on import unless the environment already decides."""

import os
import subprocess
import sys

from mdaf_tf.runtime import CPU_ALLOCATOR_ENV

SCRIPT = f"import os, mdaf_tf; print(os.environ.get({CPU_ALLOCATOR_ENV!r}))"


def _value_after_import(env_value):
    env = {k: v for k, v in os.environ.items() if k != CPU_ALLOCATOR_ENV}
    if env_value is not None:
        env[CPU_ALLOCATOR_ENV] = env_value
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def test_import_switches_on_the_bfc_allocator():
    assert _value_after_import(None) == "true"


def test_a_value_in_the_environment_is_kept():
    assert _value_after_import("false") == "false"


def _stderr(script, **env_values):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "MDAF_TF_VERBOSE")}
    out = subprocess.run([sys.executable, "-c", script], env={**env, **env_values},
                         capture_output=True, text=True, check=True)
    return out.stdout.strip(), out.stderr


QUIET = ("from mdaf_tf.runtime import start_tensorflow; start_tensorflow(); import sys; "
         "import tensorflow as tf; print(int(tf.constant(2) + 1)); "
         "print('after', file=sys.stderr)")


def test_tensorflow_starts_without_its_start_up_lines_unless_asked():
    _, plain = _stderr("import tensorflow as tf; print(int(tf.constant(2) + 1))")
    out, quiet = _stderr(QUIET)
    assert out == "3" and quiet == "after\n"  # standard error is back once TF is up
    out, verbose = _stderr(QUIET, MDAF_TF_VERBOSE="1")
    assert out == "3" and verbose.endswith("after\n")
    # On a CPU-only machine TensorFlow prints its CUDA lines; asked for, they are there.
    if plain.strip():
        assert len(verbose.splitlines()) > 1
