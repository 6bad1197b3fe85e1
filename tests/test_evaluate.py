import json
import os
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "training"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tiny_run import tiny_model, write_dataset  # noqa: E402

from mdaf_tf import data, evaluate, export  # noqa: E402
from mdaf_tf.config import ModelConfig  # noqa: E402
from mdaf_tf.training.metrics import exact_auc, log_loss  # noqa: E402
from mdaf_tf.training.runner import fill_model_config, load_metadata  # noqa: E402

ORACLE = {"auc": 0.8, "static_only_auc": 0.7, "sequence_only_auc": 0.71}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    data_dir = write_dataset(root / "data", n_train=64, n_val=300, oracle=ORACLE)
    keras.utils.set_random_seed(5)
    config = fill_model_config(ModelConfig(), load_metadata(data_dir))
    model = tiny_model("tiny", config)
    path = export.export_model(model, config, "tiny", data_dir, root / "saved",
                               parameters={"embeddings": 10, "other": 5, "total": 15})
    return root, data_dir, model, path


def keras_reference(model, data_dir):
    labels, probs = [], []
    for features, y in data.make_dataset(str(data_dir), "val", 100):
        labels.append(y.numpy())
        probs.append(model(features, training=False)["probability"].numpy().reshape(-1))
    return np.concatenate(labels), np.concatenate(probs)


def test_cli_report_matches_the_keras_model(exported, capsys):
    root, data_dir, model, path = exported
    out = root / "report"
    code = evaluate.main(["--model", str(path), "--data", str(data_dir), "--output", str(out),
                          "--batch-size", "64"])
    assert code == 0
    labels, probs = keras_reference(model, data_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["examples"] == 300
    assert metrics["auc"] == pytest.approx(exact_auc(labels, probs), abs=1e-6)
    assert metrics["log_loss"] == pytest.approx(log_loss(labels, probs), abs=1e-5)
    report = (out / "report.md").read_text()
    for section in ("AUC (exact)", "oracle (true click probability) | 0.8000",
                    "Parameters by component", "| embeddings | 10 |", "Gate statistics",
                    "AUC per gate bucket"):
        assert section in report
    assert (out / "gate_histogram.png").read_bytes()[:4] == b"\x89PNG"


def permuted_item_vocabulary_copy(data_dir, target):
    """The same validation examples under a reversed item vocabulary (other dense ids)."""
    import shutil

    import tensorflow as tf

    from mdaf_tf import schema

    shutil.copytree(data_dir, target)
    lines = (target / "vocab" / "item.txt").read_text().split()
    (target / "vocab" / "item.txt").write_text("".join(f"{x}\n" for x in reversed(lines)))
    n = len(lines)
    new_id = np.arange(n + schema.FIRST_ID)
    new_id[schema.FIRST_ID:] = schema.FIRST_ID + (n - 1 - np.arange(n))  # line i -> n-1-i
    val = data.read_split_numpy(str(data_dir), "val")
    for name in (schema.ITEM_ID, schema.HIST_ITEM_ID):
        val[name] = new_id[val[name]]
    shard = next(target.glob("val-*.tfrecord.gz"))
    with tf.io.TFRecordWriter(str(shard), options="GZIP") as writer:
        for i in range(len(val[schema.LABEL])):
            feature = {k: tf.train.Feature(int64_list=tf.train.Int64List(
                value=np.atleast_1d(v[i]).tolist())) for k, v in val.items()}
            writer.write(tf.train.Example(
                features=tf.train.Features(feature=feature)).SerializeToString())
    return target


def test_dataset_with_another_vocabulary_maps_through_raw_ids(exported, tmp_path):
    """Evaluation feeds raw ids: a dataset whose item vocabulary is ordered differently
    (so its dense ids differ) gives the predictions of the same raw examples."""
    _, data_dir, model, path = exported
    other = permuted_item_vocabulary_copy(data_dir, tmp_path / "other")
    assert not np.array_equal(data.read_split_numpy(str(other), "val")["item_id"],
                              data.read_split_numpy(str(data_dir), "val")["item_id"])
    predictions, _, _ = evaluate.evaluate(path, other, progress=False)
    labels, probs = keras_reference(model, data_dir)
    np.testing.assert_allclose(predictions.probabilities, probs, atol=1e-5)
    np.testing.assert_array_equal(predictions.labels, labels)


def test_not_a_saved_model(tmp_path, capsys, exported):
    _, data_dir, _, _ = exported
    code = evaluate.main(["--model", str(tmp_path), "--data", str(data_dir)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "saved_model.pb" in err and len(err.splitlines()) == 1


def test_id_type_mismatch(tmp_path, capsys, exported):
    _, _, _, path = exported
    strings = write_dataset(tmp_path / "strings", n_train=16, n_val=16, id_dtype="string")
    code = evaluate.main(["--model", str(path), "--data", str(strings),
                          "--output", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "string ids" in err
