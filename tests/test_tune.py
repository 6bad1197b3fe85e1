import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent / "training"))

from tiny_run import SplitSpy, tiny_model, write_dataset  # noqa: E402

from mdaf_tf import tune  # noqa: E402
from mdaf_tf.training import config_file, runner  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY_MDAF = {
    "model": {"embedding_dims": {"user": 8, "item": 8, "cate": 4},
              "hidden_dim": 16, "num_cross_layers": 1, "num_mamba_layers": 1, "d_state": 4,
              "gate_hidden": 16, "output_hidden": [8], "scan": "auto"},
    "train": {"learning_rate": 0.003, "warmup_epochs": 0.5, "batch_size": 128},
}
SEARCHED = {"dropout": "model", "weight_decay": "train", "label_smoothing": "train"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "data"
    subprocess.run([sys.executable, "-m", "pipelines.synthetic", "--output", str(out),
                    "--users", "40", "--items", "30", "--categories", "5",
                    "--impressions-per-user", "20"],
                   check=True, capture_output=True, cwd=REPO,
                   env=dict(os.environ, PYTHONPATH=str(REPO)))
    return out


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "tiny.json"
    path.write_text(json.dumps(TINY_MDAF))
    return path


class CountingTrain:
    """Wraps runner.train: records each call; can interrupt a run after an epoch."""

    def __init__(self, interrupt_after_epoch=None):
        self.calls = []
        self.interrupt_after_epoch = interrupt_after_epoch
        self.real = runner.train

    def __call__(self, request):
        self.calls.append({"output_dir": request.output_dir, "resume": request.resume,
                           "model_config": request.model_config})
        if self.interrupt_after_epoch is not None:
            def stop(epoch, row):
                if epoch == self.interrupt_after_epoch:
                    raise KeyboardInterrupt  # as a kill after the epoch's checkpoint
            request = dataclasses.replace(request, on_epoch_end=stop)
        return self.real(request)


def search(dataset, tiny_config, output, *extra, counter=None):
    argv = ["--data", str(dataset), "--config", str(tiny_config), "--output", str(output),
            "--epochs-per-trial", "2", "--seed", "7", *extra]
    counter = counter or CountingTrain()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "train", counter)
        code = tune.main(argv)
    return code, counter


@pytest.fixture(scope="module")
def two_trials(dataset, tiny_config, tmp_path_factory):
    output = tmp_path_factory.mktemp("tune") / "search-out"
    code, counter = search(dataset, tiny_config, output, "--tuner", "random",
                           "--max-trials", "2")
    assert code == 0
    return output, counter


def trial_dirs(output):
    return sorted((output / "search").glob("trial_*"))


def recorded_best_val_auc(trial_dir):
    """The trial's best validation AUC, read from the runner's own metrics.csv."""
    with open(trial_dir / "run" / "metrics.csv") as f:
        return max(float(row["val_auc"]) for row in csv.DictReader(f))


def recorded_best_epoch_row(trial_dir):
    """The metrics.csv row of the epoch selected on validation: the highest val_auc, the
    earliest such epoch on a tie (early stopping needs a strict improvement)."""
    with open(trial_dir / "run" / "metrics.csv") as f:
        epochs = list(csv.DictReader(f))
    best = max(float(r["val_auc"]) for r in epochs)
    return next(r for r in epochs if float(r["val_auc"]) == best)


def trial_values(trial_dir):
    """The hyperparameter values Keras Tuner recorded for the trial."""
    return json.loads((trial_dir / "trial.json").read_text())["hyperparameters"]["values"]


