import keras
import numpy as np
import pytest
from layer_roundtrip import assert_config_round_trip, assert_keras_round_trip

from mdaf_tf.layers.mlp import MLP


def dense_params(layer):
    return np.asarray(layer.kernel), np.asarray(layer.bias)


def test_matches_numpy_reference_with_output_layer():
    rng = np.random.default_rng(0)
    layer = MLP(hidden_units=(5, 3), output_units=1, output_activation="sigmoid",
                dtype="float64")
    x = rng.normal(size=(4, 6))
    out = np.asarray(layer(x))
    h = x
    for dense in layer.dense_layers:
        w, b = dense_params(dense)
        h = np.maximum(h @ w + b, 0.0)
    w, b = dense_params(layer.output_layer)
    np.testing.assert_allclose(out, 1.0 / (1.0 + np.exp(-(h @ w + b))), rtol=1e-12)
    assert out.shape == (4, 1)


def test_layer_norm_variant_matches_reference():
    rng = np.random.default_rng(1)
    layer = MLP(hidden_units=(4,), normalization="layer", activation="tanh", dtype="float64")
    x = rng.normal(size=(3, 5))
    out = np.asarray(layer(x))
    w, b = dense_params(layer.dense_layers[0])
    z = x @ w + b
    norm = layer.norm_layers[0]
    z = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + norm.epsilon)
    np.testing.assert_allclose(out, np.tanh(z), rtol=1e-9, atol=1e-12)


def test_batch_norm_and_dropout_act_only_in_training():
    layer = MLP(hidden_units=(8, 8), normalization="batch", dropout=0.5)
    x = np.random.default_rng(2).normal(size=(16, 5)).astype("float32")
    np.testing.assert_array_equal(layer(x, training=False), layer(x, training=False))
    assert not np.allclose(layer(x, training=True), layer(x, training=False))
    assert layer.compute_output_shape((None, 5)) == (None, 8)


def test_rejects_unknown_normalization():
    with pytest.raises(ValueError, match="normalization"):
        MLP(normalization="group")


def test_config_and_keras_round_trip(tmp_path):
    layer = MLP(hidden_units=(6, 4), normalization="batch", dropout=0.2, output_units=1,
                kernel_regularizer="l2")
    clone = assert_config_round_trip(layer)
    assert clone.hidden_units == (6, 4)
    inputs = keras.Input((5,))
    model = keras.Model(inputs, layer(inputs))
    x = np.random.default_rng(3).normal(size=(4, 5)).astype("float32")
    model(x, training=True)  # move the batch-norm statistics away from their initial values
    assert_keras_round_trip(model, x, tmp_path)
