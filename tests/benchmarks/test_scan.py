"""The scan benchmark's timed functions compute what they claim to time."""

import numpy as np
import pytest
import tensorflow as tf

from benchmarks.scan import make_case_function
from mdaf_tf.ops.fast_scan import fast_scan_available
from tests.ops.test_selective_scan import numpy_scan, random_inputs


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_forward_backward_returns_the_loss_so_the_forward_pass_runs(impl):
    """The fast op's gradient kernel never reads the scan's output: timing only the gradients let
    TensorFlow prune the forward op, so the benchmark returns the loss, sum(scan * weights)."""
    if impl == "fast" and not fast_scan_available():
        pytest.skip("custom op could not be built")
    rng = np.random.default_rng(3)
    inputs = random_inputs(rng, batch=2, length=9, d_inner=8, d_state=4, dtype=np.float32)
    weights = rng.normal(size=(2, 9, 8)).astype(np.float32)
    fn = make_case_function(impl, "fwd+bwd", tf.constant(weights))
    loss, grads = fn(*[tf.constant(x) for x in inputs])
    expected = np.sum(numpy_scan(*[x.astype(np.float64) for x in inputs]) * weights)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
    assert [g.shape for g in grads] == [x.shape for x in inputs]


def test_forward_returns_the_scan():
    rng = np.random.default_rng(4)
    inputs = random_inputs(rng, batch=2, length=5, d_inner=3, d_state=4, dtype=np.float32)
    y = make_case_function("reference", "fwd", None)(*[tf.constant(x) for x in inputs])
    np.testing.assert_allclose(y.numpy(), numpy_scan(*inputs), rtol=1e-5, atol=1e-6)
