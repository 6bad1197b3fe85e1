import numpy as np
import pyarrow as pa

from pipelines.csv_input import parse_int


def test_parse_int_accepts_plain_decimals_only():
    # Arrow's own cast reads "0x10" as 16; an id column must reject it (found by the fuzz test).
    values, ok = parse_int(pa.array(["0x10", "12", "007", "0X1f", "-3", "1e3", "", None]))
    np.testing.assert_array_equal(ok, [False, True, True, False, True, False, False, False])
    np.testing.assert_array_equal(values[ok], [12, 7, -3])


def test_parse_int_fast_path_keeps_every_value():
    values, ok = parse_int(pa.array([str(v) for v in (0, 1, 2**40, 987654321)]))
    assert ok.all()
    np.testing.assert_array_equal(values, [0, 1, 2**40, 987654321])


def test_parse_int_finds_hexadecimal_in_any_chunk_or_slice():
    chunked = pa.chunked_array([["1", "2"], ["3", "0x4"]])
    np.testing.assert_array_equal(parse_int(chunked)[1], [True, True, True, False])
    sliced = pa.array(["0x9", "5", "6"]).slice(1)
    values, ok = parse_int(sliced)
    assert ok.all() and values.tolist() == [5, 6]
    np.testing.assert_array_equal(parse_int(pa.array([], pa.string()))[1], [])
