import dataclasses

import keras
import numpy as np

from mdaf_tf.data import schema
from mdaf_tf.models import build_model
from mdaf_tf.models.mamba4rec import Mamba4Rec
from tests.models.conftest import random_batch, tiny_config
from tests.models.model_checks import assert_keras_round_trip, history_tokens, predict, tables


def _encoder_sequence(encoder, tokens, mask):
    """The encoder's per-position output h (B, T, d) at inference, from its sub-layers."""
    h = encoder.input_projection(tokens)
    h = encoder.embedding_norm(h)
    for i in range(encoder.num_layers):
        h = encoder.mamba_norms[i](h + encoder.mamba_blocks[i](h, mask=mask))
        ffn = encoder.ffn_out[i](encoder.ffn_in[i](h))
        h = encoder.ffn_norms[i](h + ffn)
    return np.asarray(h)


def test_pooling_is_the_encoder_output_at_the_target_position():
    config = tiny_config("mamba4rec", scan="auto")
    model = build_model("mamba4rec", config)
    batch = random_batch(config, 8, seed=9)
    t = tables(model)
    hist, hist_mask = history_tokens(model, batch)
    target = np.concatenate(
        [t["item"][batch[schema.ITEM_ID]], t["cate"][batch[schema.CATE_ID]]], axis=-1
    )
    tokens = np.concatenate([hist, target[:, None]], axis=1).astype("float32")
    mask = np.concatenate([hist_mask, np.ones((8, 1), bool)], axis=1)
    encoder = model.get_layer("sequence_encoder")
    h = _encoder_sequence(encoder, tokens, mask)
    pooled = np.asarray(
        keras.Model(model.inputs, encoder.output)(batch, training=False)
    )
    np.testing.assert_allclose(pooled, h[:, -1], rtol=1e-4, atol=1e-5)
    mean = (h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    assert not np.allclose(pooled, mean, atol=1e-3)  # it is not the masked mean


def test_padding_length_changes_nothing():
    config = tiny_config("mamba4rec", scan="auto")
    short = build_model("mamba4rec", config)
    long = build_model("mamba4rec", dataclasses.replace(config, max_seq_len=20))
    long.set_weights(short.get_weights())
    batch = random_batch(config, 8, seed=10)
    padded = dict(batch)
    for key in (schema.HIST_ITEM_ID, schema.HIST_CATE_ID):
        padded[key] = np.concatenate([np.zeros((8, 8), np.int64), batch[key]], axis=1)
    np.testing.assert_allclose(predict(long, padded)["probability"],
                               predict(short, batch)["probability"], rtol=1e-5, atol=1e-6)


def test_keras_round_trip(tmp_path):
    config = tiny_config("mamba4rec", scan="auto")
    model = build_model("mamba4rec", config)
    assert_keras_round_trip(model, Mamba4Rec, random_batch(config, 5, seed=1), tmp_path)
