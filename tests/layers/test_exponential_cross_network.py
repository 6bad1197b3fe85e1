import keras
import numpy as np
import pytest
from cross_reference import cross_network, layer_parameters, randomize
from layer_roundtrip import assert_config_round_trip, assert_keras_round_trip

from mdaf_tf.layers.exponential_cross_network import ExponentialCrossNetwork
from mdaf_tf.layers.linear_cross_network import LinearCrossNetwork

D = 6


@pytest.mark.parametrize("use_layer_norm", [True, False])
def test_matches_numpy_reference(use_layer_norm):
    rng = np.random.default_rng(0)
    layer = ExponentialCrossNetwork(num_layers=3, use_layer_norm=use_layer_norm, dtype="float64")
    x = rng.normal(size=(4, D))
    layer.build(x.shape)
    randomize(layer, rng)
    expected = cross_network(x, *layer_parameters(layer), kind="exponential")
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-10, atol=1e-12)


def output_degree(layer_class, num_layers, mask_value, rng):
    """Degree in t of the layer's output on x_0 = t * v (max over output components).

    The self-mask is pinned to a constant (LayerNorm gamma = 0, beta = mask_value), as the
    interaction-order argument of DCNv3 treats the mask as a selection: then each layer is
    a polynomial map and the output is a polynomial in t. The degree is read off an exact
    Chebyshev fit on more points than any candidate degree needs.
    """
    layer = layer_class(num_layers=num_layers, use_layer_norm=True, dtype="float64")
    layer.build((None, D))
    randomize(layer, rng)
    for norm in layer.layer_norms:
        norm.gamma.assign(np.zeros(norm.gamma.shape))
        norm.beta.assign(np.full(norm.beta.shape, mask_value))
    v = rng.normal(size=D)
    ts = np.cos(np.pi * (np.arange(40) + 0.5) / 40)  # Chebyshev nodes on [-1, 1]
    out = np.asarray(layer(ts[:, None] * v[None, :]))  # (40, D), row i is x_L(ts[i] * v)
    max_degree = 2**num_layers + 6
    coefficients = np.polynomial.chebyshev.chebfit(ts, out, max_degree)  # (max_degree+1, D)
    magnitude = np.abs(coefficients).max(axis=1)
    significant = np.nonzero(magnitude > 1e-9 * magnitude.max())[0]
    return int(significant.max())


@pytest.mark.parametrize("mask_value", [1.0, 0.0])
def test_interaction_order_doubles_per_layer_while_lcn_adds_one(mask_value):
    rng = np.random.default_rng(3)
    ecn = [output_degree(ExponentialCrossNetwork, n, mask_value, rng) for n in (1, 2, 3)]
    lcn = [output_degree(LinearCrossNetwork, n, mask_value, rng) for n in (1, 2, 3)]
    assert ecn == [2, 4, 8]
    assert lcn == [2, 3, 4]


def test_dropout_only_in_training():
    layer = ExponentialCrossNetwork(num_layers=2, dropout=0.5)
    x = np.random.default_rng(1).normal(size=(8, D)).astype("float32")
    np.testing.assert_array_equal(layer(x, training=False), layer(x, training=False))
    assert not np.allclose(layer(x, training=True), layer(x, training=False))


def test_config_and_keras_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    layer = ExponentialCrossNetwork(num_layers=2, use_layer_norm=False)
    assert_config_round_trip(layer)
    inputs = keras.Input((D,))
    model = keras.Model(inputs, layer(inputs))
    randomize(layer, rng)
    assert_keras_round_trip(model, rng.normal(size=(3, D)).astype("float32"), tmp_path)
