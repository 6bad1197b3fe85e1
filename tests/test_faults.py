"""Faults: SIGKILL at random moments, Ctrl-C, corrupt TFRecord shards, disk full on export.

The process tests run ``tests/fault_driver.py`` (``mdaf_tf.train.main`` with a tiny model)
as a subprocess; the others call the runner and the exporter in-process.
"""

import csv
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from mdaf_tf import data, export, train
from mdaf_tf.config import TrainConfig
from mdaf_tf.data import DataError
from mdaf_tf.models.config import ModelConfig
from mdaf_tf.training import checkpoint, runner

sys.path.insert(0, str(Path(__file__).resolve().parent / "training"))
from tiny_run import tiny_model, write_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DRIVER = REPO / "tests" / "fault_driver.py"
CONFIG = {"train": {"batch_size": 32, "learning_rate": 0.01, "warmup_epochs": 0.5,
                    "deterministic": True, "jit_compile": "false", "backup_every": "3"}}
EPOCHS = "3"
METRIC_KEYS = ("train_loss", "train_auc", "val_auc", "val_log_loss", "learning_rate")


def driver_env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1",
                FAULT_DRIVER_NO_EXPORT_CHECK="1", PYTHONPATH=str(REPO))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("faults") / "data", n_train=1024, n_val=256)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "tiny.json"
    path.write_text(json.dumps(CONFIG))
    return path


def driver_args(dataset, config_file, run_dir, export_dir):
    return [sys.executable, str(DRIVER), "--data", str(dataset), "--config", str(config_file),
            "--epochs", EPOCHS, "--seed", "3", "--output", str(run_dir),
            "--export", str(export_dir)]


