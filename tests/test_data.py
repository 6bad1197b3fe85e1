import json
import os

import numpy as np
import pytest
import tensorflow as tf

from mdaf_tf import data
from mdaf_tf.data import schema
from pipelines import synthetic

SEQ = 8


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "ds"
    synthetic.main(["--output", str(out), "--users", "60", "--items", "40", "--categories",
                    "6", "--impressions-per-user", "20", "--max-seq-len", str(SEQ),
                    "--examples-per-shard", "300"])
    return str(out)


def _collect(ds):
    feats, labels = [], []
    for f, y in ds:
        feats.append({k: v.numpy() for k, v in f.items()})
        labels.append(y.numpy())
    return {k: np.concatenate([f[k] for f in feats]) for k in feats[0]}, np.concatenate(labels)


def test_eval_batches_have_schema_inputs_static_shapes_and_file_order(dataset):
    ds = data.make_dataset(dataset, "val", 32, drop_remainder=True)
    f_spec, y_spec = ds.element_spec
    assert set(f_spec) == set(schema.MODEL_INPUT_NAMES)
    for name, spec in f_spec.items():
        assert spec.dtype == tf.int64
        assert spec.shape == (32, *schema.FEATURES_BY_NAME[name].shape(SEQ))
    assert y_spec.dtype == tf.float32 and y_spec.shape == (32,)
    feats, labels = _collect(data.make_dataset(dataset, "val", 50))
    ref = data.read_split_numpy(dataset, "val")
    np.testing.assert_array_equal(labels, ref["label"].astype(np.float32))
    for name in schema.MODEL_INPUT_NAMES:
        np.testing.assert_array_equal(feats[name], ref[name])
    again, _ = _collect(data.make_dataset(dataset, "val", 50))
    np.testing.assert_array_equal(again["item_id"], feats["item_id"])


def test_training_shuffle_is_seeded_and_complete(dataset):
    ref = data.read_split_numpy(dataset, "train")
    assert len(data.shard_paths(dataset, "train")) > 1
    a, _ = _collect(data.make_dataset(dataset, "train", 64, training=True, seed=1))
    b, _ = _collect(data.make_dataset(dataset, "train", 64, training=True, seed=1))
    c, _ = _collect(data.make_dataset(dataset, "train", 64, training=True, seed=2))
    np.testing.assert_array_equal(a["hist_item_id"], b["hist_item_id"])
    assert not np.array_equal(a["hist_item_id"], c["hist_item_id"])
    assert not np.array_equal(a["user_id"], ref["user_id"])
    key = lambda d: sorted(zip(d["user_id"].tolist(), d["item_id"].tolist(),
                               d["hist_len"].tolist(), strict=True))
    assert key(a) == key(ref)


def _timestamps(dataset, pipelines, i):
    ctx = tf.distribute.InputContext(num_input_pipelines=pipelines, input_pipeline_id=i)
    ds = data.make_dataset(dataset, "train", 10_000, input_context=ctx, include_timestamp=True)
    return _collect(ds)[0]["timestamp"]


@pytest.mark.parametrize("pipelines", [2, 3])
def test_input_context_shards_are_disjoint_and_cover(dataset, pipelines):
    ref = data.read_split_numpy(dataset, "train")["timestamp"]
    parts = [_timestamps(dataset, pipelines, i) for i in range(pipelines)]
    assert all(len(p) for p in parts)
    assert sorted(np.concatenate(parts).tolist()) == sorted(ref.tolist())


def test_more_pipelines_than_shards_splits_records(dataset):
    ref = data.read_split_numpy(dataset, "train")["timestamp"]
    n = len(data.shard_paths(dataset, "train")) + 1
    parts = [_timestamps(dataset, n, i) for i in range(n)]
    assert sorted(np.concatenate(parts).tolist()) == sorted(ref.tolist())
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1


def test_repeat_and_timestamp(dataset):
    n = json.load(open(os.path.join(dataset, "metadata.json")))["splits"]["val"]["examples"]
    ds = data.make_dataset(dataset, "val", n, repeat=True, include_timestamp=True)
    it = iter(ds)
    first, second = next(it)[0], next(it)[0]
    np.testing.assert_array_equal(first["timestamp"], second["timestamp"])


def test_metadata_errors_name_the_directory(tmp_path, dataset):
    with pytest.raises(data.DataError, match=str(tmp_path)):
        data.load_metadata(str(tmp_path))
    meta = json.load(open(os.path.join(dataset, "metadata.json")))
    meta["schema_version"] = 999
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(data.DataError, match="schema_version 999"):
        data.load_metadata(str(tmp_path))
    meta["schema_version"] = 1  # before the test split: one line saying how to rebuild
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(data.DataError, match="rebuild it with the pipelines"):
        data.load_metadata(str(tmp_path))
    with pytest.raises(data.DataError, match="split"):
        data.make_dataset(dataset, "holdout", 8)
    assert data.load_metadata(dataset)["vocab_sizes"]["item"] == 42


def test_a_version_2_directory_reads_as_the_default_schema(tmp_path, dataset):
    """Directories written before the declared schema (version 2, no "schema") read with
    user, item and category and give the same examples; version 3 must declare."""
    v2 = tmp_path / "v2"
    os.makedirs(v2)
    for name in os.listdir(dataset):
        if name != "metadata.json":
            os.symlink(os.path.join(dataset, name), v2 / name)
    meta = json.load(open(os.path.join(dataset, "metadata.json")))
    assert meta["schema_version"] == 3 and len(meta["schema"]["static"]) == 3
    old = {k: v for k, v in meta.items() if k != "schema"}
    (v2 / "metadata.json").write_text(json.dumps({**old, "schema_version": 2}))
    assert data.record_features(data.load_metadata(str(v2))) == schema.FEATURES
    new_x, new_y = _collect(data.make_dataset(dataset, "val", 16))
    old_x, old_y = _collect(data.make_dataset(str(v2), "val", 16))
    np.testing.assert_array_equal(new_y, old_y)
    assert set(new_x) == set(old_x)
    for k in new_x:
        np.testing.assert_array_equal(new_x[k], old_x[k])
    (v2 / "metadata.json").write_text(json.dumps(old))  # version 3 without its declaration
    with pytest.raises(data.DataError, match="without its \"schema\" declaration"):
        data.load_metadata(str(v2))
