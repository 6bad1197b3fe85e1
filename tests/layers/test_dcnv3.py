import keras
import numpy as np
from cross_reference import cross_network, layer_parameters, randomize
from layer_roundtrip import assert_config_round_trip, assert_keras_round_trip

from mdaf_tf.layers.dcnv3 import DCNv3

D = 8


def test_averages_lcn_and_ecn_references():
    rng = np.random.default_rng(0)
    layer = DCNv3(num_layers=3, dtype="float64")
    x = rng.normal(size=(5, D))
    layer.build(x.shape)
    randomize(layer.linear, rng)
    randomize(layer.exponential, rng)
    lcn = cross_network(x, *layer_parameters(layer.linear), kind="linear")
    ecn = cross_network(x, *layer_parameters(layer.exponential), kind="exponential")
    out = np.asarray(layer(x))
    assert out.shape == (5, D)
    np.testing.assert_allclose(out, 0.5 * (lcn + ecn), rtol=1e-10, atol=1e-12)


def test_networks_have_separate_parameters():
    layer = DCNv3(num_layers=2)
    layer.build((None, D))
    # each network: 2 x (W (D, D/2), b (D,), gamma, beta (D/2,))
    assert len(layer.trainable_weights) == 2 * 2 * 4
    assert len({id(w) for w in layer.trainable_weights}) == len(layer.trainable_weights)


def test_config_and_keras_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    layer = DCNv3(num_layers=2, dropout=0.25)
    clone = assert_config_round_trip(layer)
    assert clone.linear.dropout == 0.25 and clone.exponential.num_layers == 2
    inputs = keras.Input((D,))
    model = keras.Model(inputs, layer(inputs))
    randomize(layer.linear, rng)
    randomize(layer.exponential, rng)
    assert_keras_round_trip(model, rng.normal(size=(3, D)).astype("float32"), tmp_path)


def test_xla_compiled_call_matches_eager():
    import tensorflow as tf

    rng = np.random.default_rng(5)
    layer = DCNv3(num_layers=2, dropout=0.1)
    x = rng.normal(size=(4, D)).astype("float32")
    layer.build(x.shape)
    randomize(layer.linear, rng)
    randomize(layer.exponential, rng)
    compiled = tf.function(lambda v: layer(v, training=False), jit_compile=True)
    np.testing.assert_allclose(np.asarray(compiled(x)), np.asarray(layer(x)), rtol=1e-5, atol=1e-6)