def metrics(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return [{k: float(row[k]) for k in METRIC_KEYS} for row in csv.DictReader(f)]


def raw_val_inputs(dataset):
    meta = data.load_metadata(str(dataset))
    features = data.read_split_numpy(str(dataset), "val")
    raw = export.dense_to_raw(features, export.read_vocabularies(dataset, meta))
    return {k: tf.constant(v) for k, v in raw.items()}


def export_predictions(version_dir, inputs):
    loaded = tf.saved_model.load(str(version_dir))
    return loaded.signatures["serving_default"](**inputs)["probability"].numpy()


TRAINING_STARTED = "epoch 1/3 ["


def start_logged(args, log_path, cwd):
    """Start ``args`` with its output in ``log_path``; wait for the first training line.
    Returns (process, time.perf_counter() at that line)."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=driver_env(),
                                cwd=cwd)
    while TRAINING_STARTED not in log_path.read_text() and proc.poll() is None:
        time.sleep(0.02)
    return proc, time.perf_counter()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, dataset, config_file):
    """An uninterrupted run: its metrics, export predictions and how long it ran after its
    first training line (training, checkpoints, reports, export)."""
    root = tmp_path_factory.mktemp("reference")
    proc, training_started = start_logged(
        driver_args(dataset, config_file, root / "run", root / "export"), root / "log.txt", root
    )
    returncode = proc.wait()
    seconds = time.perf_counter() - training_started
    assert returncode == 0, (root / "log.txt").read_text()[-3000:]
    return {"metrics": metrics(root / "run"), "seconds": seconds,
            "predictions": export_predictions(root / "export" / "1", raw_val_inputs(dataset))}


def assert_checkpoints_readable(checkpoint_dir):
    """Every checkpoint under its final name loads completely; returns how many there are."""
    found = [p for p in checkpoint_dir.iterdir() if not p.name.startswith(".")] \
        if checkpoint_dir.is_dir() else []
    for path in found:
        state = checkpoint.read_state(path)
        assert state["epoch"] >= 0
        for name in ("model.npz", "optimizer.npz"):
            with np.load(path / name) as arrays:
                assert all(np.isfinite(arrays[k]).all() or arrays[k].dtype.kind in "ui"
                           for k in arrays.files)
    return len(found)


def assert_exports_complete(export_dir):
    versions = sorted(p for p in export_dir.iterdir() if p.name.isdigit()) \
        if export_dir.is_dir() else []
    for version in versions:
        for name in ("saved_model.pb", "variables/variables.index", export.INFO_FILE):
            assert (version / name).is_file(), (version, name)
    return versions


def assert_matches_reference(run_dir, export_dir, reference, dataset):
    got = metrics(run_dir)
    assert len(got) == len(reference["metrics"])
    for a, b in zip(got, reference["metrics"], strict=True):
        for key in METRIC_KEYS:
            assert a[key] == pytest.approx(b[key], abs=1e-6), key
    inputs = raw_val_inputs(dataset)
    versions = assert_exports_complete(export_dir)
    assert versions
    for version in versions:  # an export from before the kill must be the same model
        np.testing.assert_allclose(export_predictions(version, inputs),
                                   reference["predictions"], atol=1e-6)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(tmp_path, dataset, config_file, reference):
    # Kill points: seconds after the first training line, over training, checkpoints,
    # reports and export (the moments with files being written): one at random in each third
    # of the uninterrupted run.
    rng = np.random.default_rng(20261129)
    delays = (np.arange(3) + rng.uniform(0.0, 1.0, size=3)) / 3 * reference["seconds"]
    outcomes = []
    for trial, delay in enumerate(delays):
        run_dir, export_dir = tmp_path / f"run{trial}", tmp_path / f"export{trial}"
        args = driver_args(dataset, config_file, run_dir, export_dir)
        proc, training_started = start_logged(args, tmp_path / f"log{trial}.txt", tmp_path)
        try:
            proc.wait(timeout=max(0.0, training_started + delay - time.perf_counter()))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        n_checkpoints = assert_checkpoints_readable(run_dir / "checkpoints")
        n_exports = len(assert_exports_complete(export_dir))
        outcomes.append((round(float(delay), 1), proc.returncode, n_checkpoints, n_exports))
        # --resume whether or not a backup was written: with none it starts fresh.
        done = subprocess.run(args + ["--resume"], capture_output=True, text=True,
                              env=driver_env(), cwd=tmp_path)
        assert done.returncode == 0, (outcomes[-1], done.stdout[-1500:], done.stderr[-1500:])
        assert_checkpoints_readable(run_dir / "checkpoints")
        assert not list(export_dir.glob(".tmp-*")), "a killed export's temporary is left"
        assert_matches_reference(run_dir, export_dir, reference, dataset)
    print("kill trials (delay s, return code, checkpoints, exports):", outcomes)
    assert any(rc == -signal.SIGKILL for _, rc, _, _ in outcomes)


@pytest.mark.slow
def test_ctrl_c_writes_a_checkpoint_says_how_to_resume_and_exits_nonzero(
    tmp_path, dataset, config_file, reference
):
    run_dir, export_dir = tmp_path / "run", tmp_path / "export"
    args = driver_args(dataset, config_file, run_dir, export_dir)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=driver_env(), cwd=tmp_path)
    for line in proc.stdout:
        if line.startswith("epoch 2/3 ["):
            proc.send_signal(signal.SIGINT)
            break
    out = line + proc.stdout.read()
    err = proc.stderr.read()
    assert proc.wait() == 130, out[-1500:] + err[-1500:]
    assert "Traceback" not in err
    assert "--resume" in err and "interrupted; the last checkpoint is" in err
    saved = checkpoint.latest(run_dir / "checkpoints")
    assert saved is not None and str(saved) in err
    state = checkpoint.read_state(saved)
    # Mid-epoch: the mid-epoch/ checkpoint holds the steps of epoch 2 done so far.
    assert (state["epoch"], saved.name) == (1, "mid-epoch") and state["step"] > 0, state
    (done,) = metrics(run_dir)
    assert done == pytest.approx(reference["metrics"][0], abs=1e-6)
    resumed = subprocess.run(args + ["--resume"], capture_output=True, text=True,
                             env=driver_env(), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{state['step']} steps of epoch 2" in resumed.stdout
    assert_matches_reference(run_dir, export_dir, reference, dataset)
    assert not (run_dir / "checkpoints" / "mid-epoch").exists()


# ----------------------------------------------------------------------------------------
# Corrupt shards.


def split_train_shard(data_dir, parts=2):
    """Rewrite the single train shard as ``parts`` shards (round robin)."""
    source = data_dir / "train-00000-of-00001.tfrecord.gz"
    reader = tf.data.TFRecordDataset(str(source), compression_type="GZIP")
    records = list(reader.as_numpy_iterator())
    source.unlink()
    paths = []
    for i in range(parts):
        path = data_dir / f"train-{i:05d}-of-{parts:05d}.tfrecord.gz"
        with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
            for record in records[i::parts]:
                writer.write(record)
        paths.append(path)
    return paths, len(records)


def _cut_at_a_record_boundary(blob: bytes) -> bytes:
    """The first half of the shard's records in a GZIP stream without its end marker, as a
    copy interrupted after a flush leaves it: TensorFlow reads it as a clean, shorter shard."""
    import struct
    import zlib

    raw = zlib.decompress(blob, wbits=31)
    offsets, at = [], 0
    while at < len(raw):  # TFRecord framing: length (8), crc (4), data, crc (4)
        (length,) = struct.unpack("<Q", raw[at:at + 8])
        at += 16 + length
        offsets.append(at)
    deflater = zlib.compressobj(wbits=31)
    return deflater.compress(raw[: offsets[len(offsets) // 2 - 1]]) + deflater.flush(
        zlib.Z_SYNC_FLUSH)


CORRUPTIONS = {
    "truncated": lambda blob: blob[: len(blob) // 2],
    "cut_at_record": _cut_at_a_record_boundary,
    "bit_flip": lambda blob: blob[:200] + bytes([blob[200] ^ 0xFF]) + blob[201:],
    "not_gzip": lambda blob: b"this is not a TFRecord shard\n" * 20,
}


def tiny_configs(**train):
    return (ModelConfig(), TrainConfig(epochs=1, batch_size=64, **train))


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corrupt_shard_is_an_error_naming_it(tmp_path, kind):
    data_dir = write_dataset(tmp_path / "data", n_train=512, n_val=64)
    paths, _ = split_train_shard(data_dir)
    paths[1].write_bytes(CORRUPTIONS[kind](paths[1].read_bytes()))
    with pytest.raises(DataError) as info:
        runner.train(runner.TrainRequest(*tiny_configs(), data_dir, tmp_path / "run",
                                         progress=False, write_reports=False,
                                         build_model=tiny_model, log=lambda *_: None))
    message = str(info.value)
    assert str(paths[1]) in message and str(paths[0]) not in message
    assert "--skip-corrupt-shards" in message


def test_skip_corrupt_shards_goes_on_and_reports(tmp_path):
    data_dir = write_dataset(tmp_path / "data", n_train=512, n_val=64)
    paths, total = split_train_shard(data_dir, parts=4)
    paths[2].write_bytes(CORRUPTIONS["truncated"](paths[2].read_bytes()))
    lines = []
    result = runner.train(runner.TrainRequest(*tiny_configs(), data_dir, tmp_path / "run",
                                              progress=False, write_reports=False,
                                              build_model=tiny_model, log=lines.append,
                                              skip_corrupt_shards=True))
    assert list(result.skipped_shards) == [str(paths[2])]
    # Cut mid-record, TensorFlow's reader reports the truncated record; cut where the compressed
    # data happens to end on a record boundary, it reads a clean shorter shard and the GZIP end
    # marker check names it (the "cut_at_record" case above reproduces that one on purpose).
    reason = result.skipped_shards[str(paths[2])]
    assert ("truncated record" in reason
            or reason == "truncated: the GZIP stream ends before its end marker"), reason
    assert any(str(paths[2]) in line and "skipped" in line for line in lines)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    kept = total - len(range(2, total, 4))
    assert config["train_examples"] == kept
    assert config["skipped_shards"] == result.skipped_shards
    assert len(result.history) == 1


def test_cli_corrupt_shard_one_line_exit_2(tmp_path, capsys, monkeypatch):
    data_dir = write_dataset(tmp_path / "data", n_train=256, n_val=64)
    paths, _ = split_train_shard(data_dir)
    paths[0].write_bytes(CORRUPTIONS["bit_flip"](paths[0].read_bytes()))
    monkeypatch.setattr(runner, "default_build_model", tiny_model)
    code = train.main(["--data", str(data_dir), "--epochs", "1", "--batch-size", "64",
                       "--output", str(tmp_path / "run"), "--export", str(tmp_path / "e")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert str(paths[0]) in err and "--skip-corrupt-shards" in err


# ----------------------------------------------------------------------------------------
# Disk full while exporting.


@pytest.fixture()
def trained(tmp_path):
    data_dir = write_dataset(tmp_path / "data", n_train=128, n_val=32, seed=4)
    config = ModelConfig(max_seq_len=6, vocab_sizes={"user": 22, "item": 32, "cate": 7})
    keras_model = tiny_model("tiny", config)
    return data_dir, config, keras_model


def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["saved_model_write", "info_file"])
def test_disk_full_during_export_keeps_previous_export(tmp_path, trained, monkeypatch, where):
    data_dir, config, keras_model = trained
    base = tmp_path / "saved"
    first = export.export_model(keras_model, config, "tiny", data_dir, base)
    inputs = raw_val_inputs(data_dir)
    before = export_predictions(first, inputs)
    files_before = sorted(str(p.relative_to(first)) for p in first.rglob("*"))

    if where == "saved_model_write":
        real_save = tf.saved_model.save

        def save_then_fail(obj, path, **kwargs):  # some files written, then the disk is full
            real_save(obj, path, **kwargs)
            (Path(path) / "variables" / "variables.data-00000-of-00001").write_bytes(b"\0")
            _enospc()

        monkeypatch.setattr(tf.saved_model, "save", save_then_fail)
    else:
        real_write_text = Path.write_text
        monkeypatch.setattr(Path, "write_text", lambda self, *a, **k: _enospc()
                            if self.name == Path(export.INFO_FILE).name
                            else real_write_text(self, *a, **k))
    with pytest.raises(export.ExportError, match="No space left on device"):
        export.export_model(keras_model, config, "tiny", data_dir, base)
    monkeypatch.undo()

    assert sorted(p.name for p in base.iterdir()) == ["1"]  # no version 2, no temporary
    assert sorted(str(p.relative_to(first)) for p in first.rglob("*")) == files_before
    np.testing.assert_array_equal(export_predictions(first, inputs), before)
    again = export.export_model(keras_model, config, "tiny", data_dir, base)
    assert again.name == "2"


def test_stale_temporary_of_a_killed_export_is_removed(tmp_path, trained):
    data_dir, config, keras_model = trained
    base = tmp_path / "saved"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = base / f".tmp-1-{dead}"
    (stale / "variables").mkdir(parents=True)
    live = base / f".tmp-1-{os.getpid()}-other"  # not this pattern's PID field: kept
    live.mkdir()
    path = export.export_model(keras_model, config, "tiny", data_dir, base)
    assert path.name == "1" and not stale.exists() and live.exists()


# ----------------------------------------------------------------------------------------
# Determinism.


def test_deterministic_flag_reaches_the_config():
    args = train.build_parser().parse_args(["--deterministic", "--strategy", "mirrored"])
    _, train_config = train.resolve_configs(args)
    assert train_config.deterministic and train_config.strategy == "mirrored"
    _, plain = train.resolve_configs(train.build_parser().parse_args([]))
    assert not plain.deterministic and plain.strategy == "default"


def test_deterministic_runs_give_identical_metrics_and_exported_predictions(tmp_path):
    data_dir = write_dataset(tmp_path / "data", n_train=512, n_val=128, seed=9)
    inputs = raw_val_inputs(data_dir)
    runs = []
    for k in range(2):
        train_config = TrainConfig(epochs=2, batch_size=32, learning_rate=0.01, seed=11,
                                   deterministic=True, jit_compile="false")
        result = runner.train(runner.TrainRequest(
            ModelConfig(), train_config, data_dir, tmp_path / f"run{k}",
            export_dir=tmp_path / f"saved{k}", progress=False, write_reports=False,
            build_model=tiny_model, log=lambda *_: None))
        runs.append((metrics(tmp_path / f"run{k}"),
                     export_predictions(result.export_path, inputs)))
    (metrics_a, predictions_a), (metrics_b, predictions_b) = runs
    assert metrics_a == metrics_b  # bit for bit
    np.testing.assert_array_equal(predictions_a, predictions_b)
    assert len(np.unique(predictions_a)) > 10  # a real model, not a constant


def test_shard_cut_at_a_record_boundary_is_an_error_not_a_short_epoch(tmp_path):
    data_dir = write_dataset(tmp_path / "data", n_train=512, n_val=64)
    paths, _ = split_train_shard(data_dir)
    keep = list(tf.data.TFRecordDataset(str(paths[1]), compression_type="GZIP")
                .take(10).as_numpy_iterator())
    with tf.io.TFRecordWriter(str(paths[1]), options="GZIP") as writer:  # a valid, short shard
        for record in keep:
            writer.write(record)
    with pytest.raises(DataError, match="ran out after .* fewer examples than metadata.json"):
        runner.train(runner.TrainRequest(*tiny_configs(), data_dir, tmp_path / "run",
                                         progress=False, write_reports=False,
                                         build_model=tiny_model, log=lambda *_: None))
    lines = []
    runner.train(runner.TrainRequest(*tiny_configs(), data_dir, tmp_path / "run2",
                                     progress=False, write_reports=False,
                                     build_model=tiny_model, log=lines.append,
                                     skip_corrupt_shards=True))
    assert any("hold 266 records but metadata.json says 512" in line for line in lines)
