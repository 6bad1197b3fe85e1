"""The kernel benchmark times the op's forward and backward kernels, and runs end to end."""

import json
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import scan_kernels
from mdaf_tf.ops.fast_scan import fast_scan_available
from tests.ops.test_selective_scan import numpy_scan

pytestmark = pytest.mark.skipif(not fast_scan_available(), reason="custom op could not be built")


def test_timed_functions_are_the_scan_and_its_gradient_kernel():
    inputs, dy = scan_kernels.make_inputs(rows=2, length=6, d_inner=9, d_state=4, seed=1)
    forward, backward = scan_kernels.kernel_functions()
    arrays = [x.numpy().astype(np.float64) for x in inputs]
    np.testing.assert_allclose(forward(*inputs).numpy(), numpy_scan(*arrays), rtol=1e-5,
                               atol=1e-6)
    grads = backward(*inputs, dy)
    assert [g.shape for g in grads] == [x.shape for x in inputs]
    # y = ... + D u, so dL/dD = sum over rows and steps of dy * u
    np.testing.assert_allclose(grads[5].numpy(), np.sum(dy.numpy() * arrays[0], axis=(0, 1)),
                               rtol=1e-5)


def test_command_writes_per_1024_row_times(tmp_path):
    out = tmp_path / "kernels.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/scan_kernels.py", "--rows", "4", "--length", "5",
         "--d-inner", "8", "--d-state", "4", "--repeats", "1", "--output", str(out)],
        capture_output=True, text=True, cwd=scan_kernels.common.REPO)
    assert done.returncode == 0, done.stderr[-500:]
    result = json.loads(out.read_text())
    assert result["threads"] == 1 and result["rows"] == 4
    assert result["forward_ms_per_1024_rows"] > 0 and result["backward_ms_per_1024_rows"] > 0