def test_help_describes_every_flag(capsys):
    with pytest.raises(SystemExit) as info:
        tune.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--data", "--model", "--tuner", "--max-trials", "--epochs-per-trial",
                 "--output", "--seed", "--config", "--batch-size", "--max-steps-per-epoch",
                 "--dropout", "--weight-decay", "--label-smoothing", "--tune-learning-rate",
                 "--learning-rate", "--tune-embedding-l2", "--embedding-l2"):
        assert flag in text


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--tuner", "grid"], "unknown tuner"),
        (["--dropout", "0.4,0.1"], "wrong order"),
        (["--weight-decay", "1e-4,1e-5"], "wrong order"),
        (["--label-smoothing", "0.1"], "two numbers"),
        (["--weight-decay", "0,1e-4"], "log scale"),
        (["--max-trials", "0"], "--max-trials"),
        (["--epochs-per-trial", "0"], "--epochs-per-trial"),
        (["--model", "nosuch"], "unknown model"),
    ],
)
def test_bad_arguments_one_line_exit_2(flags, words, dataset, tmp_path, capsys):
    code = tune.main(["--data", str(dataset), "--output", str(tmp_path / "out"), *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and words in err
    assert not (tmp_path / "out").exists()


def test_missing_data_dir(tmp_path, capsys):
    code = tune.main(["--data", str(tmp_path / "nowhere"), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "nowhere" in err


def test_best_config_is_the_best_trial_and_reproduces_its_auc(two_trials, dataset, tmp_path):
    output, counter = two_trials
    dirs = trial_dirs(output)
    assert len(dirs) == 2 and len(counter.calls) == 2
    aucs = {d.name: recorded_best_val_auc(d) for d in dirs}
    best_dir = max(dirs, key=lambda d: aucs[d.name])

    saved = json.loads((output / "best_config.json").read_text())
    for name, section in SEARCHED.items():
        assert saved[section][name] == trial_values(best_dir)[name]
    model_config, train_config = config_file.resolve(output / "best_config.json", {})
    assert train_config.epochs == 2 and train_config.seed == 7

    result = runner.train(runner.TrainRequest(model_config, train_config, dataset,
                                              tmp_path / "retrain", progress=False,
                                              write_reports=False, log=lambda m: None))
    assert result.best["auc"] == pytest.approx(aucs[best_dir.name], abs=1e-4)
    # The reported test figures are that trial's, from its kept checkpoint.
    reported = json.loads((output / "selected_test.json").read_text())
    assert f"trial_{reported['trial']}" == best_dir.name and reported["split"] == "test"
    for key in ("auc", "gauc", "log_loss"):
        assert reported[key] == pytest.approx(result.test[key], abs=1e-4)


def test_trials_table_sorted_with_gap(two_trials):
    output, _ = two_trials
    with open(output / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["COMPLETED", "COMPLETED"]
    val = [float(r["val_auc"]) for r in rows]
    assert val == sorted(val, reverse=True)
    for row in rows:
        trial_dir = output / "search" / f"trial_{row['trial']}"
        # Every metric of the row against the trial's own metrics.csv, not the row itself.
        selected = recorded_best_epoch_row(trial_dir)
        assert int(row["best_epoch"]) == int(selected["epoch"])
        assert float(row["val_auc"]) == pytest.approx(float(selected["val_auc"]), abs=1e-9)
        assert float(row["val_log_loss"]) == pytest.approx(float(selected["val_log_loss"]),
                                                           abs=1e-9)
        assert float(row["train_auc"]) == pytest.approx(float(selected["train_auc"]), abs=1e-9)
        gap = float(selected["train_auc"]) - float(selected["val_auc"])
        assert float(row["train_val_gap"]) == pytest.approx(gap, abs=1e-9)
        assert float(row["dropout"]) == trial_values(trial_dir)["dropout"]
        assert 0.1 <= float(row["dropout"]) <= 0.4
        assert 1e-5 <= float(row["weight_decay"]) <= 1e-4
        assert 0.0 <= float(row["label_smoothing"]) <= 0.1
    markdown = (output / "trials.md").read_text()
    assert markdown.count("| COMPLETED |") == 2 and "train-val gap" in markdown


@pytest.mark.slow
def test_rerun_and_interrupted_search_do_not_repeat_finished_trials(
        two_trials, dataset, tiny_config, tmp_path):
    output = tmp_path / "copy"
    shutil.copytree(two_trials[0], output)
    finished = {d.name: (d / "run" / "metrics.csv").read_bytes() for d in trial_dirs(output)}
    code, counter = search(dataset, tiny_config, output, "--tuner", "random",
                           "--max-trials", "2")
    assert code == 0 and counter.calls == []

    # A third trial, killed after its first epoch.
    with pytest.raises(KeyboardInterrupt):
        search(dataset, tiny_config, output, "--tuner", "random", "--max-trials", "3",
               counter=CountingTrain(interrupt_after_epoch=1))
    interrupted = [d for d in trial_dirs(output) if d.name not in finished]
    assert len(interrupted) == 1
    values = trial_values(interrupted[0])

    code, counter = search(dataset, tiny_config, output, "--tuner", "random",
                           "--max-trials", "3")
    assert code == 0
    assert [(c["output_dir"].parent.name, c["resume"]) for c in counter.calls] == [
        (interrupted[0].name, True)]
    assert trial_values(interrupted[0]) == values
    for name, metrics in finished.items():
        assert (output / "search" / name / "run" / "metrics.csv").read_bytes() == metrics
    with open(output / "trials.csv") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["COMPLETED"] * 3


def test_other_settings_in_the_same_directory_are_refused(two_trials, dataset, tiny_config,
                                                          tmp_path, capsys):
    output = tmp_path / "copy"
    shutil.copytree(two_trials[0], output)
    code, counter = search(dataset, tiny_config, output, "--tuner", "random",
                           "--max-trials", "3", "--dropout", "0.2,0.3")
    err = capsys.readouterr().err.strip()
    assert code == 2 and counter.calls == [] and "other settings" in err


@pytest.mark.slow
@pytest.mark.parametrize("tuner", ["bayesian", "hyperband"])
def test_other_tuners_search_within_given_bounds(tuner, dataset, tiny_config, tmp_path):
    if tuner == "bayesian":
        pytest.importorskip("sklearn")
    code, counter = search(dataset, tiny_config, tmp_path / "out", "--tuner", tuner,
                           "--max-trials", "1", "--epochs-per-trial", "1",
                           "--dropout", "0.2,0.3", "--tune-learning-rate")
    assert code == 0 and len(counter.calls) == 1
    saved = json.loads((tmp_path / "out" / "best_config.json").read_text())
    assert 0.2 <= saved["model"]["dropout"] <= 0.3
    assert 1e-4 <= saved["train"]["learning_rate"] <= 1e-3
    assert saved["train"]["epochs"] == 1


def test_embedding_l2_bounds_put_the_sampled_penalty_into_the_trained_model(
        dataset, tiny_config, tmp_path):
    output = tmp_path / "out"
    code, counter = search(dataset, tiny_config, output, "--tuner", "random",
                           "--max-trials", "1", "--epochs-per-trial", "1",
                           "--max-steps-per-epoch", "2", "--embedding-l2", "1e-4,1e-3")
    assert code == 0 and len(counter.calls) == 1
    (trial_dir,) = trial_dirs(output)
    sampled = trial_values(trial_dir)["embedding_l2"]
    assert 1e-4 <= sampled <= 1e-3
    # The value reached the model that was trained, best_config.json and trials.csv.
    assert counter.calls[0]["model_config"].embedding_l2 == sampled
    saved = json.loads((output / "best_config.json").read_text())
    assert saved["model"]["embedding_l2"] == sampled
    with open(output / "trials.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert float(row["embedding_l2"]) == pytest.approx(sampled)


def test_trials_never_read_test_and_the_reported_test_is_the_validation_choice(
        tmp_path, monkeypatch, capsys):
    data_dir = write_dataset(tmp_path / "data", n_train=256, n_val=64, n_test=96)
    dropouts = []  # of every model built, trials' and the final evaluation's

    def build(name, config):
        dropouts.append(config.dropout)
        return tiny_model(name, config)

    # Scripted AUCs: validation rises with dropout, test falls with it, so selecting on test
    # would pick the other trial.
    spy = SplitSpy(monkeypatch, script=lambda split: (
        0.5 + dropouts[-1] / 2 if split == "val" else 1.0 - dropouts[-1]))
    monkeypatch.setattr(runner, "default_build_model", build)
    real_train = runner.train

    def trial(*args, **kwargs):
        spy.mark("trial_start")
        try:
            return real_train(*args, **kwargs)
        finally:
            spy.mark("trial_end")

    monkeypatch.setattr(runner, "train", trial)
    output = tmp_path / "search"
    code = tune.main(["--data", str(data_dir), "--output", str(output), "--tuner", "random",
                      "--max-trials", "2", "--epochs-per-trial", "1", "--batch-size", "64",
                      "--seed", "7"])
    assert code == 0
    last_trial_end = max(i for i, e in enumerate(spy.events) if e == ("trial_end",))
    assert spy.splits(spy.events[:last_trial_end]) == {"train", "val"}
    assert spy.events[last_trial_end:].count(("make_dataset", "test")) == 1

    with open(output / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    trial_dropout = {r["trial"]: float(r["dropout"]) for r in rows}
    assert len(trial_dropout) == 2 and len(set(trial_dropout.values())) == 2
    for row in rows:  # the table stays on validation figures
        assert float(row["val_auc"]) == pytest.approx(0.5 + float(row["dropout"]) / 2)
    chosen = max(trial_dropout, key=trial_dropout.get)
    reported = json.loads((output / "selected_test.json").read_text())
    assert reported["split"] == "test" and reported["trial"] == chosen
    assert reported["auc"] == pytest.approx(1.0 - trial_dropout[chosen])
    assert reported["auc"] < 1.0 - min(trial_dropout.values())  # test would choose otherwise
    assert f"trial {chosen} selected on validation" in capsys.readouterr().out

    # The reported log loss and gAUC are the chosen weights' (retrained deterministically
    # from best_config.json, the same trial's configs, and evaluated on test by the runner).
    model_config, train_config = config_file.resolve(output / "best_config.json", {})
    again = real_train(runner.TrainRequest(model_config, train_config, data_dir, tmp_path / "again",
                       build_model=tiny_model, progress=False, write_reports=False,
                       log=lambda m: None))
    assert again.best_epoch == reported["best_epoch"]
    assert reported["log_loss"] == pytest.approx(again.test["log_loss"], abs=1e-6)
    assert reported["gauc"] == pytest.approx(again.test["gauc"], abs=1e-6)
