"""Vectorised ``tf.train.Example`` encoding and GZIP TFRecord shard writing.

Building one ``tf.train.Example`` per row in Python costs microseconds per row, which is
far too slow for the 100M-row Tianchi file. Every example here has the same structure
(int64 features only, fixed lengths), so the protobuf wire format is produced for a whole
batch at once with numpy: each row is a fixed sequence of constant bytes (field tags, keys)
and varints (values and the nested message lengths). Map keys are written sorted, as
``tf.train.Example.SerializeToString(deterministic=True)`` does. TFRecord framing
(little-endian length, masked CRC-32C of the length, data, masked CRC-32C of the data)
is computed vectorised too; ``pipelines.output`` gzips the records.

The compiled encoder of ``pipelines.native`` produces the same bytes much faster and is
used whenever it can be built; this module's numpy encoder is the fallback and the
reference the tests compare it with.
"""

from __future__ import annotations

import numpy as np

from mdaf_tf.data import schema
from pipelines import native
from pipelines.windows import Windows

_CRC32C_POLY = 0x82F63B78  # reflected Castagnoli polynomial
_MASK_DELTA = 0xA282EAD8
_HEADER = 12  # uint64 length + uint32 masked crc of the length
_FOOTER = 4  # uint32 masked crc of the data
_BLOCK = 4096  # rows encoded at once


def _byte_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_CRC32C_POLY), table >> 1)
    return table.astype(np.uint32)


_T8 = _byte_table()


def _advance_zero(state: np.ndarray, nbytes: int) -> np.ndarray:
    """Run the reflected CRC register through ``nbytes`` zero bytes (vectorised)."""
    state = state.astype(np.uint32)
    for _ in range(nbytes):
        state = _T8[state & 0xFF] ^ (state >> 8)
    return state


# The CRC is linear: feeding 4 bytes w to state s gives advance4(s ^ w), and advance4 of a
# 32-bit value splits into its low and high 16-bit halves.
_LO16 = _advance_zero(np.arange(65536, dtype=np.uint32), 4)
_HI16 = _advance_zero(np.arange(65536, dtype=np.uint32) << 16, 4)
_INIT_SHIFT_CACHE: dict[int, np.ndarray] = {}


def _init_shift(max_len: int) -> np.ndarray:
    """``out[n]`` = register after feeding n zero bytes from the initial value 0xFFFFFFFF."""
    cached = _INIT_SHIFT_CACHE.get(0)
    if cached is None or len(cached) <= max_len:
        out = np.empty(max(max_len + 1, 4096), dtype=np.uint32)
        state = np.array([0xFFFFFFFF], dtype=np.uint32)
        for n in range(len(out)):
            out[n] = state[0]
            state = _T8[state & 0xFF] ^ (state >> 8)
        _INIT_SHIFT_CACHE[0] = cached = out
    return cached


