from collections import Counter

import numpy as np

from mdaf_tf.data import schema
from pipelines.vocab import CountAccumulator, Vocabulary, group_count


def test_group_count_matches_counter():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 300), rng.integers(0, 3, 300)
    (ka, kb), counts = group_count(a, b)
    assert dict(zip(zip(ka.tolist(), kb.tolist(), strict=True), counts.tolist(),
                    strict=True)) == Counter(zip(a.tolist(), b.tolist(), strict=True))
    assert list(zip(ka, kb, strict=True)) == sorted(zip(ka, kb, strict=True))


def test_accumulator_merges_chunks():
    rng = np.random.default_rng(1)
    acc, total = CountAccumulator(), Counter()
    for _ in range(12):
        x = rng.integers(0, 50, 100)
        acc.add(x)
        total.update(x.tolist())
    keys, counts = acc.result_tuple()
    assert dict(zip(keys.tolist(), counts.tolist(), strict=True)) == total


def test_order_by_frequency_then_id_min_count_and_oov():
    keys = np.array([3, 5, 7, 9, 11])
    counts = np.array([2, 5, 2, 1, 5])
    v = Vocabulary(keys, counts, min_count=2)
    # 5 and 11 (count 5, ascending id), then 3 and 7 (count 2); 9 is below min_count
    assert v.raw.tolist() == [5, 11, 3, 7]
    assert v.size == 4 + 2
    dense = v.lookup(np.array([5, 11, 3, 7, 9, 12345]))
    assert dense.tolist() == [2, 3, 4, 5, schema.OOV_ID, schema.OOV_ID]


def test_string_names_written_in_dense_order(tmp_path):
    names = np.array(["a", "b", "c"])
    v = Vocabulary(np.array([0, 1, 2]), np.array([1, 3, 3]), names=names)
    v.write(tmp_path / "v.txt")
    assert (tmp_path / "v.txt").read_text().split("\n") == ["b", "c", "a", ""]
