import keras
import numpy as np
import pytest
from layer_roundtrip import assert_config_round_trip, assert_keras_round_trip

from mdaf_tf.layers.gated_fusion import GatedFusion

D = 4


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def pair(rng, batch=6, scale=1.0):
    return rng.normal(scale=scale, size=(batch, D)), rng.normal(scale=scale, size=(batch, D))


def test_gate_matches_numpy_reference():
    rng = np.random.default_rng(0)
    layer = GatedFusion(hidden_units=5, dtype="float64")
    a, b = pair(rng)
    out, g = layer([a, b])
    w1, b1 = (np.asarray(v) for v in (layer.gate_hidden.kernel, layer.gate_hidden.bias))
    w2, b2 = (np.asarray(v) for v in (layer.gate_output.kernel, layer.gate_output.bias))
    expected_g = sigmoid(np.maximum(np.concatenate([a, b], -1) @ w1 + b1, 0.0) @ w2 + b2)
    np.testing.assert_allclose(np.asarray(g), expected_g, rtol=1e-12)
    np.testing.assert_allclose(
        np.asarray(out), expected_g * a + (1 - expected_g) * b, rtol=1e-12, atol=1e-14
    )
    assert w1.shape == (2 * D, 5) and w2.shape == (5, 1)
    two_args_out, two_args_g = layer(a, b)  # same layer called as layer(a, b)
    np.testing.assert_array_equal(np.asarray(two_args_out), np.asarray(out))
    np.testing.assert_array_equal(np.asarray(two_args_g), np.asarray(g))


def test_gate_stays_in_unit_interval_on_extreme_inputs():
    rng = np.random.default_rng(1)
    layer = GatedFusion(hidden_units=8)
    a, b = pair(rng, batch=64, scale=1e4)
    _, g = layer([a.astype("float32"), b.astype("float32")])
    g = np.asarray(g)
    assert g.shape == (64, 1)
    assert np.all((g >= 0.0) & (g <= 1.0))


def test_fixed_mode_uses_constant_weight():
    rng = np.random.default_rng(2)
    layer = GatedFusion(mode="fixed", fixed_weight=0.3, dtype="float64")
    a, b = pair(rng)
    out, g = layer([a, b])
    np.testing.assert_allclose(np.asarray(out), 0.3 * a + 0.7 * b, rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(g), np.full((6, 1), 0.3))
    assert not layer.trainable_weights


def test_concat_mode_projects_the_concatenation():
    rng = np.random.default_rng(3)
    layer = GatedFusion(mode="concat", units=3, dtype="float64")
    a, b = rng.normal(size=(6, D)), rng.normal(size=(6, 2))  # widths may differ
    out, g = layer([a, b])
    kernel, bias = np.asarray(layer.projection.kernel), np.asarray(layer.projection.bias)
    np.testing.assert_allclose(
        np.asarray(out), np.concatenate([a, b], -1) @ kernel + bias, rtol=1e-12
    )
    np.testing.assert_array_equal(np.asarray(g), np.full((6, 1), 0.5))
    assert not layer.has_gate and GatedFusion().has_gate


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        GatedFusion(mode="sum")
    with pytest.raises(ValueError, match="fixed_weight"):
        GatedFusion(mode="fixed", fixed_weight=1.5)
    with pytest.raises(ValueError, match="equal widths"):
        GatedFusion()([np.zeros((2, 3), "float32"), np.zeros((2, 4), "float32")])


def fusion_model(mode):
    a = keras.Input((D,), name="a")
    b = keras.Input((D,), name="b")
    fused, gate = GatedFusion(mode=mode, hidden_units=8, name="fusion")(a, b)
    probability = keras.layers.Dense(1, activation="sigmoid", name="probability")(fused)
    return keras.Model({"a": a, "b": b}, {"probability": probability, "gate": gate})


@pytest.mark.parametrize("mode", ["gate", "concat", "fixed"])
def test_modes_train_and_round_trip(mode, tmp_path):
    keras.utils.set_random_seed(4)
    rng = np.random.default_rng(4)
    a, b = pair(rng, batch=64)
    labels = (a[:, :1] - b[:, 1:2] > 0).astype("float32")
    inputs = {"a": a.astype("float32"), "b": b.astype("float32")}
    model = fusion_model(mode)
    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss={"probability": "binary_crossentropy"},
        jit_compile=False,
    )
    history = model.fit(inputs, {"probability": labels}, epochs=15, batch_size=64, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    assert_config_round_trip(model.get_layer("fusion"))
    assert_keras_round_trip(model, inputs, tmp_path)
