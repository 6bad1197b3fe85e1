import keras
import numpy as np
import pytest
from layer_roundtrip import assert_config_round_trip, assert_keras_round_trip

from mdaf_tf.data import feature_schema, schema
from mdaf_tf.layers.feature_embedding import FeatureEmbedding

SEQ_LEN = 5
VOCABS = {"user": 7, "item": 11, "cate": 5}
DIMS = {"user": 3, "item": 4, "cate": 2}
# a declared schema: a numeric field between the ids, a context field, a shared vocabulary
DECLARED = {
    "static": [
        {"name": "user_id", "kind": "categorical", "vocabulary": "user"},
        {"name": "price", "kind": "numeric", "mean": 10.0, "std": 4.0},
        {"name": "item_id", "kind": "categorical", "vocabulary": "item"},
        {"name": "hour", "kind": "categorical"},
        {"name": "cate_id", "kind": "categorical", "vocabulary": "cate"},
    ],
    "sequence": [{"name": "hist_cate_id", "static": "cate_id"},
                 {"name": "hist_item_id", "static": "item_id"}],
}
DECLARED_VOCABS = {**VOCABS, "hour": 6}
DECLARED_DIMS = {**DIMS, "hour": 5, "price": 3}


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


def declared_inputs():
    return {**make_inputs(), "price": np.array([14.0, np.nan, 2.0], np.float32),
            "hour": np.array([2, 5, 1], np.int64)}


def table(layer, vocab):
    return keras.ops.convert_to_numpy(layer.tables[vocab].embeddings)


def test_lookups_share_tables_and_mask_padding():
    layer = FeatureEmbedding(vocab_sizes=VOCABS, embedding_dims=DIMS)
    inputs = make_inputs()
    out = layer(inputs)
    users, items, cates = (table(layer, n) for n in ("user", "item", "cate"))
    static = [users[inputs[schema.USER_ID]], items[inputs[schema.ITEM_ID]],
              cates[inputs[schema.CATE_ID]]]
    names = (schema.USER_ID, schema.ITEM_ID, schema.CATE_ID)
    for name, expected in zip(names, static, strict=True):
        np.testing.assert_allclose(out["fields"][name], expected)
    np.testing.assert_allclose(out["static"], np.concatenate(static, axis=-1))
    np.testing.assert_allclose(out["target"], np.concatenate(static[1:], axis=-1))
    mask = inputs[schema.HIST_ITEM_ID] != schema.PAD_ID
    np.testing.assert_array_equal(out["history_mask"], mask)
    expected_history = np.concatenate(
        [items[inputs[schema.HIST_ITEM_ID]], cates[inputs[schema.HIST_CATE_ID]]], axis=-1
    ) * mask[..., None]
    np.testing.assert_allclose(out["history"], expected_history)
    assert out["history"].shape == (3, SEQ_LEN, DIMS["item"] + DIMS["cate"])
    assert out["history_mask"].dtype == "bool"
    # one item table and one category table in total (shared by target and history)
    assert len(layer.trainable_weights) == 3


def test_declared_fields_numeric_standardised_and_missing():
    layer = FeatureEmbedding(DECLARED, DECLARED_VOCABS, DECLARED_DIMS)
    inputs = declared_inputs()
    out = layer(inputs)
    value, missing = (keras.ops.convert_to_numpy(w) for w in layer.numeric_weights["price"])
    z = np.array([1.0, 0.0, -2.0])  # (14 - 10) / 4, missing, (2 - 10) / 4
    price = z[:, None] * value + np.array([0, 1, 0])[:, None] * missing
    np.testing.assert_allclose(out["fields"]["price"], price, rtol=1e-6)
    hour = table(layer, "hour")[inputs["hour"]]
    items, cates = table(layer, "item"), table(layer, "cate")
    expected = np.concatenate([table(layer, "user")[inputs["user_id"]], price,
                               items[inputs["item_id"]], hour, cates[inputs["cate_id"]]], -1)
    np.testing.assert_allclose(out["static"], expected, rtol=1e-6)
    # tokens follow the sequence fields' order: (category, item); the mask the first field's
    np.testing.assert_allclose(out["target"], np.concatenate(
        [cates[inputs["cate_id"]], items[inputs["item_id"]]], -1))
    mask = inputs["hist_cate_id"] != schema.PAD_ID
    np.testing.assert_array_equal(out["history_mask"], mask)
    assert out["static"].shape == (3, 3 + 3 + 4 + 5 + 2)


