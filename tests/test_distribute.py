"""--strategy: TF_CONFIG parsing, the chief, MirroredStrategy over two logical CPU devices
against the single-device run, and MultiWorkerMirroredStrategy with two local workers."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mdaf_tf import distribute, train
from mdaf_tf.config import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parent / "training"))
from tiny_run import write_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY_MDAF = {"embedding_dims": {"user": 8, "item": 8, "cate": 4},
             "hidden_dim": 16, "num_cross_layers": 1, "num_mamba_layers": 1, "d_state": 4,
             "gate_hidden": 16, "output_hidden": [8]}


def tf_config(workers, index, kind="worker", chief=None):
    cluster = {"worker": workers}
    if chief:
        cluster["chief"] = chief
    return {"cluster": cluster, "task": {"type": kind, "index": index}}


def test_tf_config_errors_are_one_line(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="needs TF_CONFIG"):
        distribute.read_tf_config()
    for text, message in (("{not json", "not valid JSON"),
                          ('{"cluster": {}}', "needs a 'cluster' and a 'task'"),
                          (json.dumps(tf_config(["a:1", "b:2"], 2)), "index 2 is not in")):
        monkeypatch.setenv("TF_CONFIG", text)
        with pytest.raises(ConfigError, match=message):
            distribute.read_tf_config()


def test_the_chief_is_worker_0_unless_a_chief_task_exists():
    workers = ["a:1", "b:2"]
    assert distribute.is_chief_task(None)
    assert distribute.is_chief_task(tf_config(workers, 0))
    assert not distribute.is_chief_task(tf_config(workers, 1))
    assert not distribute.is_chief_task(tf_config(workers, 0, chief=["c:3"]))
    assert distribute.is_chief_task(tf_config(workers, 0, kind="chief", chief=["c:3"]))


def test_batch_must_split_evenly_and_names_are_checked():
    class Two:
        num_replicas_in_sync = 2

    assert distribute.per_replica_batch_size(128, Two()) == 64
    with pytest.raises(ConfigError, match="not divisible by the 2 replicas"):
        distribute.per_replica_batch_size(127, Two())
    with pytest.raises(ConfigError, match="unknown strategy 'tpu'"):
        distribute.make_strategy("tpu")


def test_cli_multiworker_without_tf_config_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    data_dir = write_dataset(tmp_path / "data", n_train=64, n_val=16)
    code = train.main(["--data", str(data_dir), "--strategy", "multiworker", "--output",
                       str(tmp_path / "run"), "--export", str(tmp_path / "saved")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "TF_CONFIG" in err


MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    # Two logical CPU devices; must happen before TensorFlow initialises its devices.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from mdaf_tf.config import TrainConfig
    from mdaf_tf.models import make_config
    from mdaf_tf.training import runner
    data_dir, out, model_fields = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    results = {}
    for strategy in ("default", "mirrored"):
        tc = TrainConfig(epochs=3, batch_size=128, learning_rate=0.01, warmup_epochs=0.5,
                         strategy=strategy, deterministic=True, seed=5)
        config = make_config(tc.model, model_fields, strict=False)
        r = runner.train(runner.TrainRequest(config, tc, data_dir, f"{out}/{strategy}",
                                             progress=False,
                                             write_reports=False, log=lambda *a: None))
        config = json.load(open(f"{out}/{strategy}/config.json"))
        results[strategy] = {"best_auc": r.best["auc"], "replicas": config["replicas"],
                             "train_loss": [h["train_loss"] for h in r.history],
                             "val_auc": [h["val_auc"] for h in r.history]}
    print(json.dumps(results))
""")


def env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO),
                PYTHONUNBUFFERED="1")


