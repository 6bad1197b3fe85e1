import keras
import numpy as np
from din_reference import dice, masked_moments, randomize_dice
from layer_roundtrip import assert_config_round_trip, assert_keras_round_trip

from mdaf_tf.layers.dice import Dice


def test_inference_uses_the_moving_moments_and_training_the_valid_rows():
    rng = np.random.default_rng(0)
    layer = Dice(dtype="float64")
    x = rng.normal(loc=1.0, size=(3, 5, 4))
    mask = rng.random((3, 5)) < 0.6
    layer(x)
    randomize_dice(layer, rng)
    alpha = np.asarray(layer.alpha)
    moving_mean = np.asarray(layer.normalization.moving_mean)
    moving_var = np.asarray(layer.normalization.moving_variance)
    np.testing.assert_allclose(np.asarray(layer(x, training=False)),
                               dice(x, alpha, moving_mean, moving_var, 1e-9), rtol=1e-12)
    out = np.asarray(layer(x, padding_mask=mask, training=True))
    mean, var = masked_moments(x, mask)
    # Keras's masked moments divide by (count + 1e-7): ~1e-8 relative on O(1) values.
    np.testing.assert_allclose(out, dice(x, alpha, mean, var, 1e-9), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.asarray(layer.normalization.moving_mean),
                               0.99 * moving_mean + 0.01 * mean, rtol=1e-6)
    # Masked rows do not move the statistics.
    noisy = np.where(mask[..., None], x, 1e3)
    layer.normalization.moving_mean.assign(moving_mean)
    np.testing.assert_allclose(np.asarray(layer(noisy, padding_mask=mask, training=True))[mask],
                               out[mask], rtol=1e-12)


def test_config_and_keras_round_trip(tmp_path):
    layer = Dice(epsilon=1e-8, momentum=0.9)
    assert_config_round_trip(layer)
    inputs = keras.Input((3, 4))
    model = keras.Model(inputs, layer(inputs))
    randomize_dice(layer, np.random.default_rng(1))
    assert_keras_round_trip(model, np.random.default_rng(2).normal(size=(2, 3, 4)), tmp_path)
