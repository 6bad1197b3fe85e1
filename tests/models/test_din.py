import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from mdaf_tf.data import schema
from mdaf_tf.models import build_model, count_parameters
from mdaf_tf.models.din import DIN
from tests.layers.din_reference import randomize_dice, target_attention
from tests.models.conftest import random_batch, tiny_config
from tests.models.model_checks import (
    assert_keras_round_trip,
    fit_a_simple_rule,
    history_tokens,
    mlp,
    predict,
    sigmoid,
    static_x0,
    tables,
    with_extra_padding,
)


def _din(config, seed=0):
    model = build_model("din", config)
    rng = np.random.default_rng(seed)
    for dice in model.get_layer("target_attention").dice_layers:
        randomize_dice(dice, rng)
    return model


@pytest.mark.parametrize("use_softmax", [False, True])
def test_attention_and_output_match_numpy_din(use_softmax):
    config = tiny_config("din", din_attention_hidden=(6, 4), din_use_softmax=use_softmax)
    model = _din(config)
    batch = random_batch(config, 7, seed=3)
    t = tables(model)
    query = np.concatenate([t["item"][batch[schema.ITEM_ID]],
                            t["cate"][batch[schema.CATE_ID]]], axis=-1)
    keys, mask = history_tokens(model, batch)
    expected = target_attention(model.get_layer("target_attention"), query, keys, mask)
    probe = keras.Model(model.inputs, model.get_layer("target_attention").output)
    pooled = np.asarray(probe(batch, training=False))
    # float32 model vs float64 reference.
    np.testing.assert_allclose(pooled, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pooled[0], 0.0)  # empty history
    logit = mlp(model.get_layer("output_mlp"), np.concatenate([static_x0(model, batch), expected],
                                                               axis=-1))
    np.testing.assert_allclose(predict(model, batch)["probability"], sigmoid(logit),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("training", [False, True])
def test_padding_length_and_padded_values_change_nothing(training):
    config = tiny_config("din", dropout=0.0)
    extra = 7
    short = _din(config)
    long = build_model("din", dataclasses.replace(config, max_seq_len=config.max_seq_len + extra))
    long.set_weights(short.get_weights())
    batch = random_batch(config, 8, seed=7)
    padded = with_extra_padding(batch, extra)
    # In training Dice normalises with the batch moments of the valid positions only.
    np.testing.assert_allclose(
        np.asarray(long(padded, training=training)["probability"]),
        np.asarray(short(batch, training=training)["probability"]), rtol=1e-5, atol=1e-6)


def test_trains_and_updates_dice_statistics():
    config = tiny_config("din", dropout=0.0)
    model = build_model("din", config)
    batch = random_batch(config, 64, seed=4)
    losses = fit_a_simple_rule(model, batch)
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.7 * losses[0]
    moving = model.get_layer("target_attention").dice_layers[0].normalization.moving_mean
    assert np.any(np.asarray(moving) != 0.0)


def test_xla_matches_eager_in_training_and_inference():
    config = tiny_config("din", dropout=0.0)
    model = _din(config)
    batch = {k: tf.constant(v) for k, v in random_batch(config, 8, seed=5).items()}
    for training in (False, True):  # training: Dice's masked batch moments under XLA
        eager = model(batch, training=training)["probability"]
        xla = tf.function(lambda b, t=training: model(b, training=t), jit_compile=True)(batch)
        np.testing.assert_allclose(xla["probability"], eager, rtol=1e-5, atol=1e-6)


def test_parameter_components_add_up(config):
    model = build_model("din", config)
    counts = count_parameters(model)
    assert "other" not in counts and counts["total"] == model.count_params()
    d = config.embedding_dims["item"] + config.embedding_dims["cate"]
    h1, h2 = config.din_attention_hidden
    # Dense layers + Dice (alpha, moving mean, moving variance) per hidden layer + score.
    assert counts["attention"] == (4 * d * h1 + h1) + 3 * h1 + (h1 * h2 + h2) + 3 * h2 + h2 + 1


def test_keras_round_trip(tmp_path, config):
    model = _din(config)
    assert_keras_round_trip(model, DIN, random_batch(config, 5, seed=1), tmp_path)


@pytest.fixture
def config():
    return tiny_config("din")
