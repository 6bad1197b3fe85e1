import csv
import json

import numpy as np
import pytest
from tiny_run import tiny_model, write_dataset

from mdaf_tf import data
from mdaf_tf.config import ModelConfig, TrainConfig
from mdaf_tf.training import checkpoint, evaluation, runner
from mdaf_tf.training.metrics import exact_auc, log_loss

MODEL = ModelConfig(dropout=0.2)
TRAIN = TrainConfig(epochs=3, batch_size=64, learning_rate=1e-2, warmup_epochs=1,
                    jit_compile="false")
ORACLE = {"auc": 0.75, "static_only_auc": 0.65, "sequence_only_auc": 0.66}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"), n_train=384, n_val=200, oracle=ORACLE)


def run(dataset, output, train=TRAIN, model=MODEL, **kwargs):
    return runner.train(model, train, dataset, output, build_model=tracked_model, progress=False,
                        log=lambda *_: None, **kwargs)


def val_predictions(model, dataset):
    labels, probs = [], []
    for features, y in data.make_dataset(str(dataset), "val", 50):
        labels.append(y.numpy())
        probs.append(model(features, training=False)["probability"].numpy().reshape(-1))
    return np.concatenate(labels), np.concatenate(probs)


def test_run_directory_contents(dataset, tmp_path):
    result = run(dataset, tmp_path / "run")
    out = tmp_path / "run"
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert list(rows[0]) == list(runner.METRICS_COLUMNS)
    # Steps per epoch: 384 // 64 = 6; the lr column is the schedule after each epoch.
    assert float(rows[-1]["learning_rate"]) == pytest.approx(0.0, abs=1e-9)
    assert float(rows[0]["learning_rate"]) == pytest.approx(1e-2, rel=1e-5)

    # The restored model is the best epoch's: its exact AUC recomputed here matches.
    labels, probs = val_predictions(result.model, dataset)
    best_row = rows[result.best_epoch - 1]
    assert float(best_row["val_auc"]) == max(float(r["val_auc"]) for r in rows)
    assert exact_auc(labels, probs) == pytest.approx(float(best_row["val_auc"]), abs=1e-6)
    assert log_loss(labels, probs) == pytest.approx(float(best_row["val_log_loss"]), abs=1e-5)

    config = json.loads((out / "config.json").read_text())
    assert config["train"]["epochs"] == 3 and config["seed"] == 42
    assert config["model"]["item_vocab_size"] == 32  # filled from the metadata
    assert set(config["versions"]) >= {"tensorflow", "keras", "numpy", "python"}
    assert config["data_metadata_sha256"] == runner.metadata_sha256(dataset)

    report = (out / "report.md").read_text()
    for section in ("final validation AUC", "best validation log loss", "epoch of best",
                    "Parameters by component", "Gate statistics", "AUC per gate bucket",
                    "0.4-1.0", "oracle (true click probability) | 0.7500"):
        assert section in report
    for png in ("learning_curves.png", "gate_histogram.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert result.parameters["total"] == sum(int(np.prod(v.shape)) for v in result.model.weights)


def test_early_stopping_restores_the_best_epoch_weights(dataset, tmp_path, monkeypatch):
    scripted = iter([0.60, 0.70, 0.65, 0.66, 0.64] + [0.5] * 10)
    original = evaluation.Predictions.summary

    def scripted_summary(self):
        summary = original(self)
        summary["auc"] = next(scripted)
        return summary

    monkeypatch.setattr(evaluation.Predictions, "summary", scripted_summary)
    weights = {}
    result = run(dataset, tmp_path / "run", dataclasses_replace(TRAIN, epochs=8),
                 on_epoch_end=lambda e, row: weights.__setitem__(e, result_weights()))
    assert result.stopped_early and len(result.history) == 5 and result.best_epoch == 2
    for got, want in zip(result.model.get_weights(), weights[2], strict=True):
        np.testing.assert_array_equal(got, want)
    assert any(not np.array_equal(a, b) for a, b in zip(weights[2], weights[5], strict=True))


_current = {}


def tracked_model(name, config):
    """tiny_model, remembered so that on_epoch_end callbacks can read its weights."""
    model = tiny_model(name, config)
    _current["model"] = model
    return model


def result_weights():
    return [np.array(w) for w in _current["model"].get_weights()]


def dataclasses_replace(config, **values):
    import dataclasses

    return dataclasses.replace(config, **values)


def _history_close(a, b, tol=1e-4):
    keys = ("train_loss", "train_auc", "val_auc", "val_log_loss", "learning_rate")
    assert len(a) == len(b)
    for row_a, row_b in zip(a, b, strict=True):
        for key in keys:
            assert row_a[key] == pytest.approx(row_b[key], abs=tol), key


def test_resume_after_a_kill_in_epoch_3_matches_an_uninterrupted_run(dataset, tmp_path,
                                                                     monkeypatch):
    train = dataclasses_replace(TRAIN, epochs=4, deterministic=True)
    reference = run(dataset, tmp_path / "reference", train)

    class Killed(Exception):
        pass

    real_make_dataset = data.make_dataset
    kill_seed = runner.epoch_seed(train.seed, 3)

    def dying_make_dataset(*args, **kwargs):
        ds = real_make_dataset(*args, **kwargs)
        if kwargs.get("training") and kwargs.get("seed") == kill_seed:
            def generator():
                for i, batch in enumerate(ds):
                    if i == 2:
                        raise Killed()
                    yield batch
            return _IterableDataset(generator)
        return ds

    monkeypatch.setattr(data, "make_dataset", dying_make_dataset)
    with pytest.raises(Killed):
        run(dataset, tmp_path / "killed", train)
    assert checkpoint.latest(tmp_path / "killed" / "checkpoints").name == "epoch-0002"
    monkeypatch.setattr(data, "make_dataset", real_make_dataset)
    resumed = run(dataset, tmp_path / "killed", train, resume=True)
    _history_close(resumed.history, reference.history)
    assert resumed.best_epoch == reference.best_epoch
    for got, want in zip(resumed.model.get_weights(), reference.model.get_weights(),
                         strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


class _IterableDataset:
    """Just enough of tf.data.Dataset for the training loop: take() and iteration."""

    def __init__(self, generator):
        self.generator = generator

    def take(self, _):
        return self

    def __iter__(self):
        return self.generator()


def test_xla_and_non_xla_training_agree(dataset, tmp_path):
    # Without dropout: XLA draws its random numbers with another algorithm than the CPU
    # kernels, so dropout masks (not the arithmetic) would differ.
    no_dropout = dataclasses_replace(MODEL, dropout=0.0)
    xla = run(dataset, tmp_path / "xla", dataclasses_replace(TRAIN, jit_compile="true"),
              model=no_dropout)
    plain = run(dataset, tmp_path / "plain", dataclasses_replace(TRAIN, jit_compile="false"),
                model=no_dropout)
    assert xla.jit_compile and not plain.jit_compile
    _history_close(xla.history, plain.history, tol=1e-3)


def test_resume_errors(dataset, tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
        run(dataset, tmp_path / "empty", resume=True)
    run(dataset, tmp_path / "run", dataclasses_replace(TRAIN, epochs=1))
    with pytest.raises(checkpoint.CheckpointError, match="learning_rate"):
        run(dataset, tmp_path / "run", dataclasses_replace(TRAIN, epochs=1, learning_rate=0.5),
            resume=True)


def test_resume_of_a_finished_run_only_reports(dataset, tmp_path):
    first = run(dataset, tmp_path / "run", dataclasses_replace(TRAIN, epochs=2))
    again = run(dataset, tmp_path / "run", dataclasses_replace(TRAIN, epochs=2), resume=True)
    assert again.history == first.history
    assert again.best["auc"] == pytest.approx(first.best["auc"], abs=1e-6)
