import numpy as np
import pytest

from mdaf_tf.data import schema
from pipelines.errors import PipelineError
from pipelines.examples import (
    ExampleBuilder,
    PeriodSampler,
    negatives_per_positive,
    split_boundaries,
    split_codes,
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
    b = ExampleBuilder(vocabs=vocabs, boundaries=(10**9, 10**9), max_seq_len=seq,
                       samplers=None, neg_ratio=0, seed=0, chunk_size=37)
    out = [c for split, c in b.build(dict(ev))]
    got = {k: np.concatenate([c[k] for c in out]) for k in out[0]}
    np.testing.assert_array_equal(np.sort(got["user_key"]), np.sort(ev["user"][ev["target"]]))
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


def test_split_boundaries_latest_shares_ties_and_overrides():
    ts = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    w = np.full(10, 10)
    assert split_boundaries(ts, w, 0.2, 0.1) == (8, 10)
    assert split_boundaries(ts, w, 0.15, 0.15) == (7, 9)  # 15 wanted: ties go later
    assert split_boundaries(ts, w, 0.0, 0.0) == (11, 11)
    assert split_boundaries(ts, w, 0.2, 0.1, val_start=2) == (2, 10)
    assert split_boundaries(ts, w, 0.2, 0.1, test_start=6) == (4, 6)
    np.testing.assert_array_equal(split_codes(ts, (4, 6)), [0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    with pytest.raises(PipelineError, match="below 1"):
        split_boundaries(ts, w, 0.5, 0.5)
    with pytest.raises(PipelineError, match="after the test"):
        split_boundaries(ts, w, 0.2, 0.1, val_start=9, test_start=5)
    with pytest.raises(PipelineError):
        split_boundaries(ts[:0], w[:0], 0.2, 0.1)


@pytest.mark.parametrize("ratio", [0.5, 1.0, 1.5, 2.7])
def test_negative_counts_hit_ratio(ratio):
    counts = negatives_per_positive(0, 1000, ratio)
    assert abs(counts.sum() / 1000 - ratio) <= 0.001
    assert set(counts.tolist()) <= {int(np.floor(ratio)), int(np.ceil(ratio))}
    # continuing from an offset keeps the running total exact
    assert (negatives_per_positive(0, 600, ratio).sum()
            + negatives_per_positive(600, 400, ratio).sum()) == counts.sum()


def test_period_sampler_follows_the_periods_positives_and_avoids_the_positive():
    # raw (item, category) pairs of one period's positives: item 20 x70, 30 x20, 40 x10
    items = np.array([20, 30, 30, 40])
    cates = np.array([5, 6, 7, 8])
    counts = np.array([70, 12, 8, 10])  # item 30 is mostly category 6
    s = PeriodSampler(items, cates, counts, period="val")
    rng = np.random.default_rng(0)
    positives = np.full(20000, 20)
    drawn = s.sample(positives, rng)
    assert not (drawn == positives).any()
    assert abs(np.mean(drawn == 30) - 20 / 30) < 0.02  # renormalised without item 20
    free = s.sample(np.full(20000, 99), rng)  # an item outside the period
    assert abs(np.mean(free == 20) - 0.7) < 0.02
    np.testing.assert_array_equal(s.category(np.array([20, 30, 40])), [5, 6, 8])
    with pytest.raises(PipelineError, match="val period"):
        PeriodSampler(items[:1], cates[:1], counts[:1], period="val")


@pytest.mark.parametrize("file_order", ["ascending", "descending"])
@pytest.mark.parametrize("given", ["raw keys", "dense ids"])
def test_a_separate_history_table_gives_each_target_its_users_earlier_rows(file_order, given):
    """Histories from a second table (e.g. a behaviour log): the user's last rows strictly
    earlier in time, ties in file order; users only in the history table are ignored. The
    table may come in any file order, and with its ids already looked up (``dense_key``)."""
    from mdaf_tf.data import feature_schema
    from pipelines.examples import dense_key

    rng = np.random.default_rng(5)
    n, m, seq = 120, 150, 4
    ev = {"user": rng.integers(0, 6, n), "item": rng.integers(0, 20, n),
          "cate": rng.integers(0, 4, n), "ts": rng.integers(100, 200, n),
          "order": np.arange(n), "label": rng.integers(0, 2, n).astype(np.int8),
          "target": np.ones(n, bool), "history": np.zeros(n, bool)}
    order = np.arange(m) if file_order == "ascending" else np.arange(m)[::-1].copy()
    log = {"user": rng.integers(0, 8, m), "ts": rng.integers(90, 220, m), "order": order,
           "cate": rng.integers(0, 4, m), "field:hist_btag": rng.integers(0, 3, m)}
    features = feature_schema.FeatureSchema(
        static=feature_schema.DEFAULT.static,
        sequence=(feature_schema.SequenceField("hist_cate_id", "cate_id"),
                  feature_schema.SequenceField("hist_btag", vocabulary="btag")))
    vocabs = {schema.USER_VOCAB: _identity_vocab(ev["user"]),
              schema.ITEM_VOCAB: _identity_vocab(ev["item"]),
              schema.CATE_VOCAB: _identity_vocab(np.concatenate([ev["cate"], log["cate"]])),
              "btag": _identity_vocab(log["field:hist_btag"])}
    b = ExampleBuilder(vocabs=vocabs, boundaries=(10**9, 10**9), max_seq_len=seq,
                       samplers=None, neg_ratio=0, seed=0, features=features, chunk_size=50)
    table = dict(log)
    if given == "dense ids":
        table = {"user": log["user"], "ts": log["ts"], "order": log["order"],
                 dense_key("cate_id"): vocabs["cate"].lookup(log["cate"]).astype(np.int32),
                 dense_key("hist_btag"): vocabs["btag"].lookup(log["field:hist_btag"])}
    out = [c for _, c in b.build(dict(ev), history=table)]
    got = {k: np.concatenate([np.asarray(c[k]) for c in out]) for k in out[0]}
    expected = []
    for i in range(n):
        rows = sorted((j for j in range(m) if log["user"][j] == ev["user"][i]
                       and log["ts"][j] < ev["ts"][i]),
                      key=lambda j: (log["ts"][j], log["order"][j]))[-seq:]
        pad = [0] * (seq - len(rows))
        expected.append((int(ev["ts"][i]), int(vocabs["user"].lookup([ev["user"][i]])[0]),
                         tuple(pad + vocabs["cate"].lookup(log["cate"][rows]).tolist()),
                         tuple(pad + vocabs["btag"].lookup(log["field:hist_btag"][rows]).tolist()),
                         len(rows)))
    actual = list(zip(got["timestamp"].tolist(), got["user_id"].tolist(),
                      map(tuple, got["hist_cate_id"].tolist()),
                      map(tuple, got["hist_btag"].tolist()), got["hist_len"].tolist(),
                      strict=True))
    assert sorted(actual) == sorted(expected)
    lengths = {e[-1] for e in expected}
    assert 0 in lengths and seq in lengths and len(lengths) > 2


@pytest.mark.parametrize("shuffled", [True, False])
def test_sort_events_orders_by_user_time_then_file_order(shuffled):
    """Against a plain-Python sort, on shuffled rows (the unique-key quicksort) and on nearly
    sorted ones (the merge sort), with many ties of user and time."""
    from pipelines.examples import sort_events

    rng = np.random.default_rng(11)
    n = 5000
    user, ts = rng.integers(0, 40, n), rng.integers(0, 30, n)
    if not shuffled:
        first = np.lexsort((ts, user))
        user, ts = user[first], ts[first]
        swap = rng.integers(0, n - 1, 20)
        user[swap], user[swap + 1] = user[swap + 1].copy(), user[swap].copy()
    ev = {"user": user, "ts": ts, "order": np.arange(n) * 3, "row": np.arange(n)}
    got = sort_events(ev)["row"].tolist()
    assert got == sorted(range(n), key=lambda i: (user[i], ts[i], i))