def crc32c_rows(matrix: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """CRC-32C of each row's last ``lengths[i]`` bytes of a right-aligned uint8 matrix.

    The bytes left of each message must be zero: a zero register stays zero on zero
    bytes, so every row is run from the first column with register 0 and the effect of the
    standard initial value (which only depends on the length) is XORed in afterwards.
    """
    n, width = matrix.shape
    pad = (-width) % 4
    if pad:
        matrix = np.concatenate([np.zeros((n, pad), np.uint8), matrix], axis=1)
    words = np.ascontiguousarray(matrix).view("<u4")
    state = np.zeros(n, dtype=np.uint32)
    first = (matrix.shape[1] - int(lengths.max(initial=0))) // 4 if n else 0
    for j in range(first, words.shape[1]):
        state ^= words[:, j]
        state = _LO16[state & 0xFFFF] ^ _HI16[state >> 16]
    return state ^ _init_shift(int(lengths.max(initial=0)))[lengths] ^ np.uint32(0xFFFFFFFF)


def crc32c(data: bytes) -> int:
    """CRC-32C of one byte string (reference for tests and for small inputs)."""
    row = np.frombuffer(data, dtype=np.uint8)[None, :]
    return int(crc32c_rows(row, np.array([len(data)]))[0])


def _mask(crc: np.ndarray) -> np.ndarray:
    crc = crc.astype(np.uint32)
    return (((crc >> 15) | (crc << 17)) + np.uint32(_MASK_DELTA)).astype(np.uint32)


def _unsigned(values: np.ndarray) -> np.ndarray:
    """Non-negative int32 stays 32-bit (cheaper); everything else becomes the uint64
    two's-complement view protobuf encodes."""
    values = np.asarray(values)
    if values.dtype == np.int32 and (values.size == 0 or values.min() >= 0):
        return values.view(np.uint32)
    return values.astype(np.int64, copy=False).view(np.uint64)


def _varint_len(values: np.ndarray) -> np.ndarray:
    v = _unsigned(values)
    top = int(v.max()) if v.size else 0
    out = np.ones(v.shape, dtype=np.int8)
    k = 1
    while k < 10 and top >= (1 << (7 * k)):
        out += v >= v.dtype.type(1 << (7 * k))
        k += 1
    return out


def _feature_layout(max_seq_len: int, features=schema.FEATURES):
    """Per feature, in key order: (name, key bytes, values per row, is float32)."""
    layout = []
    for f in sorted(features, key=lambda f: f.name.encode()):
        key = f.name.encode()
        if len(key) > 127:
            raise ValueError(f"feature name too long: {f.name}")
        width = max_seq_len if f.sequence else 1
        layout.append((f.name, key, width, f.dtype == "float32"))
    return layout


# _CONT[w][len]: continuation bits of a len-byte varint packed little-endian into w bytes;
# _VALID[w][len]: 0x01 in each of its len bytes (viewed as bool, the byte mask).
_CONT = {w: np.array([sum(0x80 << (8 * k) for k in range(n - 1)) for n in range(w + 1)],
                     dtype=np.uint32 if w == 4 else np.uint64) for w in (4, 8)}
_VALID = {w: np.array([sum(1 << (8 * k) for k in range(n)) for n in range(w + 1)],
                      dtype=np.uint32 if w == 4 else np.uint64) for w in (4, 8)}


def _varint_bytes(values: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Varint bytes of an ``(n, k)`` uint64 array as ``(n, k * w)`` bytes and validity mask.

    Each value's 7-bit groups are packed into one little-endian machine word (4 bytes when
    every value needs at most 4, else 8), whose bytes are then the varint's bytes.
    """
    n, k = values.shape
    w = int(lens.max()) if values.size else 1
    if w <= 4:
        v = values.astype(np.uint32)
        word = np.uint32
        width = 4
    elif w <= 8:
        v = values.astype(np.uint64)
        word = np.uint64
        width = 8
    else:
        return _varint_bytes_wide(values.astype(np.uint64), lens)
    packed = v & word(0x7F)
    for g in range(1, w):
        packed |= ((v >> word(7 * g)) & word(0x7F)) << word(8 * g)
    packed |= _CONT[width][lens]
    # all `width` bytes are kept (the mask drops the unused ones): slicing would copy
    return (packed.view(np.uint8).reshape(n, k * width),
            _VALID[width][lens].view(np.bool_).reshape(n, k * width))


def _varint_bytes_wide(values: np.ndarray, lens: np.ndarray):
    """Fallback for values needing 9 or 10 bytes (negative int64s, huge ids)."""
    n, k = values.shape
    pos = np.arange(10)
    shifts = (pos * 7).astype(np.uint64)
    groups = ((values[:, :, None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
    groups |= (pos < (lens[:, :, None] - 1)).astype(np.uint8) << 7
    return groups.reshape(n, k * 10), (pos < lens[:, :, None]).reshape(n, k * 10)


def encode_buffer(columns: dict, max_seq_len: int, features=schema.FEATURES):
    """Like ``encode_examples`` but may return a uint8 array (no copy into ``bytes``)."""
    n = len(columns[schema.LABEL])
    lib = native.library()
    if lib is not None:
        return _encode_native(lib, columns, max_seq_len, n, features)
    return encode_examples(columns, max_seq_len, use_native=False, features=features)


def encode_examples(columns: dict, max_seq_len: int, *, use_native: bool = True,
                    features=schema.FEATURES) -> bytes:
    """Serialise rows to framed TFRecord bytes (uncompressed).

    Every row is laid out as a sequence of fixed-width byte segments with a validity mask
    (constant bytes: all valid; a varint: its first ``len`` bytes), so one boolean selection
    of the row-major matrix yields all records back to back.

    Args:
        columns: every name in ``features`` -> int64 array (float32 for float32 features,
            written as a FloatList), shape ``(n,)`` or ``(n, max_seq_len)`` for sequence
            features (or ``Windows``).
        max_seq_len: history length.
        use_native: use the compiled encoder when it is available (same bytes).
        features: the record's features (``FeatureSchema.record_features()``).

    Returns:
        The concatenated TFRecord records, one ``tf.train.Example`` each, in row order.
    """
    n = len(columns[schema.LABEL])
    lib = native.library() if use_native else None
    if lib is not None:
        return _encode_native(lib, columns, max_seq_len, n, features).tobytes()
    columns = {k: np.asarray(v) if isinstance(v, Windows) else v for k, v in columns.items()}
    if n > _BLOCK:  # blocks of a few MiB stay in cache
        return b"".join(encode_examples({k: v[i:i + _BLOCK] for k, v in columns.items()},
                                        max_seq_len, use_native=False, features=features)
                        for i in range(0, n, _BLOCK))
    if n == 0:
        return b""
    byte_segs: list[np.ndarray] = []
    mask_segs: list[np.ndarray] = []

    def const(data: bytes):
        byte_segs.append(np.broadcast_to(np.frombuffer(data, np.uint8), (n, len(data))))
        mask_segs.append(np.broadcast_to(np.True_, (n, len(data))))

    def varint(values: np.ndarray, lens: np.ndarray | None = None):
        values = _unsigned(values.reshape(n, -1))
        lens = _varint_len(values) if lens is None else lens.reshape(n, -1)
        b, m = _varint_bytes(values, lens)
        byte_segs.append(b)
        mask_segs.append(m)

    features_len = np.zeros(n, dtype=np.int64)
    pieces = []
    for name, key, width, is_float in _feature_layout(max_seq_len, features):
        if is_float:  # packed little-endian float32s: a fixed size
            values = np.asarray(columns[name], "<f4").reshape(n, width)
            value_lens = None
            packed = np.full(n, 4 * width, np.int64)
        else:
            values = _unsigned(np.asarray(columns[name]).reshape(n, width))
            value_lens = _varint_len(values)
            packed = value_lens.sum(axis=1, dtype=np.int64)
        value_list = 1 + _varint_len(packed) + packed
        feature = 1 + _varint_len(value_list) + value_list
        entry = 2 + len(key) + 1 + _varint_len(feature) + feature
        features_len += 1 + _varint_len(entry) + entry
        pieces.append((key, values, value_lens, packed, value_list, feature, entry))
    data_len = 1 + _varint_len(features_len) + features_len
    const(b"\x0a")
    varint(features_len)
    for key, values, value_lens, packed, value_list, feature, entry in pieces:
        const(b"\x0a")
        varint(entry)
        const(b"\x0a" + bytes([len(key)]) + key + b"\x12")
        varint(feature)
        const(b"\x1a" if value_lens is not None else b"\x12")  # Int64List or FloatList
        varint(value_list)
        const(b"\x0a")
        varint(packed)
        if value_lens is None:
            byte_segs.append(np.ascontiguousarray(values).view(np.uint8).reshape(n, -1))
            mask_segs.append(np.broadcast_to(np.True_, (n, 4 * values.shape[1])))
        else:
            varint(values, value_lens)
    data = np.concatenate(byte_segs, axis=1)[np.concatenate(mask_segs, axis=1)]

    max_data = int(data_len.max())
    aligned_mask = np.arange(max_data)[None, :] >= (max_data - data_len)[:, None]
    aligned = np.zeros((n, max_data), dtype=np.uint8)
    aligned[aligned_mask] = data
    data_crc = _mask(crc32c_rows(aligned, data_len))
    len_bytes = data_len.astype("<u8").view(np.uint8).reshape(n, 8)
    len_crc = _mask(crc32c_rows(len_bytes, np.full(n, 8)))
    framed = np.concatenate([
        len_bytes, len_crc.astype("<u4").view(np.uint8).reshape(n, 4), aligned,
        data_crc.astype("<u4").view(np.uint8).reshape(n, 4)], axis=1)
    keep = np.concatenate([
        np.ones((n, _HEADER), bool), aligned_mask, np.ones((n, _FOOTER), bool)], axis=1)
    return framed[keep].tobytes()


def _native_array(values, n: int, width: int) -> np.ndarray:
    a = np.asarray(values)
    if a.dtype not in (np.int32, np.int64):
        a = a.astype(np.int64)
    a = np.ascontiguousarray(a).reshape(-1)
    if len(a) != n * width:
        raise ValueError(f"expected {n} x {width} values, got shape {np.shape(values)}")
    return a


def _encode_native(lib, columns: dict, max_seq_len: int, n: int,
                   features=schema.FEATURES) -> np.ndarray:
    if n == 0:
        return np.zeros(0, np.uint8)
    layout = _feature_layout(max_seq_len, features)
    feats = (native.Feature * len(layout))()
    keep = []  # arrays the structs point into
    bound = 0
    for j, (name, key, width, is_float) in enumerate(layout):
        col = columns[name]
        f = feats[j]
        if is_float:
            a = np.ascontiguousarray(np.asarray(col, "<f4")).reshape(-1)
            if len(a) != n * width:
                raise ValueError(f"expected {n} x {width} values, got shape {np.shape(col)}")
            f.data, f.end, f.len, f.offset = a.ctypes.data, None, None, None
            keep.append(a)
            itemsize = -4  # float32, written as they are
        elif isinstance(col, Windows):
            if col.width != width or len(col) != n:
                raise ValueError(f"{name}: {len(col)} windows of width {col.width}, "
                                 f"expected {n} of width {width}")
            stream, offset = col.cached("varints", lambda b: native.varint_stream(lib, b))
            end = np.ascontiguousarray(col.end, dtype=np.int64)
            length = np.ascontiguousarray(col.length, dtype=np.int64)
            if (length.min() < 0 or length.max() > width or (end - length).min() < 0
                    or end.max() >= len(offset)):
                raise ValueError(f"{name}: window outside its base array")
            f.data, f.end, f.len = stream.ctypes.data, end.ctypes.data, length.ctypes.data
            f.offset = offset.ctypes.data
            keep += [stream, offset, end, length]
            itemsize = 4  # unused for windows
        else:
            a = _native_array(col, n, width)
            f.data, f.end, f.len, f.offset = a.ctypes.data, None, None, None
            keep.append(a)
            itemsize = a.itemsize
        f.width, f.elsize, f.key, f.keylen = width, itemsize, key, len(key)
        bound += 2 + len(key) + 4 * 11 + 10 * width
    bound += 12 + 11 + 4
    scratch = np.empty(bound, np.uint8)
    out = np.empty(bound * n, np.uint8)  # untouched pages are never committed
    used = lib.encode_records(n, len(layout), feats, out.ctypes.data, scratch.ctypes.data)
    if used < 0:
        raise ValueError("too many features for the native encoder")
    return out[:used]
