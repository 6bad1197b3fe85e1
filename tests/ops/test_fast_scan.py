"""The C++ op's own contract: shape checks and float32 accuracy at a realistic width."""

import numpy as np
import pytest
import tensorflow as tf

from mdaf_tf.ops.fast_scan import fast_scan, fast_scan_available

pytestmark = pytest.mark.skipif(not fast_scan_available(), reason="custom op could not be built")


def test_mismatched_shapes_are_rejected_with_a_clear_error():
    u = tf.ones((2, 5, 3))
    with pytest.raises(tf.errors.InvalidArgumentError, match="B/C must be"):
        fast_scan(u, u, -tf.ones((3, 4)), tf.ones((2, 5, 4)), tf.ones((2, 4, 4)), tf.ones(3))
    with pytest.raises(tf.errors.InvalidArgumentError, match="A/D first dim"):
        fast_scan(u, u, -tf.ones((4, 4)), tf.ones((2, 5, 4)), tf.ones((2, 5, 4)), tf.ones(3))


def test_float32_fast_exp_keeps_outputs_within_1e5_of_float64():
    """The op's polynomial exp (float32 path) against its float64 path (std::exp)."""
    rng = np.random.default_rng(0)
    shapes = [(4, 60, 64), (4, 60, 64), (64, 16), (4, 60, 16), (4, 60, 16), (64,)]
    inputs = [rng.normal(size=s) for s in shapes]
    inputs[1] = rng.uniform(1e-3, 2.0, size=shapes[1])  # delta: includes strong decay
    inputs[2] = -np.tile(np.arange(1.0, 17.0), (64, 1))
    y32 = fast_scan(*[tf.constant(x, tf.float32) for x in inputs]).numpy()
    y64 = fast_scan(*[tf.constant(x, tf.float64) for x in inputs]).numpy()
    assert np.max(np.abs(y32 - y64)) <= 1e-5 * np.max(np.abs(y64))
