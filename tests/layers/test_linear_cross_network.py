import keras
import numpy as np
import pytest
from cross_reference import cross_network, layer_parameters, randomize
from layer_roundtrip import assert_config_round_trip, assert_keras_round_trip

from mdaf_tf.layers.linear_cross_network import LinearCrossNetwork

D = 6


@pytest.mark.parametrize("use_layer_norm", [True, False])
def test_matches_numpy_reference(use_layer_norm):
    rng = np.random.default_rng(0)
    layer = LinearCrossNetwork(num_layers=3, use_layer_norm=use_layer_norm, dtype="float64")
    x = rng.normal(size=(4, D))
    layer.build(x.shape)
    randomize(layer, rng)
    expected = cross_network(x, *layer_parameters(layer), kind="linear")
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-10, atol=1e-12)
    # the ECN update would give a different result on the same parameters
    other = cross_network(x, *layer_parameters(layer), kind="exponential")
    assert not np.allclose(other, expected)


def test_parameter_shapes():
    layer = LinearCrossNetwork(num_layers=2)
    layer.build((None, 8))
    shapes = sorted(tuple(w.shape) for w in layer.trainable_weights)
    # per layer: W (8, 4) without bias, b (8,), LayerNorm gamma and beta (4,)
    assert shapes == sorted([(8, 4), (8,), (4,), (4,)] * 2)


def test_dropout_only_in_training():
    layer = LinearCrossNetwork(num_layers=2, dropout=0.5)
    x = np.random.default_rng(1).normal(size=(8, D)).astype("float32")
    np.testing.assert_array_equal(layer(x, training=False), layer(x, training=False))
    assert not np.allclose(layer(x, training=True), layer(x, training=False))


def test_rejects_odd_width():
    with pytest.raises(ValueError, match="even"):
        LinearCrossNetwork()(np.zeros((2, 5), "float32"))


def test_config_and_keras_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    layer = LinearCrossNetwork(num_layers=2, dropout=0.1, kernel_regularizer="l2")
    assert_config_round_trip(layer)
    inputs = keras.Input((D,))
    model = keras.Model(inputs, layer(inputs))
    randomize(layer, rng)
    assert_keras_round_trip(model, rng.normal(size=(3, D)).astype("float32"), tmp_path)
