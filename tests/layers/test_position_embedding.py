import keras
import numpy as np
import pytest
from layer_roundtrip import assert_config_round_trip, assert_keras_round_trip

from mdaf_tf.layers.position_embedding import PositionEmbedding


def test_returns_last_rows_broadcast_over_batch():
    layer = PositionEmbedding(max_length=6)
    x = np.zeros((3, 4, 2), "float32")
    out = np.asarray(layer(x))
    table = np.asarray(layer.position_embeddings)
    assert table.shape == (6, 2)
    np.testing.assert_array_equal(out, np.broadcast_to(table[2:], (3, 4, 2)))


def test_last_position_is_the_same_row_for_any_length():
    layer = PositionEmbedding(max_length=6)
    short = np.asarray(layer(np.zeros((1, 3, 2), "float32")))
    full = np.asarray(layer(np.zeros((1, 6, 2), "float32")))
    np.testing.assert_array_equal(short[0], full[0, 3:])


def test_rejects_longer_sequence():
    with pytest.raises(ValueError, match="max_length"):
        PositionEmbedding(max_length=3)(np.zeros((1, 4, 2), "float32"))


def test_config_and_keras_round_trip(tmp_path):
    layer = PositionEmbedding(max_length=5)
    assert_config_round_trip(layer)
    inputs = keras.Input((5, 3))
    model = keras.Model(inputs, inputs + layer(inputs))
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    assert_keras_round_trip(model, x, tmp_path)
