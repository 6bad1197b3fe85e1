import keras
import numpy as np
import pytest
from din_reference import randomize_dice, sigmoid, target_attention
from layer_roundtrip import assert_config_round_trip, assert_keras_round_trip

from mdaf_tf.layers.target_attention import TargetAttention

B, T, D = 3, 6, 4


def inputs(rng):
    """Query, keys and a left-padded mask: 2 valid positions, all 6, and none."""
    query, keys = rng.normal(size=(B, D)), rng.normal(size=(B, T, D))
    mask = np.arange(T)[None, :] >= np.array([4, 0, T])[:, None]
    return query, keys, mask


def built(rng, **kwargs):
    layer = TargetAttention(hidden_units=(5, 3), dtype="float64", **kwargs)
    query, keys, mask = inputs(rng)
    layer(query, keys, padding_mask=mask)
    for dice in layer.dice_layers:
        randomize_dice(dice, rng)
    return layer


# float64 on both sides: only summation order differs (~1e-15 relative), so 1e-10 is loose.
@pytest.mark.parametrize("activation,use_softmax", [("dice", False), ("dice", True),
                                                    ("sigmoid", False)])
def test_matches_numpy_reference(activation, use_softmax):
    rng = np.random.default_rng(0)
    layer = built(rng, activation=activation, use_softmax=use_softmax)
    query, keys, mask = inputs(rng)
    out = np.asarray(layer(query, keys, padding_mask=mask, training=False))
    assert out.shape == (B, D)
    expected = target_attention(layer, query, keys, mask, activation=sigmoid)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(out[2], 0.0)  # no valid position: nothing pooled


def test_training_mode_dice_uses_the_valid_positions_moments():
    rng = np.random.default_rng(1)
    layer = built(rng)
    query, keys, mask = inputs(rng)
    out = np.asarray(layer(query, keys, padding_mask=mask, training=True))
    expected = target_attention(layer, query, keys, mask, training=True)
    # Keras's masked moments divide by (count + 1e-7): ~1e-8 relative here.
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-9)


def test_weights_are_unnormalised_by_default():
    layer = TargetAttention()
    assert layer.hidden_units == (80, 40) and layer.use_dice and not layer.use_softmax
    rng = np.random.default_rng(2)
    layer = built(rng)
    query, keys, _ = inputs(rng)
    same = np.broadcast_to(keys[:, :1], keys.shape)  # one key repeated: out = (sum_t a_t) k
    out = np.asarray(layer(query, same))
    ratio = out / same[:, 0]
    np.testing.assert_allclose(ratio, ratio[:, :1] * np.ones_like(ratio), rtol=1e-9)
    assert not np.allclose(ratio[:, 0], 1.0)  # softmax weights would sum to 1


@pytest.mark.parametrize("training", [False, True])
def test_padded_keys_change_nothing(training):
    rng = np.random.default_rng(3)
    layer = built(rng, use_softmax=training)
    query, keys, mask = inputs(rng)
    noisy = np.where(mask[..., None], keys, rng.normal(scale=100.0, size=keys.shape))
    np.testing.assert_array_equal(
        np.asarray(layer(query, noisy, padding_mask=mask, training=training)),
        np.asarray(layer(query, keys, padding_mask=mask, training=training)),
    )
    # The same as the valid positions alone (row 0: its 2 valid keys, unpadded).
    alone = np.asarray(layer(query[:1], keys[:1, 4:], training=False))
    full = np.asarray(layer(query[:1], keys[:1], padding_mask=mask[:1], training=False))
    np.testing.assert_allclose(full, alone, rtol=1e-12)


def test_config_and_keras_round_trip(tmp_path):
    layer = TargetAttention(hidden_units=(6, 4), activation="dice", use_softmax=True)
    assert_config_round_trip(layer)
    assert_config_round_trip(TargetAttention(activation="relu"))
    query, keys = keras.Input((D,)), keras.Input((T, D))
    mask = keras.Input((T,), dtype="bool")
    model = keras.Model([query, keys, mask], layer(query, keys, padding_mask=mask))
    rng = np.random.default_rng(4)
    q, k, m = inputs(rng)
    for dice in layer.dice_layers:
        randomize_dice(dice, rng)
    loaded = assert_keras_round_trip(model, [q.astype("float32"), k.astype("float32"), m],
                                     tmp_path)
    restored = loaded.layers[-1]
    assert isinstance(restored, TargetAttention) and restored.get_config() == layer.get_config()
