"""The exported signatures under bad input: out-of-range, negative, unknown and string ids,
histories longer than the schema, wrong dtypes, out-of-range ``hist_len`` and empty batches.

Each either gives the answer of the Keras model on the ids the export should map them to
(unknown -> OOV, padding -> PAD) or fails with an error naming the problem; never NaN.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from mdaf_tf import export
from mdaf_tf.data import schema
from mdaf_tf.models.config import ModelConfig

sys.path.insert(0, str(Path(__file__).resolve().parent / "training"))
from tiny_run import _raw_ids, tiny_model, write_dataset  # noqa: E402

SEQ = 6
SIZES = {"user": 20, "item": 30, "cate": 5}
CALL_ERRORS = (TypeError, ValueError, tf.errors.InvalidArgumentError)


def build(tmp_path_factory, id_dtype):
    root = tmp_path_factory.mktemp(f"serving-{id_dtype}")
    data_dir = write_dataset(root / "data", n_train=64, n_val=16, max_seq_len=SEQ,
                             id_dtype=id_dtype, **{f"n_{k}s": v for k, v in SIZES.items()})
    config = ModelConfig(max_seq_len=SEQ, dropout=0.0,
                         vocab_sizes={k: v + schema.FIRST_ID for k, v in SIZES.items()})
    model = tiny_model("tiny", config)
    path = export.export_model(model, config, "tiny", data_dir, root / "saved")
    return model, tf.saved_model.load(str(path))


@pytest.fixture(scope="module")
def int_export(tmp_path_factory):
    return build(tmp_path_factory, "int64")


@pytest.fixture(scope="module")
def string_export(tmp_path_factory):
    return build(tmp_path_factory, "string")


def known(kind, dtype, n):
    return _raw_ids(kind, SIZES[kind], dtype)[:n]


def dense_of(kind, dtype, raw):
    """The dense id the export must use: vocabulary line + FIRST_ID, else OOV."""
    table = {v: i + schema.FIRST_ID for i, v in enumerate(_raw_ids(kind, SIZES[kind], dtype))}
    return table.get(raw, schema.OOV_ID)


def raw_batch(users, items, cates, hist_items, hist_cates, hist_len, dtype):
    tf_dtype = tf.string if dtype == "string" else tf.int64
    return {
        schema.USER_ID: tf.constant(users, tf_dtype),
        schema.ITEM_ID: tf.constant(items, tf_dtype),
        schema.CATE_ID: tf.constant(cates, tf_dtype),
        schema.HIST_ITEM_ID: tf.constant(hist_items, tf_dtype, shape=(len(users), SEQ)),
        schema.HIST_CATE_ID: tf.constant(hist_cates, tf_dtype, shape=(len(users), SEQ)),
        schema.HIST_LEN: tf.constant(hist_len, tf.int64),
    }


def expected(model, users, items, cates, hist_items, hist_cates, hist_len, dtype):
    """The Keras model on the dense ids the export should produce (hist_len clipped,
    positions before the last hist_len and padding values -> PAD)."""
    pad = export.pad_value(tf.string if dtype == "string" else tf.int64)
    n = len(users)
    length = np.clip(np.asarray(hist_len), 0, SEQ)
    valid = np.arange(SEQ)[None, :] >= (SEQ - length[:, None])

    def hist(kind, values):
        out = np.full((n, SEQ), schema.PAD_ID, np.int64)
        for r in range(n):
            for c in range(SEQ):
                if valid[r, c] and values[r][c] != pad:
                    out[r, c] = dense_of(kind, dtype, values[r][c])
        return out

    features = {
        schema.USER_ID: np.array([dense_of("user", dtype, u) for u in users]),
        schema.ITEM_ID: np.array([dense_of("item", dtype, i) for i in items]),
        schema.CATE_ID: np.array([dense_of("cate", dtype, c) for c in cates]),
        schema.HIST_ITEM_ID: hist("item", hist_items),
        schema.HIST_CATE_ID: hist("cate", hist_cates),
        schema.HIST_LEN: length.astype(np.int64),
    }
    return np.asarray(model(features, training=False)["probability"]).reshape(-1)


def check(model, loaded, dtype, *columns):
    got = loaded.signatures["serving_default"](**raw_batch(*columns, dtype))
    probability = got["probability"].numpy()
    assert np.isfinite(probability).all() and np.isfinite(got["gate"].numpy()).all()
    np.testing.assert_allclose(probability, expected(model, *columns, dtype), atol=1e-6)
    return probability


def test_unknown_out_of_range_and_negative_int_ids_are_oov(int_export):
    model, loaded = int_export
    u, i, c = known("user", "int64", 1)[0], known("item", "int64", 1)[0], 0
    weird = [2**62, -5, -2**63, 123456789, 0, 1]  # never in the vocabularies
    n = len(weird)
    hist_items = [[i] * SEQ for _ in range(n)]
    hist_cates = [[weird[r]] * SEQ for r in range(n)]
    probability = check(model, loaded, "int64", weird, [i] * n, [c] * n, hist_items,
                        hist_cates, [SEQ] * n)
    # every unknown id is the same OOV row, so the unknown users all score alike
    assert np.ptp(probability) < 1e-6
    known_user = check(model, loaded, "int64", [u], [i], [c], hist_items[:1], hist_cates[:1],
                       [SEQ])
    assert known_user.shape == (1,)


def test_hist_len_out_of_range_is_clipped(int_export):
    model, loaded = int_export
    items = known("item", "int64", 4)
    hist = [items[:2] * 3] * 4
    check(model, loaded, "int64", known("user", "int64", 4), items, [3, 2, 1, 0], hist, hist,
          [-3, 0, SEQ + 5, 2**40])


def test_padding_values_inside_the_history_are_padding(int_export):
    model, loaded = int_export
    items = known("item", "int64", 2)
    hist = [[export.INT_PAD, items[0], export.INT_PAD, items[1], items[0], export.INT_PAD]] * 2
    check(model, loaded, "int64", known("user", "int64", 2), items, [0, 1], hist, hist,
          [SEQ, 3])


def test_empty_batch_gives_empty_outputs(int_export):
    _, loaded = int_export
    got = loaded.signatures["serving_default"](**raw_batch([], [], [], [], [], [], "int64"))
    assert got["probability"].shape == (0,) and got["gate"].shape == (0,)
    examples = loaded.signatures["predict_examples"](examples=tf.constant([], tf.string))
    assert examples["probability"].shape == (0,)


def test_history_longer_than_the_schema_is_an_error(int_export):
    _, loaded = int_export
    inputs = raw_batch([1], [1], [1], [[1] * SEQ], [[1] * SEQ], [1], "int64")
    inputs[schema.HIST_ITEM_ID] = tf.ones((1, SEQ + 1), tf.int64)
    with pytest.raises(CALL_ERRORS, match=r"hist_item_id|shape|\(None, 6\)"):
        loaded.signatures["serving_default"](**inputs)


@pytest.mark.parametrize("bad", ["string_into_int", "int32", "float"])
def test_wrong_dtype_is_an_error(int_export, bad):
    _, loaded = int_export
    inputs = raw_batch([1], [1], [1], [[1] * SEQ], [[1] * SEQ], [1], "int64")
    inputs[schema.USER_ID] = {
        "string_into_int": tf.constant(["1001"]),
        "int32": tf.constant([1001], tf.int32),
        "float": tf.constant([1001.0]),
    }[bad]
    with pytest.raises(CALL_ERRORS, match=r"user_id|int64|dtype|DType"):
        loaded.signatures["serving_default"](**inputs)


def test_string_ids_unknown_and_empty_are_oov_or_padding(string_export):
    model, loaded = string_export
    users = known("user", "string", 2) + ["no-such-user", "ü\u0000\U0001F600"]
    items = known("item", "string", 4)
    hist = [[export.STRING_PAD, items[0], "unknown-item", items[1], "", items[2]]] * 4
    cates = known("cate", "string", 4)
    check(model, loaded, "string", users, items, cates, hist, hist, [SEQ, 4, 0, 2])


def test_int_ids_into_a_string_export_is_an_error(string_export):
    _, loaded = string_export
    inputs = raw_batch(["a"], ["b"], ["c"], [[""] * SEQ], [[""] * SEQ], [0], "string")
    inputs[schema.ITEM_ID] = tf.constant([7], tf.int64)
    with pytest.raises(CALL_ERRORS, match=r"item_id|string|dtype|DType"):
        loaded.signatures["serving_default"](**inputs)


def _example(**features):
    def feature(values):
        values = list(np.atleast_1d(values))
        if isinstance(values[0], (bytes, str)):
            return tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[v.encode() if isinstance(v, str) else v for v in values]))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))

    return tf.train.Example(features=tf.train.Features(
        feature={k: feature(v) for k, v in features.items()})).SerializeToString()


def test_predict_examples_bad_protos_fail_clearly_and_good_ones_match(int_export):
    model, loaded = int_export
    signature = loaded.signatures["predict_examples"]
    u, i = known("user", "int64", 1)[0], known("item", "int64", 1)[0]
    good = _example(user_id=u, item_id=i, cate_id=-9)  # no history: empty; cate unknown
    got = signature(examples=tf.constant([good]))["probability"].numpy()
    want = expected(model, [u], [i], [-9], [[export.INT_PAD] * SEQ], [[export.INT_PAD] * SEQ],
                    [0], "int64")
    np.testing.assert_allclose(got, want, atol=1e-6)
    # TF's Python wrapper re-raises an op error whose message quotes non-UTF-8 bytes as
    # UnicodeDecodeError (TF Serving's C++ returns INVALID_ARGUMENT); either is a failure.
    with pytest.raises((tf.errors.InvalidArgumentError, UnicodeDecodeError)):
        signature(examples=tf.constant([good, b"\xff\x00garbage"]))
    bad_inputs = {
        "not a proto": b"plain text, not a tf.train.Example",
        "missing item_id": _example(user_id=u, cate_id=1),
        "history too long": _example(user_id=u, item_id=i, cate_id=1,
                                     hist_item_id=[i] * (SEQ + 2), hist_len=1),
        "string id": _example(user_id="abc", item_id=i, cate_id=1),
    }
    for name, proto in bad_inputs.items():
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"."):
            signature(examples=tf.constant([good, proto]))
            pytest.fail(f"{name}: accepted")
