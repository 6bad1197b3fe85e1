import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from mdaf_tf.data import schema
from mdaf_tf.models import build_model, count_parameters
from mdaf_tf.models.config import ModelConfig
from mdaf_tf.models.mdaf import MDAF
from tests.models.conftest import random_batch, tiny_config


def _predict(model, batch):
    out = model(batch, training=False)
    return {k: np.asarray(v) for k, v in out.items()}


def test_outputs_and_gate_range(config):
    model = build_model("mdaf", config)
    out = _predict(model, random_batch(config, 16))
    assert out["probability"].shape == (16, 1) and out["gate"].shape == (16, 1)
    assert np.all((out["probability"] > 0) & (out["probability"] < 1))
    assert np.all((out["gate"] >= 0) & (out["gate"] <= 1))
    assert np.all(np.isfinite(out["probability"]))


def test_default_parameter_counts_by_component():
    config = ModelConfig(vocab_sizes={"user": 1000, "item": 500, "cate": 30})
    counts = count_parameters(build_model("mdaf", config))
    # Hand count from the layer shapes at the seed's sizes.
    embeddings = 1000 * 80 + 500 * 64 + 30 * 32
    cross_layer = 128 * 64 + 2 * 64 + 128  # W (d -> d/2), LayerNorm(d/2), bias b (d)
    static = (176 * 128 + 128) + 2 * 3 * cross_layer
    mamba = 116_480
    ffn = (128 * 512 + 512) + (512 * 128 + 128)
    sequence = (96 * 128 + 128) + 256 + 2 * (mamba + 256 + ffn + 256)
    gate_output = (256 * 128 + 128) + (128 + 1) + (128 * 64 + 64) + (64 + 1)
    assert counts == {
        "embeddings": embeddings,
        "static branch": static,
        "sequence branch": sequence,
        "gate + output": gate_output,
        "total": embeddings + static + sequence + gate_output,
    }


@pytest.mark.parametrize("name", ["mdaf", "mdaf_ta", "mdaf_match", "mdaf_concat", "mdaf_fixed"])
def test_keras_round_trip(tmp_path, config, name):
    model = build_model(name, config)
    batch = random_batch(config, 8, seed=1)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, MDAF)
    assert restored.config == model.config
    for key, value in _predict(model, batch).items():
        np.testing.assert_array_equal(_predict(restored, batch)[key], value)


def test_config_round_trip(config):
    model = build_model("mdaf_ta", config)
    clone = MDAF.from_config(model.get_config())
    assert clone.config == model.config and clone.config.target_in_sequence


@pytest.mark.parametrize("name", ["mdaf", "mdaf_ta"])
def test_padding_length_and_padded_ids_do_not_matter(config, name):
    # A position is padding when its item id is PAD_ID, whatever its category says: the
    # padded positions (the 9 extra ones and the batch's own) get random non-zero categories.
    short = build_model(name, config)
    long_config = dataclasses.replace(config, max_seq_len=config.max_seq_len + 9)
    long = build_model(name, long_config)
    long.set_weights(short.get_weights())
    batch = random_batch(config, 8, seed=2)
    rng = np.random.default_rng(5)
    padded = dict(batch)
    padded[schema.HIST_ITEM_ID] = np.concatenate(
        [np.full((8, 9), schema.PAD_ID, np.int64), batch[schema.HIST_ITEM_ID]], axis=1)
    cates = np.concatenate([np.zeros((8, 9), np.int64), batch[schema.HIST_CATE_ID]], axis=1)
    is_pad = padded[schema.HIST_ITEM_ID] == schema.PAD_ID
    assert is_pad[:, 9:].any()  # the batch has padding of its own too (row 0 is all padding)
    cates[is_pad] = rng.integers(schema.FIRST_ID, config.vocab_sizes["cate"], size=is_pad.sum())
    assert np.all(cates != schema.PAD_ID)
    padded[schema.HIST_CATE_ID] = cates
    expected = _predict(short, batch)["probability"]
    np.testing.assert_allclose(_predict(long, padded)["probability"], expected, rtol=1e-5)

    # The same categories under real (non-padding) items do change the prediction, so the
    # comparison above would see them if the model read them at padded positions.
    unpadded = dict(padded)
    unpadded[schema.HIST_ITEM_ID] = np.where(
        is_pad, rng.integers(schema.FIRST_ID, config.vocab_sizes["item"], size=is_pad.shape),
        padded[schema.HIST_ITEM_ID])
    changed = np.abs(_predict(long, unpadded)["probability"] - expected)
    assert changed.max() > 1e-4


