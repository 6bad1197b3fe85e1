import keras
import numpy as np
import pytest
from layer_roundtrip import assert_config_round_trip, assert_keras_round_trip

from mdaf_tf import schema
from mdaf_tf.layers.feature_embedding import FeatureEmbedding

SEQ_LEN = 5
VOCABS = dict(user_vocab_size=7, item_vocab_size=11, cate_vocab_size=5)
DIMS = dict(user_dim=3, item_dim=4, cate_dim=2)


def make_inputs():
    return {
        schema.USER_ID: np.array([2, 6, 3], dtype=np.int64),
        schema.ITEM_ID: np.array([5, 10, 2], dtype=np.int64),
        schema.CATE_ID: np.array([2, 4, 3], dtype=np.int64),
        schema.HIST_ITEM_ID: np.array(
            [[0, 0, 3, 4, 10], [0, 0, 0, 0, 0], [2, 3, 4, 5, 6]], dtype=np.int64
        ),
        schema.HIST_CATE_ID: np.array(
            [[0, 0, 2, 3, 4], [0, 0, 0, 0, 0], [2, 2, 3, 3, 4]], dtype=np.int64
        ),
        schema.HIST_LEN: np.array([3, 0, 5], dtype=np.int64),
    }


def table(layer, name):
    return keras.ops.convert_to_numpy(getattr(layer, name).embeddings)


def test_lookups_share_tables_and_mask_padding():
    layer = FeatureEmbedding(**VOCABS, **DIMS)
    inputs = make_inputs()
    out = layer(inputs)
    users, items, cates = (table(layer, n) for n in ("user_embedding", "item_embedding",
                                                      "cate_embedding"))
    np.testing.assert_allclose(out["user"], users[inputs[schema.USER_ID]])
    np.testing.assert_allclose(out["item"], items[inputs[schema.ITEM_ID]])
    np.testing.assert_allclose(out["cate"], cates[inputs[schema.CATE_ID]])
    mask = inputs[schema.HIST_ITEM_ID] != schema.PAD_ID
    np.testing.assert_array_equal(out["history_mask"], mask)
    expected_history = np.concatenate(
        [items[inputs[schema.HIST_ITEM_ID]], cates[inputs[schema.HIST_CATE_ID]]], axis=-1
    ) * mask[..., None]
    np.testing.assert_allclose(out["history"], expected_history)
    assert out["history"].shape == (3, SEQ_LEN, DIMS["item_dim"] + DIMS["cate_dim"])
    assert out["history_mask"].dtype == "bool"
    # one item table and one category table in total (shared by target and history)
    assert len(layer.trainable_weights) == 3


def test_padded_positions_ignore_their_category_ids():
    layer = FeatureEmbedding(**VOCABS, **DIMS)
    inputs = make_inputs()
    changed = dict(inputs)
    cates = inputs[schema.HIST_CATE_ID].copy()
    cates[inputs[schema.HIST_ITEM_ID] == schema.PAD_ID] = 4
    changed[schema.HIST_CATE_ID] = cates
    np.testing.assert_array_equal(layer(inputs)["history"], layer(changed)["history"])


def test_variable_paths_name_embeddings():
    layer = FeatureEmbedding(**VOCABS, **DIMS, name="features")
    layer(make_inputs())
    paths = [v.path for v in layer.weights]
    assert len(paths) == 3 and all("embedding" in p for p in paths), paths


def test_rejects_vocab_without_real_ids():
    with pytest.raises(ValueError, match="item_vocab_size"):
        FeatureEmbedding(user_vocab_size=5, item_vocab_size=2, cate_vocab_size=5)


def test_config_and_keras_round_trip(tmp_path):
    layer = FeatureEmbedding(**VOCABS, **DIMS, embeddings_regularizer="l2")
    assert_config_round_trip(layer)
    inputs = schema.keras_inputs(SEQ_LEN)
    model = keras.Model(inputs, layer(inputs))
    assert_keras_round_trip(model, make_inputs(), tmp_path)


def test_xla_compiled_call_matches_eager():
    import tensorflow as tf

    layer = FeatureEmbedding(**VOCABS, **DIMS)
    inputs = make_inputs()
    eager = layer(inputs)
    compiled = tf.function(layer.__call__, jit_compile=True)(inputs)
    for key, value in eager.items():
        np.testing.assert_array_equal(np.asarray(compiled[key]), np.asarray(value))
