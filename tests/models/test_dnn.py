import dataclasses

import keras
import numpy as np
import pytest

from mdaf_tf.data import schema
from mdaf_tf.models import build_model, count_parameters
from mdaf_tf.models.dnn import DNN
from tests.models.conftest import random_batch, tiny_config
from tests.models.model_checks import (
    assert_keras_round_trip,
    fit_a_simple_rule,
    history_tokens,
    mlp,
    predict,
    sigmoid,
    static_x0,
    with_extra_padding,
)


def test_history_is_the_mean_of_the_valid_tokens_and_output_matches_numpy(config):
    model = build_model("dnn", config)
    batch = random_batch(config, 9, seed=3)
    tokens, mask = history_tokens(model, batch)
    expected = np.zeros((9, tokens.shape[-1]))
    for b in range(9):
        if mask[b].any():
            expected[b] = tokens[b][mask[b]].mean(axis=0)
    probe = keras.Model(model.inputs, model.get_layer("history_mean").output)
    np.testing.assert_allclose(np.asarray(probe(batch)), expected, rtol=1e-6, atol=1e-7)
    assert not mask[0].any()  # the empty history pools to 0
    logit = mlp(model.get_layer("output_mlp"),
                np.concatenate([static_x0(model, batch), expected], axis=-1))
    np.testing.assert_allclose(predict(model, batch)["probability"], sigmoid(logit),
                               rtol=1e-5, atol=1e-6)


def test_match_variant_appends_the_match_counts_to_the_mlp_input(config):
    from tests.models.test_mdaf import match_reference

    model = build_model("dnn_match", config)
    batch = random_batch(config, 9, seed=5)
    batch[schema.CATE_ID] = np.where(batch[schema.HIST_LEN] > 0, batch[schema.HIST_CATE_ID][:, -1],
                                     batch[schema.CATE_ID])
    tokens, mask = history_tokens(model, batch)
    mean = np.stack([t[m].mean(axis=0) if m.any() else np.zeros(t.shape[-1])
                     for t, m in zip(tokens, mask, strict=True)])
    match = match_reference(np.asarray(model.get_layer("target_match").kernel), batch)
    assert (match[batch[schema.HIST_LEN] > 0] > 0).any(axis=1).all()
    logit = mlp(model.get_layer("output_mlp"),
                np.concatenate([static_x0(model, batch), mean, match], axis=-1))
    np.testing.assert_allclose(predict(model, batch)["probability"], sigmoid(logit),
                               rtol=1e-5, atol=1e-6)
    counts = count_parameters(model)
    assert counts["target match"] == config.max_seq_len * 2 * 4
    assert counts["total"] == model.count_params()


def test_padding_length_and_padded_values_change_nothing(config):
    extra = 7
    short = build_model("dnn", config)
    long = build_model("dnn", dataclasses.replace(config, max_seq_len=config.max_seq_len + extra))
    long.set_weights(short.get_weights())
    batch = random_batch(config, 8, seed=7)
    padded = with_extra_padding(batch, extra)
    np.testing.assert_allclose(predict(long, padded)["probability"],
                               predict(short, batch)["probability"], rtol=1e-5, atol=1e-6)


def test_trains_and_loss_decreases():
    config = tiny_config("dnn", dropout=0.0)
    model = build_model("dnn", config)
    batch = random_batch(config, 64, seed=4)
    losses = fit_a_simple_rule(model, batch)
    assert losses[-1] < 0.7 * losses[0]


def test_parameter_components_add_up(config):
    model = build_model("dnn", config)
    counts = count_parameters(model)
    assert set(counts) == {"embeddings", "mlp", "total"}
    assert counts["total"] == model.count_params()
    width = (config.embedding_dims["user"] + 2 * config.embedding_dims["item"]
             + 2 * config.embedding_dims["cate"])
    h1, h2 = config.deep_hidden
    assert counts["mlp"] == (width * h1 + h1) + (h1 * h2 + h2) + h2 + 1


def test_keras_round_trip(tmp_path, config):
    model = build_model("dnn", config)
    assert_keras_round_trip(model, DNN, random_batch(config, 5, seed=1), tmp_path)


@pytest.fixture
def config():
    return tiny_config("dnn")
