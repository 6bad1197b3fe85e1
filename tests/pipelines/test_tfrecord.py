import numpy as np
import pytest
import tensorflow as tf

from mdaf_tf.data import schema
from pipelines import tfrecord


def _crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def test_crc32c_known_vector_and_bitwise_reference():
    assert tfrecord.crc32c(b"123456789") == 0xE3069283
    rng = np.random.default_rng(1)
    for n in (0, 1, 3, 4, 5, 17, 100):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert tfrecord.crc32c(data) == _crc32c_bitwise(data)


def _random_columns(rng, n, seq):
    cols = {}
    for f in schema.FEATURES:
        shape = (n, seq) if f.sequence else (n,)
        # spread of magnitudes so every varint length from 1 to 10 bytes occurs
        cols[f.name] = (rng.integers(0, 2**62, shape) >> rng.integers(0, 62, shape)).astype(
            np.int64)
    cols[schema.TIMESTAMP][:3] = [-1, 0, np.iinfo(np.int64).min]
    cols[schema.HIST_ITEM_ID][0, :2] = 0
    return cols


@pytest.mark.parametrize("seq", [1, 7])
def test_encoded_records_equal_tf_serialization(tmp_path, seq):
    rng = np.random.default_rng(seq)
    n = 40
    cols = _random_columns(rng, n, seq)
    path = tmp_path / "x.tfrecord"
    path.write_bytes(tfrecord.encode_examples(cols, seq))
    records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    assert len(records) == n
    for i, rec in enumerate(records):
        ex = tf.train.Example()
        for f in schema.FEATURES:
            ex.features.feature[f.name].int64_list.value.extend(
                np.atleast_1d(cols[f.name][i]).tolist())
        assert rec == ex.SerializeToString(deterministic=True)
    parsed = tf.io.parse_example(records, schema.parse_spec(seq))
    for name, values in cols.items():
        np.testing.assert_array_equal(parsed[name].numpy(), values)


def test_empty_batch_encodes_to_nothing():
    cols = {f.name: np.zeros((0, 3) if f.sequence else (0,), np.int64)
            for f in schema.FEATURES}
    assert tfrecord.encode_examples(cols, 3) == b""


@pytest.mark.parametrize("use_native", [False, True])
def test_declared_float_fields_equal_tf_serialization(tmp_path, use_native):
    from mdaf_tf.data import feature_schema

    declared = feature_schema.FeatureSchema.from_dict({
        "static": [{"name": "user_id", "vocabulary": "user"},
                   {"name": "price", "kind": "numeric", "mean": 1.0, "std": 2.0},
                   {"name": "brand"}, {"name": "age", "kind": "numeric"}],
        "sequence": [{"name": "hist_brand", "static": "brand"}]})
    features = declared.record_features()
    rng = np.random.default_rng(3)
    n, seq = 30, 4
    cols = {f.name: rng.integers(0, 2**40, (n, seq) if f.sequence else (n,)) for f in features}
    cols["price"] = rng.normal(size=n).astype(np.float32)
    cols["price"][:3] = [np.nan, np.inf, -0.0]
    cols["age"] = rng.integers(0, 90, n).astype(np.float64)  # any float dtype becomes float32
    data = tfrecord.encode_examples(cols, seq, use_native=use_native, features=features)
    path = tmp_path / "x.tfrecord"
    path.write_bytes(data)
    records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    for i, rec in enumerate(records):
        ex = tf.train.Example()
        for f in features:
            values = np.atleast_1d(cols[f.name][i]).tolist()
            target = ex.features.feature[f.name]
            (target.float_list if f.dtype == "float32" else target.int64_list).value.extend(values)
        assert rec == ex.SerializeToString(deterministic=True)
    parsed = tf.io.parse_example(records, schema.parse_spec(seq, features))
    np.testing.assert_array_equal(parsed["price"].numpy(), cols["price"])
    np.testing.assert_array_equal(parsed["hist_brand"].numpy(), cols["hist_brand"])
