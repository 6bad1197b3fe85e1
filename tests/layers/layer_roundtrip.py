"""Shared check for the layer tests: get_config/from_config and a .keras round trip."""

from __future__ import annotations

import keras
import numpy as np


def assert_config_round_trip(layer):
    """from_config(get_config()) rebuilds a layer with the same config."""
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    return clone


def assert_keras_round_trip(model: keras.Model, inputs, tmp_path, atol=0.0):
    """Saving ``model`` to .keras and loading it gives identical outputs on ``inputs``."""
    expected = model(inputs, training=False)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    actual = loaded(inputs, training=False)
    flat_expected = keras.tree.flatten(expected)
    flat_actual = keras.tree.flatten(actual)
    assert len(flat_expected) == len(flat_actual)
    for e, a in zip(flat_expected, flat_actual, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=0, atol=atol)
    return loaded
