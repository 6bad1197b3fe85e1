import contextlib
import json
import os
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).parent / "training"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tiny_run import tiny_model, write_dataset  # noqa: E402

from mdaf_tf import data, export  # noqa: E402
from mdaf_tf.data import (
    load_metadata,  # noqa: E402
    schema,  # noqa: E402
)
from mdaf_tf.models.config import ModelConfig  # noqa: E402
from mdaf_tf.training.runner import fill_model_config  # noqa: E402

SEQ = 6


def build(data_dir):
    keras.utils.set_random_seed(3)
    config = fill_model_config(ModelConfig(dropout=0.1), load_metadata(data_dir))
    return tiny_model("tiny", config), config


@pytest.fixture(scope="module", params=["int64", "string"])
def exported(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"export-{request.param}")
    data_dir = write_dataset(root / "data", n_train=64, n_val=300, max_seq_len=SEQ,
                             id_dtype=request.param)
    model, config = build(data_dir)
    path = export.export_model(model, config, "tiny", data_dir, root / "saved")
    return request.param, data_dir, model, path


def test_fresh_process_signatures_match_keras(exported, monkeypatch):
    id_dtype, data_dir, model, path = exported
    if id_dtype == "string":
        # A relative path: the checking process runs in a temporary directory, where the path
        # must not be taken from (the main command exports to saved_models/NAME).
        monkeypatch.chdir(Path(path).parent)
        path = Path(Path(path).name)
    report = export.verify_export(path, model, data_dir)
    assert report["examples"] == 300
    assert report["loader"] == "tf.compat.v1.saved_model.loader"  # TF Serving's
    assert report["signatures"] == ["predict_examples", "serving_default"]
    assert report["nonstandard_ops"] == []
    for name in ("serving_default", "predict_examples", "saved_model_cli"):
        assert report[name]["probability"] <= 1e-5 and report[name]["gate"] <= 1e-5
    assert report["mdaf_tf_imported"] is False


def vocab(data_dir, name, id_dtype):
    lines = (Path(data_dir) / "vocab" / f"{name}.txt").read_text().split()
    return lines if id_dtype == "string" else [int(x) for x in lines]


def raw_batch(id_dtype, data_dir, n, rng, hist_len):
    """Raw inputs plus the dense ids the schema says they map to (computed here)."""
    items, cates, users = (vocab(data_dir, k, id_dtype) for k in ("item", "cate", "user"))
    pad = "" if id_dtype == "string" else -1
    unknown = "never-seen" if id_dtype == "string" else 987654321

    def pick(values, size):
        idx = rng.integers(-1, len(values), size)  # -1 = an unknown raw id
        raw = np.array([unknown if i < 0 else values[i] for i in idx.ravel()], dtype=object)
        dense = np.where(idx < 0, schema.OOV_ID, idx + schema.FIRST_ID)
        return raw.reshape(size), dense.reshape(size)

    raw, dense = {}, {}
    for name, values in ((schema.USER_ID, users), (schema.ITEM_ID, items),
                         (schema.CATE_ID, cates)):
        raw[name], dense[name] = pick(values, (n,))
    valid = np.arange(SEQ)[None, :] >= SEQ - hist_len[:, None]
    for name, values in ((schema.HIST_ITEM_ID, items), (schema.HIST_CATE_ID, cates)):
        r, d = pick(values, (n, SEQ))
        # Outside the last hist_len positions: garbage ids, which must be ignored.
        raw[name] = np.where(valid, r, pick(values, (n, SEQ))[0])
        dense[name] = np.where(valid, d, schema.PAD_ID)
        if n > 1:
            raw[name][1] = pad  # an explicitly padded row
            dense[name][1] = schema.PAD_ID
    raw[schema.HIST_LEN] = dense[schema.HIST_LEN] = hist_len
    if n > 1:
        hist_len[1] = SEQ
    tensors = {}
    for name, value in raw.items():
        if value.dtype == object:
            value = value.astype(str if id_dtype == "string" else np.int64)
        tensors[name] = tf.constant(value)
    return tensors, {k: tf.constant(np.asarray(v, np.int64)) for k, v in dense.items()}


@pytest.mark.parametrize("batch", [1, 7, 4096])
def test_unknown_ids_empty_histories_and_batch_sizes(exported, batch):
    id_dtype, data_dir, model, path = exported
    rng = np.random.default_rng(batch)
    hist_len = rng.integers(0, SEQ + 1, batch)
    hist_len[0] = 0  # an empty history
    raw, dense = raw_batch(id_dtype, data_dir, batch, rng, hist_len)
    loaded = tf.saved_model.load(str(path))
    got = loaded.signatures["serving_default"](**raw)
    want = model(dense, training=False)
    np.testing.assert_allclose(got["probability"].numpy(),
                               want["probability"].numpy().reshape(-1), atol=1e-5)
    np.testing.assert_allclose(got["gate"].numpy(), want["gate"].numpy().reshape(-1),
                               atol=1e-5)
    assert np.isfinite(got["probability"].numpy()).all()


