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


def test_cross_biases_start_uniform_on_unit_interval_unless_given():
    keras.utils.set_random_seed(0)
    layer = DCNv3(num_layers=3)
    layer.build((None, 64))
    biases = [np.asarray(b) for net in (layer.linear, layer.exponential) for b in net.biases]
    values = np.concatenate(biases)
    assert values.min() >= 0.0 and values.max() < 1.0
    # 384 draws of U[0, 1): mean 0.5 +- 0.015 (one standard error), so 0.45..0.55 is safe
    assert 0.45 < values.mean() < 0.55
    assert len({b.tobytes() for b in biases}) == len(biases)  # every layer draws its own

    zeros = DCNv3(num_layers=2, bias_initializer="zeros")
    zeros.build((None, D))
    assert all(not np.asarray(b).any() for b in zeros.exponential.biases)
    assert assert_config_round_trip(zeros).linear.bias_initializer.__class__.__name__ == "Zeros"


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
