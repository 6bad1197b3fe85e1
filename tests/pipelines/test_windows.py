import numpy as np

from pipelines.windows import Windows


def test_array_is_left_padded_last_values_before_end():
    base = np.array([10, 11, 12, 13, 14], np.int32)
    w = Windows(base, end=np.array([0, 2, 5, 5]), length=np.array([0, 2, 3, 1]), width=3)
    expected = [[0, 0, 0], [0, 10, 11], [12, 13, 14], [0, 0, 14]]
    np.testing.assert_array_equal(np.asarray(w), expected)
    assert w.shape == (4, 3) and len(w) == 4


def test_indexing_selects_rows_and_keeps_the_shared_cache():
    base = np.arange(2, 12, dtype=np.int32)
    w = Windows.over(base, 2).at(np.array([3, 7, 10]), np.array([2, 1, 2]))
    full = np.asarray(w)
    for key in (np.array([2, 0, 0]), np.array([True, False, True]), slice(1, 3)):
        np.testing.assert_array_equal(np.asarray(w[key]), full[key])
        assert w[key]._cache is w._cache
    calls = []
    assert w.cached("x", lambda b: calls.append(1) or len(b)) == 10
    assert w[np.array([1])].cached("x", lambda b: calls.append(1)) == 10
    assert calls == [1]
