import csv
import json
import shutil

import keras
import numpy as np
import pytest
from tiny_run import (
    SplitSpy,
    plain_calibration_ratio,
    plain_ece,
    plain_gauc,
    tiny_model,
    write_dataset,
)

from mdaf_tf import data
from mdaf_tf.config import TrainConfig
from mdaf_tf.data import DataError, schema
from mdaf_tf.metrics import exact_auc, log_loss
from mdaf_tf.models import embedding_sizes
from mdaf_tf.models.config import ModelConfig
from mdaf_tf.training import checkpoint, config_file, recipe, runner

MODEL = ModelConfig(dropout=0.2)
TRAIN = TrainConfig(epochs=3, batch_size=64, learning_rate=1e-2, warmup_epochs=1,
                    jit_compile="false")
ORACLE = {"auc": 0.75, "static_only_auc": 0.65, "sequence_only_auc": 0.66}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"), n_train=384, n_val=200, oracle=ORACLE)


def run(dataset, output, train=TRAIN, model=MODEL, **kwargs):
    return runner.train(runner.TrainRequest(model, train, dataset, output,
                                            build_model=tracked_model, progress=False,
                                            log=lambda *_: None, **kwargs))


def split_predictions(model, dataset, split="val"):
    """(labels, probabilities, user keys) of ``model`` on ``split``, in file order."""
    labels, probs = [], []
    for features, y in data.make_dataset(str(dataset), split, 50):
        labels.append(y.numpy())
        probs.append(model(features, training=False)["probability"].numpy().reshape(-1))
    users = data.read_split_numpy(str(dataset), split)[schema.USER_KEY]
    return np.concatenate(labels), np.concatenate(probs), users


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
    labels, probs, users = split_predictions(result.model, dataset, "val")
    best_row = rows[result.best_epoch - 1]
    assert float(best_row["val_auc"]) == max(float(r["val_auc"]) for r in rows)
    assert exact_auc(labels, probs) == pytest.approx(float(best_row["val_auc"]), abs=1e-6)
    assert log_loss(labels, probs) == pytest.approx(float(best_row["val_log_loss"]), abs=1e-5)
    # The five unseen users hold one example each: gAUC skips them.
    assert sum(np.sum(users == u) == 1 for u in np.unique(users)) >= 5
    assert float(best_row["val_gauc"]) == pytest.approx(plain_gauc(labels, probs, users),
                                                        abs=1e-6)

    # The test figures are the restored model's on the test split, computed here anew.
    labels, probs, users = split_predictions(result.model, dataset, "test")
    assert result.test["examples"] == len(labels) == 200
    assert result.test["auc"] == pytest.approx(exact_auc(labels, probs), abs=1e-6)
    assert result.test["log_loss"] == pytest.approx(log_loss(labels, probs), abs=1e-5)
    assert result.test["gauc"] == pytest.approx(plain_gauc(labels, probs, users), abs=1e-6)
    assert result.test["ece"] == pytest.approx(plain_ece(labels, probs), abs=1e-5)
    assert result.test["calibration_ratio"] == pytest.approx(
        plain_calibration_ratio(labels, probs), rel=1e-5)

    config = json.loads((out / "config.json").read_text())
    assert config["train"]["epochs"] == 3 and config["seed"] == 42
    assert (config["train_examples"], config["val_examples"], config["test_examples"]) == (
        384, 200, 200)
    assert config["model"]["vocab_sizes"]["item"] == 32  # filled from the metadata
    assert set(config["versions"]) >= {"tensorflow", "keras", "numpy", "python"}
    assert config["data_metadata_sha256"] == data.metadata_sha256(dataset)
    # the run's own config.json is a valid --config (every run-info key is known)
    model_values, train_config = config_file.parse(config)
    model_config = config_file.model_config(train_config.model, model_values)
    assert train_config.epochs == 3 and model_config.vocab_sizes["item"] == 32

    report = (out / "report.md").read_text()
    for section in ("final validation AUC", "best validation log loss", "epoch of best",
                    "Parameters by component", "Gate statistics on validation",
                    "AUC per gate bucket on validation", "0.4-1.0",
                    "oracle (true click probability) | 0.7500", "## Test (reported)",
                    f"| test AUC | {result.test['auc']:.4f} |",
                    f"| test gAUC | {result.test['gauc']:.4f} |",
                    f"| test log loss | {result.test['log_loss']:.4f} |",
                    f"| best validation gAUC | {float(best_row['val_gauc']):.4f} |",
                    f"| test ECE (10 bins) | {result.test['ece']:.4f} |",
                    "| test calibration ratio (mean predicted / click rate) | "
                    f"{result.test['calibration_ratio']:.4f} |",
                    f"| best validation ECE (10 bins) | {result.best['ece']:.4f} |",
                    "## Calibration on test", "Plots on test: `roc.png`",
                    "`roc.png` and `reliability.png` (test)"):
        assert section in report
    assert report.index("## Test (reported)") < report.index("## Validation (selects")
    for png in ("learning_curves.png", "gate_histogram.png", "roc.png", "reliability.png"):
        content = (out / png).read_bytes()
        assert content[:8] == b"\x89PNG\r\n\x1a\n" and len(content) > 1000
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert result.parameters["total"] == sum(int(np.prod(v.shape)) for v in result.model.weights)


