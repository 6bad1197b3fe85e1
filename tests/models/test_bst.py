import dataclasses

import keras
import numpy as np
import pytest

from mdaf_tf.data import schema
from mdaf_tf.models import build_model
from mdaf_tf.models.bst import BST
from tests.models.conftest import random_batch, tiny_config
from tests.models.model_checks import (
    assert_keras_round_trip,
    history_tokens,
    predict,
    tables,
    with_extra_padding,
)


def _transformer_input(model, batch) -> np.ndarray:
    probe = keras.Model(model.inputs, model.get_layer("bst_tokens").output)
    return np.asarray(probe(batch, training=False))


def test_target_token_is_last_with_the_same_position_row_whatever_the_history():
    config = tiny_config("bst")
    model = build_model("bst", config)
    batch = random_batch(config, 9, seed=6)
    assert len(set(batch[schema.HIST_LEN].tolist())) > 3  # several history lengths, 0 too
    positions = np.asarray(model.get_layer("position_embedding").position_embeddings)
    assert positions.shape == (config.max_seq_len + 1, 12)
    t = tables(model)
    target = np.concatenate(
        [t["item"][batch[schema.ITEM_ID]], t["cate"][batch[schema.CATE_ID]]], axis=-1
    )
    hist, _ = history_tokens(model, batch)
    expected = np.concatenate([hist, target[:, None, :]], axis=1) + positions[None]
    s = _transformer_input(model, batch)
    assert s.shape == (9, config.max_seq_len + 1, 12)
    np.testing.assert_allclose(s, expected, rtol=1e-6, atol=1e-6)
    # The target's position embedding is the table's last row for every history length.
    np.testing.assert_allclose(s[:, -1] - target, np.broadcast_to(positions[-1], target.shape),
                               atol=1e-6)


def test_padding_length_and_padded_values_change_nothing():
    config = tiny_config("bst")
    short = build_model("bst", config)
    extra = 7
    long = build_model("bst", dataclasses.replace(config, max_seq_len=config.max_seq_len + extra))
    rng = np.random.default_rng(0)
    for layer in short.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if layer.name == "position_embedding":
            # The long table agrees on the rows the short model uses (counted from the end)
            # and holds random rows for the extra padded positions.
            table = weights[0]
            weights = [np.concatenate([rng.normal(size=(extra, table.shape[1])), table])]
        long.get_layer(layer.name).set_weights(weights)
    batch = random_batch(config, 8, seed=7)
    padded = with_extra_padding(batch, extra)  # category ids under padding are ignored too
    np.testing.assert_allclose(predict(long, padded)["probability"],
                               predict(short, batch)["probability"], rtol=1e-5, atol=1e-6)


def test_target_changes_the_score(config):
    model = build_model("bst", config)
    batch = random_batch(config, 6, seed=8)
    other = dict(batch)
    other[schema.ITEM_ID] = (batch[schema.ITEM_ID] - schema.FIRST_ID + 1) % (
        config.vocab_sizes["item"] - schema.FIRST_ID) + schema.FIRST_ID
    assert not np.allclose(predict(model, batch)["probability"],
                           predict(model, other)["probability"])


def test_keras_round_trip(tmp_path, config):
    model = build_model("bst", config)
    assert_keras_round_trip(model, BST, random_batch(config, 5, seed=1), tmp_path)


@pytest.fixture
def config():
    return tiny_config("bst")
