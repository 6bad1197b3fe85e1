import json
import os
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "training"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tiny_run import (  # noqa: E402
    plain_calibration_ratio,
    plain_ece,
    plain_gauc,
    tiny_model,
    write_dataset,
)

from mdaf_tf import data, evaluate, export  # noqa: E402
from mdaf_tf.data import schema  # noqa: E402
from mdaf_tf.metrics import exact_auc, log_loss  # noqa: E402
from mdaf_tf.models.config import ModelConfig  # noqa: E402
from mdaf_tf.training.runner import fill_model_config  # noqa: E402

ORACLE = {"auc": 0.8, "static_only_auc": 0.7, "sequence_only_auc": 0.71,
          "test": {"auc": 0.78, "static_only_auc": 0.68, "sequence_only_auc": 0.69}}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    data_dir = write_dataset(root / "data", n_train=64, n_val=100, n_test=300, oracle=ORACLE)
    keras.utils.set_random_seed(5)
    config = fill_model_config(ModelConfig(), data.load_metadata(data_dir))
    model = tiny_model("tiny", config)
    path = export.export_model(model, config, "tiny", data_dir, root / "saved",
                               parameters={"embeddings": 10, "other": 5, "total": 15})
    return root, data_dir, model, path


def keras_reference(model, data_dir, split="test"):
    labels, probs = [], []
    for features, y in data.make_dataset(str(data_dir), split, 100):
        labels.append(y.numpy())
        probs.append(model(features, training=False)["probability"].numpy().reshape(-1))
    return np.concatenate(labels), np.concatenate(probs)


def test_cli_report_matches_the_keras_model_on_the_test_split_by_default(exported, capsys):
    root, data_dir, model, path = exported
    out = root / "report"
    code = evaluate.main(["--model", str(path), "--data", str(data_dir), "--output", str(out),
                          "--batch-size", "64"])
    assert code == 0
    labels, probs = keras_reference(model, data_dir, "test")
    users = data.read_split_numpy(str(data_dir), "test")[schema.USER_KEY]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["examples"] == 300
    assert metrics["auc"] == pytest.approx(exact_auc(labels, probs), abs=1e-6)
    assert metrics["log_loss"] == pytest.approx(log_loss(labels, probs), abs=1e-5)
    assert metrics["gauc"] == pytest.approx(plain_gauc(labels, probs, users), abs=1e-6)
    assert metrics["ece"] == pytest.approx(plain_ece(labels, probs), abs=1e-5)
    assert metrics["calibration_ratio"] == pytest.approx(plain_calibration_ratio(labels, probs),
                                                         rel=1e-5)
    assert sum(metrics["reliability"]["counts"]) == 300
    report = (out / "report.md").read_text()
    for section in ("split `test`", "| metric (test) | value |", "AUC (exact)",
                    f"| gAUC | {metrics['gauc']:.4f} |",
                    f"| ECE (10 bins) | {metrics['ece']:.4f} |",
                    "| calibration ratio (mean predicted / click rate) | "
                    f"{metrics['calibration_ratio']:.4f} |", "## Calibration on test",
                    "Plots on test: `roc.png`", "oracle on test",
                    "oracle (true click probability) | 0.7800", "Parameters by component",
                    "| embeddings | 10 |", "Gate statistics on test",
                    "AUC per gate bucket on test"):
        assert section in report
    for png in ("gate_histogram.png", "roc.png", "reliability.png"):
        content = (out / png).read_bytes()
        assert content[:8] == b"\x89PNG\r\n\x1a\n" and len(content) > 1000
    printed = capsys.readouterr().out
    assert f"gAUC {metrics['gauc']:.4f}" in printed and f"ECE {metrics['ece']:.4f}" in printed


def test_validation_split_on_request(exported, tmp_path):
    _, data_dir, model, path = exported
    code = evaluate.main(["--model", str(path), "--data", str(data_dir), "--split", "val",
                          "--output", str(tmp_path / "val")])
    assert code == 0
    labels, probs = keras_reference(model, data_dir, "val")
    metrics = json.loads((tmp_path / "val" / "metrics.json").read_text())
    assert metrics["split"] == "val" and metrics["examples"] == 100
    assert metrics["auc"] == pytest.approx(exact_auc(labels, probs), abs=1e-6)
    report = (tmp_path / "val" / "report.md").read_text()
    assert "oracle (true click probability) | 0.8000" in report and "on validation" in report
    assert "## Calibration on validation" in report
    assert metrics["ece"] == pytest.approx(plain_ece(labels, probs), abs=1e-5)
    assert (tmp_path / "val" / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def permuted_item_vocabulary_copy(data_dir, target):
    """The same test examples under a reversed item vocabulary (other dense ids)."""
    import shutil

    import tensorflow as tf

    shutil.copytree(data_dir, target)
    lines = (target / "vocab" / "item.txt").read_text().split()
    (target / "vocab" / "item.txt").write_text("".join(f"{x}\n" for x in reversed(lines)))
    n = len(lines)
    new_id = np.arange(n + schema.FIRST_ID)
    new_id[schema.FIRST_ID:] = schema.FIRST_ID + (n - 1 - np.arange(n))  # line i -> n-1-i
    test = data.read_split_numpy(str(data_dir), "test")
    for name in (schema.ITEM_ID, schema.HIST_ITEM_ID):
        test[name] = new_id[test[name]]
    shard = next(target.glob("test-*.tfrecord.gz"))
    with tf.io.TFRecordWriter(str(shard), options="GZIP") as writer:
        for i in range(len(test[schema.LABEL])):
            feature = {k: tf.train.Feature(int64_list=tf.train.Int64List(
                value=np.atleast_1d(v[i]).tolist())) for k, v in test.items()}
            writer.write(tf.train.Example(
                features=tf.train.Features(feature=feature)).SerializeToString())
    return target


def test_dataset_with_another_vocabulary_maps_through_raw_ids(exported, tmp_path):
    """Evaluation feeds raw ids: a dataset whose item vocabulary is ordered differently
    (so its dense ids differ) gives the predictions of the same raw examples."""
    _, data_dir, model, path = exported
    other = permuted_item_vocabulary_copy(data_dir, tmp_path / "other")
    assert not np.array_equal(data.read_split_numpy(str(other), "test")["item_id"],
                              data.read_split_numpy(str(data_dir), "test")["item_id"])
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


def test_an_mdaf_export_evaluates_to_the_keras_models_figures(tmp_path):
    """Evaluate through the serving signature of a model with Mamba blocks (its export runs
    the stepwise scan in place of the training op)."""
    from mdaf_tf import models

    data_dir = write_dataset(tmp_path / "data", n_train=64, n_val=64, n_test=200)
    keras.utils.set_random_seed(6)
    config = fill_model_config(models.make_config("mdaf", dict(
        embedding_dims={"user": 8, "item": 8, "cate": 4}, hidden_dim=16,
        num_cross_layers=1, num_mamba_layers=1, d_state=4, gate_hidden=16, output_hidden=(8,))),
        data.load_metadata(data_dir))
    model = models.build_model("mdaf", config)
    path = export.export_model(model, config, "mdaf", data_dir, tmp_path / "saved")
    out = tmp_path / "report"
    assert evaluate.main(["--model", str(path), "--data", str(data_dir), "--output", str(out),
                          "--batch-size", "64"]) == 0
    labels, probs = keras_reference(model, data_dir, "test")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["examples"] == 200
    assert metrics["auc"] == pytest.approx(exact_auc(labels, probs), abs=1e-6)
    assert metrics["log_loss"] == pytest.approx(log_loss(labels, probs), abs=1e-5)
