import keras
import numpy as np
import pytest
from layer_roundtrip import assert_config_round_trip, assert_keras_round_trip

from mdaf_tf.layers.target_history_match import TargetHistoryMatch, decay_kernels

B, T, F = 4, 6, 2


def inputs(rng):
    """Ids in 0..5 (so matches, PAD 0 and OOV 1 all occur) and left-padded masks of 3, 6,
    0 and 1 valid positions; padded positions hold PAD."""
    valid = np.arange(T)[None, :] >= np.array([3, 0, T, 5])[:, None]
    history = np.where(valid[..., None], rng.integers(0, 6, (B, T, F)), 0)
    target = rng.integers(0, 6, (B, F))
    target[0] = history[0, -1]  # the latest behaviour is the target: a sure match
    return target, history, valid


def reference(kernel, target, history, valid):
    """Plain-Python sum over positions of the kernel where the id matches a real target id."""
    out = np.zeros((B, F, kernel.shape[-1]))
    for b in range(B):
        for f in range(F):
            if target[b, f] < 2:
                continue
            for t in range(T):
                if valid[b, t] and history[b, t, f] == target[b, f]:
                    out[b, f] += kernel[t, f]
    return out.reshape(B, -1)


def test_decay_kernels_are_normalised_and_weight_the_latest_most():
    w = decay_kernels(5, (0.5, 1.0))
    np.testing.assert_allclose(w.sum(axis=0), 1.0, rtol=1e-6)
    np.testing.assert_allclose(w[:, 0], np.array([1, 2, 4, 8, 16]) / 31, rtol=1e-6)
    np.testing.assert_allclose(w[:, 1], 0.2, rtol=1e-6)


def test_matches_plain_python_reference_with_initial_and_trained_kernels():
    rng = np.random.default_rng(0)
    target, history, valid = inputs(rng)
    layer = TargetHistoryMatch(decays=(0.5, 0.9, 1.0), dtype="float64")
    out = np.asarray(layer(target, history, padding_mask=valid))
    assert out.shape == (B, F * 3)
    kernel = np.asarray(layer.kernel)
    np.testing.assert_allclose(kernel[:, 1], decay_kernels(T, (0.5, 0.9, 1.0)), rtol=1e-6)
    np.testing.assert_allclose(out, reference(kernel, target, history, valid), atol=1e-12)
    assert out[0, 0] > 0 and out[0, 3] > 0  # the sure match counts in both fields
    layer.kernel.assign(rng.normal(size=kernel.shape))  # as after training
    np.testing.assert_allclose(np.asarray(layer(target, history, padding_mask=valid)),
                               reference(np.asarray(layer.kernel), target, history, valid),
                               atol=1e-12)


def test_pad_and_oov_targets_and_padded_positions_never_match():
    layer = TargetHistoryMatch(decays=(1.0,))
    history = np.array([[[1, 0], [1, 0], [7, 3]]])
    out = np.asarray(layer(np.array([[1, 0]]), history, padding_mask=np.ones((1, 3), bool)))
    np.testing.assert_array_equal(out, 0.0)  # OOV and PAD targets
    masked = np.array([[True, False, True]])
    out = np.asarray(layer(np.array([[7, 3]]), np.array([[[7, 3], [7, 3], [2, 3]]]),
                           padding_mask=masked))
    np.testing.assert_allclose(out, [[1 / 3, 2 / 3]], rtol=1e-6)


@pytest.mark.parametrize("decays", [(), (0.0,), (1.5,)])
def test_rejects_decays_outside_zero_one(decays):
    with pytest.raises(ValueError, match="decays"):
        TargetHistoryMatch(decays=decays)


def test_rejects_field_count_mismatch():
    with pytest.raises(ValueError, match="target fields"):
        TargetHistoryMatch()(np.zeros((2, 3), "int64"), np.zeros((2, 4, 2), "int64"))


def test_config_and_keras_round_trip(tmp_path):
    layer = TargetHistoryMatch(decays=(0.7, 1.0))
    assert assert_config_round_trip(layer).decays == (0.7, 1.0)
    target_in = keras.Input((F,), dtype="int64")
    history_in = keras.Input((T, F), dtype="int64")
    mask_in = keras.Input((T,), dtype="bool")
    model = keras.Model([target_in, history_in, mask_in],
                        layer(target_in, history_in, padding_mask=mask_in))
    rng = np.random.default_rng(1)
    target, history, valid = inputs(rng)
    layer.kernel.assign(rng.normal(size=layer.kernel.shape))
    assert_keras_round_trip(model, [target, history, valid], tmp_path)