def test_examples_without_history_features(exported):
    id_dtype, data_dir, model, path = exported
    items = vocab(data_dir, "item", id_dtype)
    feature = {}
    for name, value in ((schema.USER_ID, "nobody" if id_dtype == "string" else 5),
                        (schema.ITEM_ID, items[3]), (schema.CATE_ID, items[0])):
        if id_dtype == "string":
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[str(value).encode()]))
        else:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    loaded = tf.saved_model.load(str(path))
    got = loaded.signatures["predict_examples"](
        examples=tf.constant([example.SerializeToString()]))
    dense = {
        schema.USER_ID: [schema.OOV_ID], schema.ITEM_ID: [3 + schema.FIRST_ID],
        schema.CATE_ID: [schema.OOV_ID],  # an item id is not a category id
        schema.HIST_ITEM_ID: [[0] * SEQ], schema.HIST_CATE_ID: [[0] * SEQ],
        schema.HIST_LEN: [0],
    }
    want = model({k: tf.constant(v, tf.int64) for k, v in dense.items()}, training=False)
    np.testing.assert_allclose(got["probability"].numpy(),
                               want["probability"].numpy().reshape(-1), atol=1e-5)


def test_versions_increment_and_nothing_temporary_is_left(tmp_path):
    data_dir = write_dataset(tmp_path / "data", n_train=32, n_val=32, max_seq_len=SEQ)
    model, config = build(data_dir)
    first = export.export_model(model, config, "tiny", data_dir, tmp_path / "saved")
    second = export.export_model(model, config, "tiny", data_dir, tmp_path / "saved")
    assert (first.name, second.name) == ("1", "2")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["1", "2"]
    info = (second / export.INFO_FILE).read_text()
    assert '"raw_id_dtypes"' in info


def test_export_path_that_is_a_file(tmp_path):
    data_dir = write_dataset(tmp_path / "data", n_train=32, n_val=32, max_seq_len=SEQ)
    model, config = build(data_dir)
    (tmp_path / "file").write_text("x")
    with pytest.raises(export.ExportError, match="is a file"):
        export.export_model(model, config, "tiny", data_dir, tmp_path / "file")


@pytest.fixture(scope="module")
def exported_mdaf(tmp_path_factory):
    """A small MDAF (DCNv3 + Mamba blocks whose scan resolves to the CPU custom op): the
    export swaps in the TF-ops stepwise scan, which this checks end to end."""
    from mdaf_tf import models

    root = tmp_path_factory.mktemp("export-mdaf")
    data_dir = write_dataset(root / "data", n_train=64, n_val=200, max_seq_len=SEQ)
    keras.utils.set_random_seed(4)
    config = fill_model_config(models.make_config("mdaf", dict(
        embedding_dims={"user": 8, "item": 8, "cate": 4}, hidden_dim=16,
        num_cross_layers=1, num_mamba_layers=1, d_state=4, gate_hidden=16, output_hidden=(8,),
        scan="auto")), load_metadata(data_dir))
    model = models.build_model("mdaf", config)
    path = export.export_model(model, config, "mdaf", data_dir, root / "saved")
    return data_dir, model, config, path


def test_mdaf_export_runs_the_stepwise_scan_and_matches_keras(exported_mdaf):
    from mdaf_tf.ops.selective_scan import resolve_impl

    data_dir, model, config, path = exported_mdaf
    assert resolve_impl(config.scan, jit_compile=False) == "fast"  # what training runs
    info = json.loads((Path(path) / export.INFO_FILE).read_text())
    assert info["model_config"]["scan"] == export.PORTABLE_SCAN
    report = export.verify_export(path, model, data_dir)  # a process without mdaf_tf
    assert report["examples"] == 200 and report["mdaf_tf_imported"] is False
    for name in ("serving_default", "predict_examples"):
        assert report[name]["probability"] <= 1e-5 and report[name]["gate"] <= 1e-5


def test_saved_model_cli_runs_the_export(exported_mdaf, tmp_path):
    """TensorFlow's own command, as a TF Serving user would try an export: it loads with the
    session-based loader (restore op, then init op) and must see every variable and table."""
    import shutil
    import subprocess

    data_dir, model, _, path = exported_mdaf
    cli = shutil.which("saved_model_cli")
    assert cli, "saved_model_cli is installed with tensorflow"
    features, _ = next(iter(data.make_dataset(data_dir, "val", 16, training=False)))
    raw = export.dense_to_raw({k: v.numpy() for k, v in features.items()},
                              export.read_vocabularies(data_dir, load_metadata(data_dir)))
    np.savez(tmp_path / "inputs.npz", **raw)
    inputs = ";".join(f"{k}={tmp_path}/inputs.npz[{k}]" for k in raw)
    done = subprocess.run(
        [cli, "run", "--dir", str(path), "--tag_set", "serve", "--signature_def",
         "serving_default", "--inputs", inputs, "--outdir", str(tmp_path / "out")],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=""))
    assert done.returncode == 0, done.stderr[-2000:]
    want = model(features, training=False)
    for name in ("probability", "gate"):
        got = np.load(tmp_path / "out" / f"{name}.npy")
        np.testing.assert_allclose(got, want[name].numpy().reshape(-1), atol=1e-5)


def test_an_op_outside_tensorflow_is_refused(exported_mdaf, tmp_path, monkeypatch):
    """With the portable scan switch disabled the graph keeps the CPU custom op, which TF
    Serving does not have: the check names it instead of passing or crashing."""
    data_dir, model, config, _ = exported_mdaf
    monkeypatch.setattr(export, "portable_scans", lambda m: contextlib.nullcontext(0))
    path = export.export_model(model, config, "mdaf", data_dir, tmp_path / "saved")
    with pytest.raises(export.ExportError, match="outside TensorFlow's standard set: Mdaf"):
        export.verify_export(path, model, data_dir, max_examples=8)