def test_selection_follows_validation_when_test_would_choose_otherwise(dataset, tmp_path,
                                                                      monkeypatch):
    # Scripted per-pass AUCs: validation peaks at epoch 2; a test pass after epoch 1 would
    # look best, so a run that read test before choosing would pick epoch 1.
    val_aucs = [0.60, 0.70, 0.65, 0.66, 0.64]
    scripts = {"val": iter(val_aucs + [0.5] * 10),
               "test": iter([0.95, 0.40, 0.41, 0.42, 0.43, 0.44])}
    spy = SplitSpy(monkeypatch, script=lambda split: next(scripts[split]))
    weights = {}

    def on_epoch_end(epoch, row):
        spy.epoch_end(epoch, row)
        weights[epoch] = result_weights()

    result = run(dataset, tmp_path / "run", dataclasses_replace(TRAIN, epochs=8),
                 on_epoch_end=on_epoch_end)
    assert [r["val_auc"] for r in result.history] == val_aucs
    assert result.stopped_early and result.best_epoch == 2 and result.best["auc"] == 0.70
    for got, want in zip(result.model.get_weights(), weights[2], strict=True):
        np.testing.assert_array_equal(got, want)
    assert any(not np.array_equal(a, b) for a, b in zip(weights[2], weights[5], strict=True))

    # The test split is opened once, after the last epoch, and read with the restored weights.
    opened = [i for i, (name, split) in enumerate(spy.events)
              if name == "make_dataset" and split == "test"]
    assert len(opened) == 1 and opened[0] > spy.events.index(("epoch_end", 5))
    assert result.test["auc"] == 0.95
    labels, probs, _ = split_predictions(result.model, dataset, "test")
    np.testing.assert_allclose(result.test_predictions.probabilities, probs, atol=1e-6)
    np.testing.assert_array_equal(result.test_predictions.labels, labels)