def test_xla_matches_eager(config):
    model = build_model("mdaf", config)
    batch = {k: tf.constant(v) for k, v in random_batch(config, 8, seed=3).items()}
    eager = model(batch, training=False)["probability"]
    xla = tf.function(lambda b: model(b, training=False), jit_compile=True)(batch)
    np.testing.assert_allclose(xla["probability"], eager, rtol=1e-5, atol=1e-6)


def match_reference(kernel, batch):
    """(B, 2 * K): per field (item, category), the kernel summed over the valid positions
    whose id equals the target's real id."""
    fields = [(schema.ITEM_ID, schema.HIST_ITEM_ID), (schema.CATE_ID, schema.HIST_CATE_ID)]
    valid = batch[schema.HIST_ITEM_ID] != schema.PAD_ID
    out = []
    for f, (target, hist) in enumerate(fields):
        hit = (batch[hist] == batch[target][:, None]) & valid
        hit &= (batch[target] >= schema.FIRST_ID)[:, None]
        out.append(hit.astype(float) @ kernel[:, f, :])
    return np.concatenate(out, axis=1)


def test_match_variant_adds_projected_match_counts_to_the_sequence_branch(config):
    model = build_model("mdaf_match", config)
    batch = random_batch(config, 8, seed=6)
    has_history = batch[schema.HIST_LEN] > 0
    batch[schema.CATE_ID] = np.where(has_history, batch[schema.HIST_CATE_ID][:, -1],
                                     batch[schema.CATE_ID])  # matches in the category field
    batch[schema.ITEM_ID][1] = batch[schema.HIST_ITEM_ID][1, -1]  # and one item match
    probe = keras.Model(model.inputs, [model.get_layer("sequence_encoder").output,
                                       model.get_layer("sequence_with_match").output])
    encoded, sequence = (np.asarray(x) for x in probe(batch, training=False))
    match = match_reference(np.asarray(model.get_layer("target_match").kernel), batch)
    assert (match[has_history] > 0).any(axis=1).all() and match[1, :4].sum() > 0
    kernel, bias = (np.asarray(w) for w in model.get_layer("target_match_projection").weights)
    np.testing.assert_allclose(sequence, encoded + match @ kernel + bias, rtol=1e-5, atol=1e-6)
    assert count_parameters(model)["sequence branch"] > count_parameters(
        build_model("mdaf", config))["sequence branch"]


@pytest.mark.parametrize("name", ["mdaf", "mdaf_match", "mdaf_concat", "mdaf_fixed"])
def test_trains_and_loss_decreases(name):
    config = tiny_config(dropout=0.0)
    model = build_model(name, config)
    batch = random_batch(config, 64, seed=4)
    # A learnable label: clicks where the target shares the category of the latest behaviour.
    label = (batch[schema.CATE_ID] == batch[schema.HIST_CATE_ID][:, -1]) | (
        batch[schema.USER_ID] % 2 == 0
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss={"probability": "binary_crossentropy"},
        jit_compile=False,
    )
    history = model.fit(
        batch, {"probability": label.astype("float32")}, epochs=15, batch_size=64, verbose=0
    )
    losses = history.history["loss"]
    assert losses[-1] < 0.7 * losses[0]