@pytest.mark.slow
def test_mirrored_on_two_cpu_devices_matches_the_single_device_auc(tmp_path):
    data_dir = tmp_path / "synthetic"
    subprocess.run([sys.executable, "-m", "pipelines.synthetic", "--output", str(data_dir),
                    "--users", "150", "--impressions-per-user", "50"],
                   check=True, capture_output=True, cwd=REPO, env=env())
    # Dropout off: with it each replica draws its own masks, so the two runs would be two
    # different samples of the same training rather than the same computation.
    fields = dict(TINY_MDAF, dropout=0.0)
    proc = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, str(data_dir),
                           str(tmp_path / "runs"), json.dumps(fields)],
                          capture_output=True, text=True, cwd=REPO, env=env(), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    single, mirrored = results["default"], results["mirrored"]
    assert (single["replicas"], mirrored["replicas"]) == (1, 2)
    print("val AUC per epoch, default vs mirrored:", single["val_auc"], mirrored["val_auc"])
    assert single["best_auc"] > 0.6  # it learned something
    assert abs(single["best_auc"] - mirrored["best_auc"]) < 0.005
    for a, b in zip(single["train_loss"], mirrored["train_loss"], strict=True):
        assert a == pytest.approx(b, abs=2e-3)


SEQUENCE_ONLY_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from mdaf_tf.config import TrainConfig
    from mdaf_tf.models import make_config
    from mdaf_tf.training import runner
    data_dir, out, model_fields = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    tc = TrainConfig(model="mdaf_seq", epochs=1, batch_size=64, learning_rate=0.01,
                     strategy="mirrored", jit_compile="false")
    config = make_config(tc.model, model_fields, strict=False)
    r = runner.train(runner.TrainRequest(config, tc, data_dir, out, progress=False,
                                         write_reports=False,
                                         log=lambda *a: None))
    user = [v for v in r.model.trainable_variables if "user" in v.path]
    print(json.dumps({"val_auc": r.history[-1]["val_auc"], "user_tables": len(user)}))
""")


@pytest.mark.slow
def test_mirrored_trains_a_model_that_leaves_an_embedding_unused(tmp_path):
    # mdaf_seq never reads the user embedding: its gradient is None on every replica, which
    # the cross-replica sum must leave out rather than crash on.
    data_dir = write_dataset(tmp_path / "data", n_train=256, n_val=128)
    proc = subprocess.run([sys.executable, "-c", SEQUENCE_ONLY_SCRIPT, str(data_dir),
                           str(tmp_path / "run"), json.dumps(TINY_MDAF)],
                          capture_output=True, text=True, cwd=REPO, env=env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["user_tables"] >= 1  # the unused table exists, so the case is exercised
    assert 0.0 < result["val_auc"] < 1.0


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multiworker_two_local_workers_complete_an_epoch(tmp_path):
    data_dir = write_dataset(tmp_path / "data", n_train=512, n_val=128)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"train": {"batch_size": 64, "learning_rate": 0.01,
                                            "deterministic": True, "jit_compile": "false"}}))
    workers = [f"localhost:{free_port()}", f"localhost:{free_port()}"]
    run_dir, saved = tmp_path / "run", tmp_path / "saved"  # one shared path, as on an NFS
    procs = []
    for index in range(2):
        worker_env = dict(env(), TF_CONFIG=json.dumps(tf_config(workers, index)),
                          FAULT_DRIVER_NO_EXPORT_CHECK="1")
        procs.append(subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "fault_driver.py"), "--data", str(data_dir),
             "--config", str(config), "--epochs", "1", "--strategy", "multiworker",
             "--output", str(run_dir), "--export", str(saved)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=worker_env,
            cwd=tmp_path))
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=600)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]
    chief, worker = outputs
    assert "strategy multiworker: 2 replicas, global batch 64 (32 per replica)" in chief
    assert "worker done; the chief writes" in worker and "not the chief" in worker
    epoch_lines = [[line for line in out.splitlines() if line.startswith("epoch 1:")][0]
                   for out in outputs]
    # the same model on both workers: the same global loss and validation metrics
    pick = lambda line, key: line.split(f"{key} ")[1].split()[0]
    for key in ("train_loss", "val_auc", "val_log_loss"):
        assert pick(epoch_lines[0], key) == pick(epoch_lines[1], key)
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["epoch-0001"]
    assert sorted(p.name for p in saved.iterdir()) == ["1"]  # the chief's export only


def test_train_and_tune_take_the_strategy_flag():
    from mdaf_tf import tune

    for module in (train, tune):
        _, config = module.resolve_configs(module.build_parser().parse_args(
            ["--strategy", "mirrored"]))
        assert config.strategy == "mirrored"
        with pytest.raises(SystemExit):
            module.build_parser().parse_args(["--strategy", "tpu"])
