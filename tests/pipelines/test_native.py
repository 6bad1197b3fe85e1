import numpy as np
import pytest
import tensorflow as tf

from mdaf_tf.data import schema
from pipelines import native, tfrecord
from pipelines.windows import Windows

lib = native.library()
needs_native = pytest.mark.skipif(lib is None, reason="no C compiler: numpy encoder only")


def _crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def _varint(v: int) -> bytes:
    v &= (1 << 64) - 1  # protobuf: int64 as its two's complement
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


@needs_native
def test_crc32c_matches_bitwise_reference():
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 8, 9, 63, 300):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert lib.crc32c(data, n) == _crc32c_bitwise(data)


@needs_native
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_varint_stream_matches_python_varints(dtype):
    info = np.iinfo(dtype)
    values = np.array([0, 1, 127, 128, 2**14 - 1, 2**14, 2**21 - 1, 2**21, 2**28 - 1, 2**28,
                       info.max, -1, info.min], dtype=dtype)
    stream, offset = native.varint_stream(lib, values)
    expected = [_varint(int(v)) for v in values]
    assert stream.tobytes() == b"".join(expected)
    np.testing.assert_array_equal(np.diff(offset), [len(e) for e in expected])


def _columns(rng, n, seq, base):
    end = rng.integers(0, len(base) + 1, n)
    length = np.minimum(end, rng.integers(0, seq + 1, n))
    cols = {f.name: rng.integers(-2**40, 2**40, n) for f in schema.FEATURES if not f.sequence}
    cols[schema.HIST_ITEM_ID] = Windows(base, end, length, seq)
    cols[schema.HIST_CATE_ID] = Windows(base[::-1].copy(), end, length, seq)
    return cols


@needs_native
@pytest.mark.parametrize("seq", [1, 6])
def test_windows_encode_like_tf_and_like_numpy(tmp_path, seq):
    rng = np.random.default_rng(seq)
    # ids of every varint length, negative ones (10 bytes) included
    base = np.array([2, 127, 128, 300, 2**21, 2**28 + 5, 2**31 - 1, -3, 9, 0], np.int32)
    cols = _columns(rng, 50, seq, base)
    fast = tfrecord.encode_examples(cols, seq)
    assert fast == tfrecord.encode_examples(cols, seq, use_native=False)
    path = tmp_path / "x.tfrecord"
    path.write_bytes(fast)
    records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    assert len(records) == 50
    for i, rec in enumerate(records):
        ex = tf.train.Example()
        for f in schema.FEATURES:
            ex.features.feature[f.name].int64_list.value.extend(
                np.atleast_1d(np.asarray(cols[f.name][i:i + 1])[0]).tolist())
        assert rec == ex.SerializeToString(deterministic=True)


@needs_native
def test_shuffled_and_repeated_windows_share_one_varint_stream():
    rng = np.random.default_rng(5)
    base = rng.integers(0, 10**6, 40).astype(np.int32)
    cols = _columns(rng, 30, 4, base)
    pick = rng.integers(0, 30, 45)  # repeats, like negatives, in shuffled order
    picked = {k: v[pick] for k, v in cols.items()}
    assert tfrecord.encode_examples(picked, 4) == tfrecord.encode_examples(
        {k: np.asarray(v) for k, v in picked.items()}, 4, use_native=False)
    assert picked[schema.HIST_ITEM_ID]._cache is cols[schema.HIST_ITEM_ID]._cache
    assert "varints" in cols[schema.HIST_ITEM_ID]._cache


@needs_native
def test_window_outside_its_base_is_rejected():
    cols = _columns(np.random.default_rng(0), 3, 4, np.arange(5, dtype=np.int32))
    cols[schema.HIST_ITEM_ID] = Windows(np.arange(5, dtype=np.int32), np.array([6, 1, 1]),
                                        np.array([1, 1, 1]), 4)
    with pytest.raises(ValueError, match="outside"):
        tfrecord.encode_examples(cols, 4)