def test_a_history_only_field_has_its_own_table_and_a_learned_target_part():
    declared = {"static": DECLARED["static"],
                "sequence": [*DECLARED["sequence"], {"name": "hist_btag", "vocabulary": "btag"}]}
    layer = FeatureEmbedding(declared, {**DECLARED_VOCABS, "btag": 6},
                             {**DECLARED_DIMS, "btag": 3})
    btag = np.array([[0, 0, 2, 3, 5], [0, 0, 0, 0, 0], [4, 4, 2, 3, 2]], np.int64)
    out = layer({**declared_inputs(), "hist_btag": btag})
    inputs = declared_inputs()
    items, cates, btags = (table(layer, v) for v in ("item", "cate", "btag"))
    vector = keras.ops.convert_to_numpy(layer.target_vectors["hist_btag"])
    np.testing.assert_allclose(out["target"], np.concatenate(
        [cates[inputs["cate_id"]], items[inputs["item_id"]], np.tile(vector, (3, 1))], -1))
    mask = (inputs["hist_cate_id"] != schema.PAD_ID)[..., None]
    np.testing.assert_allclose(out["history"], np.concatenate(
        [cates[inputs["hist_cate_id"]], items[inputs["hist_item_id"]], btags[btag]], -1) * mask)
    assert out["history"].shape == (3, SEQ_LEN, 2 + 4 + 3)
    assert feature_schema.FeatureSchema.from_dict(declared).vocabularies[-1] == "btag"


def test_padded_positions_ignore_their_category_ids():
    layer = FeatureEmbedding(vocab_sizes=VOCABS, embedding_dims=DIMS)
    inputs = make_inputs()
    changed = dict(inputs)
    cates = inputs[schema.HIST_CATE_ID].copy()
    cates[inputs[schema.HIST_ITEM_ID] == schema.PAD_ID] = 4
    changed[schema.HIST_CATE_ID] = cates
    np.testing.assert_array_equal(layer(inputs)["history"], layer(changed)["history"])


def test_variable_paths_name_embeddings():
    layer = FeatureEmbedding(DECLARED, DECLARED_VOCABS, DECLARED_DIMS, name="features")
    layer(declared_inputs())
    paths = [v.path for v in layer.weights]
    assert len(paths) == 6 and all("embedding" in p for p in paths), paths


def test_rejects_vocab_without_real_ids_and_missing_widths():
    with pytest.raises(ValueError, match="vocabulary 'item' has size 2"):
        FeatureEmbedding(vocab_sizes={**VOCABS, "item": 2}, embedding_dims=DIMS)
    with pytest.raises(ValueError, match="no embedding width for 'price'"):
        FeatureEmbedding(DECLARED, DECLARED_VOCABS, {**DIMS, "hour": 5})
    with pytest.raises(feature_schema.SchemaError, match="history field 'hist_brand'"):
        FeatureEmbedding({**DECLARED, "sequence": [{"name": "hist_brand", "static": "brand"}]},
                         DECLARED_VOCABS, DECLARED_DIMS)


def test_config_and_keras_round_trip(tmp_path):
    layer = FeatureEmbedding(DECLARED, DECLARED_VOCABS, DECLARED_DIMS,
                             embeddings_regularizer="l2")
    assert_config_round_trip(layer)
    features = feature_schema.FeatureSchema.from_dict(DECLARED).record_features()
    inputs = schema.keras_inputs(SEQ_LEN, features)
    outputs = layer(inputs)
    model = keras.Model(inputs, {k: v for k, v in outputs.items() if k != "fields"})
    assert_keras_round_trip(model, declared_inputs(), tmp_path)


def test_xla_compiled_call_matches_eager():
    import tensorflow as tf

    layer = FeatureEmbedding(DECLARED, DECLARED_VOCABS, DECLARED_DIMS)
    inputs = declared_inputs()
    eager = layer(inputs)
    compiled = tf.function(layer.__call__, jit_compile=True)(inputs)
    for key in ("static", "target", "history", "history_mask"):
        np.testing.assert_array_equal(np.asarray(compiled[key]), np.asarray(eager[key]))
