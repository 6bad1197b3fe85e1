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
