import numpy as np
import pytest

from mdaf_tf import schema
from pipelines.errors import PipelineError
from pipelines.examples import (
    ExampleBuilder,
    PopularitySampler,
    negatives_per_positive,
    split_boundary,
)
from pipelines.vocab import Vocabulary, group_count


def _identity_vocab(values):
    (keys,), counts = group_count(np.asarray(values))
    return Vocabulary(keys, counts)


def _reference_history(ev, i, seq):
    """Plain Python: the user's history rows strictly earlier in time, ordered by (time,
    file order), last ``seq`` of them."""
    rows = [j for j in range(len(ev["user"]))
            if ev["user"][j] == ev["user"][i] and ev["history"][j] and ev["ts"][j] < ev["ts"][i]]
    rows.sort(key=lambda j: (ev["ts"][j], ev["order"][j]))
    return rows[-seq:]


def test_history_strictly_earlier_ordered_and_left_padded():
    rng = np.random.default_rng(3)
    n, seq = 400, 6
    ev = {"user": rng.integers(0, 8, n), "item": rng.integers(0, 30, n),
          "cate": rng.integers(0, 5, n), "ts": rng.integers(0, 40, n),  # many time ties
          "order": rng.permutation(n), "label": rng.integers(0, 2, n).astype(np.int8),
          "target": rng.random(n) < 0.7}
    ev["history"] = ev["label"] == 1
    vocabs = {schema.USER_VOCAB: _identity_vocab(ev["user"]),
              schema.ITEM_VOCAB: _identity_vocab(ev["item"]),
              schema.CATE_VOCAB: _identity_vocab(ev["cate"])}
    b = ExampleBuilder(vocabs=vocabs, boundary=10**9, max_seq_len=seq, sampler=None,
                       neg_ratio=0, seed=0, chunk_size=37)
    out = [c for split, c in b.build(dict(ev))]
    got = {k: np.concatenate([c[k] for c in out]) for k in out[0]}
    expected = []
    for i in np.flatnonzero(ev["target"]):
        rows = _reference_history(ev, i, seq)
        items = vocabs["item"].lookup(ev["item"][rows]).tolist()
        cates = vocabs["cate"].lookup(ev["cate"][rows]).tolist()
        pad = [0] * (seq - len(rows))
        expected.append((int(vocabs["user"].lookup([ev["user"][i]])[0]), int(ev["ts"][i]),
                         int(vocabs["item"].lookup([ev["item"][i]])[0]), int(ev["label"][i]),
                         tuple(pad + items), tuple(pad + cates), len(rows)))
    actual = [(u, t, it, lab, tuple(hi), tuple(hc), hl) for u, t, it, lab, hi, hc, hl in zip(
        got["user_id"].tolist(), got["timestamp"].tolist(), got["item_id"].tolist(),
        got["label"].tolist(), got["hist_item_id"].tolist(), got["hist_cate_id"].tolist(),
        got["hist_len"].tolist(), strict=True)]
    assert sorted(actual) == sorted(expected)
    assert (got["hist_len"] < seq).any() and (got["hist_len"] == seq).any()


def test_split_boundary_fraction_ties_and_override():
    ts = np.array([1, 2, 3, 4, 5])
    w = np.array([10, 10, 10, 10, 10])
    assert split_boundary(ts, w, 0.2) == 5
    assert split_boundary(ts, w, 0.3) == 4  # 15 wanted: ties at 4 go to validation
    assert split_boundary(ts, w, 0.0) == 6
    assert split_boundary(ts, w, 0.2, val_start=2) == 2
    with pytest.raises(PipelineError):
        split_boundary(ts[:0], w[:0], 0.2)


@pytest.mark.parametrize("ratio", [0.5, 1.0, 1.5, 2.7])
def test_negative_counts_hit_ratio(ratio):
    counts = negatives_per_positive(0, 1000, ratio)
    assert abs(counts.sum() / 1000 - ratio) <= 0.001
    assert set(counts.tolist()) <= {int(np.floor(ratio)), int(np.ceil(ratio))}
    # continuing from an offset keeps the running total exact
    assert (negatives_per_positive(0, 600, ratio).sum()
            + negatives_per_positive(600, 400, ratio).sum()) == counts.sum()


def test_sampler_follows_popularity_and_avoids_positive():
    items = np.array([2, 3, 4])
    counts = np.array([70, 20, 10])
    cate_of_item = np.array([0, 0, 9, 8, 7])
    s = PopularitySampler(items, counts, cate_of_item)
    rng = np.random.default_rng(0)
    positives = np.full(20000, 2)
    drawn = s.sample(positives, rng)
    assert not (drawn == positives).any()
    share3 = np.mean(drawn == 3)
    assert abs(share3 - 20 / 30) < 0.02  # popularity renormalised without item 2
    free = s.sample(np.full(20000, 99), rng)
    assert abs(np.mean(free == 2) - 0.7) < 0.02
    with pytest.raises(PipelineError):
        PopularitySampler(items[:1], counts[:1], cate_of_item)