@pytest.mark.parametrize("skip_corrupt_shards", [False, True])
def test_without_evaluate_test_the_test_split_is_never_opened(dataset, tmp_path, monkeypatch,
                                                              skip_corrupt_shards):
    copy = tmp_path / "data"
    shutil.copytree(dataset, copy)
    for shard in copy.glob("test-*.tfrecord.gz"):
        shard.unlink()  # reading test at all would fail
    spy = SplitSpy(monkeypatch)
    result = run(copy, tmp_path / "run", dataclasses_replace(TRAIN, epochs=2),
                 on_epoch_end=spy.epoch_end, evaluate_test=False,
                 skip_corrupt_shards=skip_corrupt_shards)
    assert spy.splits() == {"train", "val"}
    assert result.test is None and result.test_predictions is None
    assert json.loads((tmp_path / "run" / "config.json").read_text())["test_examples"] is None
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Not evaluated" in report and "## Calibration on validation" in report
    assert "`roc.png` and `reliability.png` (validation)" in report
    for png in ("roc.png", "reliability.png"):  # on validation, the split that was evaluated
        assert (tmp_path / "run" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(DataError, match="no test shards"):
        run(copy, tmp_path / "again", dataclasses_replace(TRAIN, epochs=1),
            skip_corrupt_shards=skip_corrupt_shards)


def test_an_empty_test_split_is_an_error_naming_the_directory(tmp_path):
    empty_test = write_dataset(tmp_path / "data", n_train=128, n_val=64, n_test=0)
    with pytest.raises(DataError, match="empty split") as info:
        run(empty_test, tmp_path / "run")
    assert str(empty_test) in str(info.value) and "test 0" in str(info.value)


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
    keys = ("train_loss", "train_auc", "val_auc", "val_log_loss", "val_gauc", "learning_rate")
    assert len(a) == len(b)
    for row_a, row_b in zip(a, b, strict=True):
        for key in keys:
            assert row_a[key] == pytest.approx(row_b[key], abs=tol), key


class Killed(Exception):
    """Stands in for SIGKILL: nothing after it runs (tests/test_faults.py sends real ones)."""


class KillAt(keras.callbacks.Callback):
    """Raises Killed after step ``step`` (1-based) of epoch ``epoch`` (1-based)."""

    def __init__(self, epoch, step):
        super().__init__()
        self.epoch, self.step, self.current = epoch, step, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch + 1 == self.step:
            raise Killed()


class CountTrainedSteps(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.trained = 0

    def on_train_batch_end(self, batch, logs=None):
        self.trained += not self.model.last_step_skipped


def _same_run(resumed, reference):
    _history_close(resumed.history, reference.history)
    assert resumed.best_epoch == reference.best_epoch
    assert resumed.test["auc"] == pytest.approx(reference.test["auc"], abs=1e-4)
    for got, want in zip(resumed.model.get_weights(), reference.model.get_weights(),
                         strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_kill_in_the_middle_of_epoch_3_loses_only_the_steps_since_the_last_backup(
        dataset, tmp_path):
    # 6 steps an epoch; a backup every 2 steps; killed after step 5 of epoch 3.
    train = dataclasses_replace(TRAIN, epochs=4, deterministic=True, backup_every="2")
    counter = CountTrainedSteps()
    reference = run(dataset, tmp_path / "reference", train, callbacks=[counter])
    assert counter.trained == 4 * 6
    first = CountTrainedSteps()
    with pytest.raises(Killed):
        run(dataset, tmp_path / "killed", train, callbacks=[first, KillAt(3, 5)])
    latest = checkpoint.latest(tmp_path / "killed" / "checkpoints")
    assert latest.name == "mid-epoch"
    assert checkpoint.read_state(latest)["epoch"] == 2
    assert checkpoint.read_state(latest)["step"] == 4
    second = CountTrainedSteps()
    resumed = run(dataset, tmp_path / "killed", train, resume=True, callbacks=[second])
    # Trained twice: only step 5 of epoch 3 (after the backup at step 4).
    assert first.trained + second.trained - 4 * 6 == 1
    _same_run(resumed, reference)


def test_kill_before_the_first_backup_then_resume_trains_to_the_end(dataset, tmp_path):
    train = dataclasses_replace(TRAIN, epochs=2, deterministic=True, backup_every="0")
    reference = run(dataset, tmp_path / "reference", train)
    with pytest.raises(Killed):
        run(dataset, tmp_path / "killed", train, callbacks=[KillAt(1, 3)])
    assert checkpoint.latest(tmp_path / "killed" / "checkpoints") is None
    lines = []
    resumed = runner.train(runner.TrainRequest(MODEL, train, dataset, tmp_path / "killed",
                                               resume=True, build_model=tracked_model,
                                               progress=False, log=lines.append))
    assert any("nothing to resume" in line and "starting fresh" in line for line in lines)
    _same_run(resumed, reference)


def test_a_user_callback_sees_the_exact_validation_figures_every_epoch(dataset, tmp_path):
    seen = []
    callback = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(
            (epoch, logs["val_auc"], logs["val_log_loss"], logs["val_gauc"])))
    result = run(dataset, tmp_path / "run", callbacks=[callback])
    assert [e for e, *_ in seen] == [0, 1, 2]
    for (_, auc, loss, gauc), row in zip(seen, result.history, strict=True):
        assert (auc, loss, gauc) == (row["val_auc"], row["val_log_loss"], row["val_gauc"])


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
    run(dataset, tmp_path / "run", dataclasses_replace(TRAIN, epochs=1))
    # A checkpoint of the custom loop's format (no "format" field) is refused in one line.
    state_file = checkpoint.latest(tmp_path / "run" / "checkpoints") / "state.json"
    state = json.loads(state_file.read_text())
    assert state["format"] == checkpoint.STATE_FORMAT
    state_file.write_text(json.dumps({k: v for k, v in state.items() if k != "format"}))
    with pytest.raises(checkpoint.CheckpointError, match="older mdaf_tf"):
        run(dataset, tmp_path / "run", dataclasses_replace(TRAIN, epochs=1), resume=True)
    state_file.write_text(json.dumps(state))
    with pytest.raises(checkpoint.CheckpointError, match="learning_rate"):
        run(dataset, tmp_path / "run", dataclasses_replace(TRAIN, epochs=1, learning_rate=0.5),
            resume=True)


def test_resume_of_a_finished_run_only_reports(dataset, tmp_path):
    first = run(dataset, tmp_path / "run", dataclasses_replace(TRAIN, epochs=2))
    again = run(dataset, tmp_path / "run", dataclasses_replace(TRAIN, epochs=2), resume=True)
    assert again.history == first.history
    assert again.best["auc"] == pytest.approx(first.best["auc"], abs=1e-6)
    for key in ("auc", "gauc", "log_loss"):
        assert again.test[key] == pytest.approx(first.test[key], abs=1e-6)


def test_the_size_rule_fills_unset_fields_and_config_json_records_its_choice(dataset, tmp_path):
    # 384 training examples: the rule's batch 256 leaves one step an epoch (fewer than 500,
    # the floor of 256 holds); lr 1e-3 at 256; warmup 20% of 2 epochs.
    train = TrainConfig(epochs=2, jit_compile="false")
    run(dataset, tmp_path / "run", train=train)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["size_rule"]["train_examples"] == 384
    assert config["size_rule"]["chose"] == {"batch_size": 256, "learning_rate": 1e-3,
                                            "warmup_epochs": 0.4}
    assert (config["train"]["batch_size"], config["train"]["learning_rate"],
            config["train"]["warmup_epochs"]) == (256, 1e-3, 0.4)
    assert config["effective_batch_size"] == 256 and config["steps_per_epoch"] == 1
    # 384 examples: 19.2 a user -> 9.6 -> 8; 12.8 an item -> the floor of 4; 76.8 a category
    # -> 38.4 -> 32, the seed's width.
    widths = config["size_rule"]["embedding_widths"]["chose"]
    assert widths == {"user": 8, "item": 4, "cate": 32}
    assert config["model"]["embedding_dims"] == {"user": 8, "item": 4, "cate": 32}
    # The recorded config trains the same run again: nothing is left to the rule.
    model_again, again = config_file.resolve(tmp_path / "run" / "config.json", {})
    assert again == recipe.resolve(train, 384)[0]
    assert embedding_sizes.with_width_rule(model_again, 384)[1] == {}
