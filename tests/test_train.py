import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mdaf_tf import train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TAOBAO_43 = REPO.parent / "shared/data/taobao_user_behavior/users_43_complete_histories.csv"
TINY_MDAF = {
    "model": {"embedding_dims": {"user": 8, "item": 8, "cate": 4},
              "hidden_dim": 16, "num_cross_layers": 1, "num_mamba_layers": 1, "d_state": 4,
              "gate_hidden": 16, "output_hidden": [8]},
    "train": {"learning_rate": 0.003, "warmup_epochs": 0.5, "batch_size": 128,
              "deterministic": True},
}


def env(tmp_path):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", MDAF_TF_DATA_CACHE=str(tmp_path / "cache"),
                PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "data"
    subprocess.run([sys.executable, "-m", "pipelines.synthetic", "--output", str(out),
                    "--users", "100", "--impressions-per-user", "30"],
                   check=True, capture_output=True, cwd=REPO, env=env(out.parent))
    return out


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "tiny.json"
    path.write_text(json.dumps(TINY_MDAF))
    return path


def run_main(capsys, *argv):
    code = train.main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


def test_help_describes_every_flag(capsys):
    with pytest.raises(SystemExit) as info:
        train.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--data", "--model", "--epochs", "--batch-size", "--seed", "--output",
                 "--export", "--config", "--resume", "--max-steps-per-epoch"):
        assert flag in text


def test_directory_without_metadata(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, err = run_main(capsys, "--data", str(tmp_path / "empty"),
                         "--output", str(tmp_path / "run"), "--export", str(tmp_path / "e"))
    assert code == 2 and "metadata.json" in err and len(err.splitlines()) == 1


def test_unknown_schema_version(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "metadata.json").write_text(json.dumps({"schema_version": 99}))
    code, err = run_main(capsys, "--data", str(tmp_path / "d"),
                         "--output", str(tmp_path / "run"), "--export", str(tmp_path / "e"))
    assert code == 2 and "schema_version" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "config, field",
    [({"model": {"dropuot": 0.2}}, "dropuot"), ({"train": {"epochs": "ten"}}, "epochs"),
     ({"learning_rate": [1]}, "learning_rate")],
)
def test_bad_config_fields(tmp_path, capsys, config, field):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    code, err = run_main(capsys, "--config", str(path), "--output", str(tmp_path / "run"))
    assert code == 2 and field in err and str(path) in err and len(err.splitlines()) == 1


def test_export_path_is_a_file(tmp_path, capsys, synthetic):
    (tmp_path / "file").write_text("")
    code, err = run_main(capsys, "--data", str(synthetic), "--export", str(tmp_path / "file"),
                         "--output", str(tmp_path / "run"))
    assert code == 2 and "is a file" in err and len(err.splitlines()) == 1


def test_bad_backup_every_is_a_one_line_error(tmp_path, capsys, synthetic):
    code, err = run_main(capsys, "--data", str(synthetic), "--backup-every", "ten",
                         "--output", str(tmp_path / "run"), "--export", str(tmp_path / "e"))
    assert code == 2 and "backup_every" in err and len(err.splitlines()) == 1


def test_unknown_model_and_missing_data(tmp_path, capsys):
    code, err = run_main(capsys, "--model", "nope", "--output", str(tmp_path / "run"))
    assert code == 2 and "unknown model" in err
    code, err = run_main(capsys, "--data", str(tmp_path / "missing.csv"),
                         "--output", str(tmp_path / "run"), "--export", str(tmp_path / "e"))
    assert code == 2 and "no such file" in err


def test_error_exit_code_without_traceback_in_a_real_process(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mdaf_tf.train", "--data", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, env=env(tmp_path),
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")


def metrics_rows(run_dir):
    return list(csv.DictReader(open(run_dir / "metrics.csv")))


def cli(tmp_path, *args):
    return [sys.executable, "-m", "mdaf_tf.train", *args]


@pytest.mark.slow
def test_kill_during_epoch_3_then_resume_matches_the_quiet_uninterrupted_run(
        tmp_path, synthetic, tiny_config):
    common = ["--data", str(synthetic), "--config", str(tiny_config), "--epochs", "4",
              "--max-steps-per-epoch", "12"]
    reference = tmp_path / "reference"
    quiet = subprocess.run(cli(tmp_path, *common, "--output", str(reference),
                               "--export", str(tmp_path / "e1"), "--quiet"),
                           capture_output=True, text=True, cwd=tmp_path, env=env(tmp_path))
    # --quiet: the result line alone, no TensorFlow start-up lines, no progress
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr[-2000:]
    lines = quiet.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("test AUC "), lines
    assert (tmp_path / "e1" / "1" / "saved_model.pb").is_file()

    run_dir = tmp_path / "killed"
    args = cli(tmp_path, *common, "--output", str(run_dir), "--export", str(tmp_path / "e2"))
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=tmp_path, env=env(tmp_path))
    killed = False
    for line in proc.stdout:
        if line.startswith("epoch 3/4 ["):
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
    proc.wait()
    assert killed and proc.returncode == -signal.SIGKILL
    assert [r["epoch"] for r in metrics_rows(run_dir)] == ["1", "2"]

    resumed = subprocess.run(args + ["--resume"], capture_output=True, text=True, cwd=tmp_path,
                             env=env(tmp_path))
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "resumed from" in resumed.stdout and "epoch 2 done" in resumed.stdout
    got, want = metrics_rows(run_dir), metrics_rows(reference)
    assert len(got) == len(want) == 4
    for a, b in zip(got, want, strict=True):
        for key in ("train_loss", "train_auc", "val_auc", "val_log_loss", "learning_rate"):
            assert float(a[key]) == pytest.approx(float(b[key]), abs=1e-4), (a["epoch"], key)


@pytest.mark.slow
def test_synthetic_end_to_end_with_export_and_evaluate(tmp_path, synthetic, tiny_config):
    out, saved = tmp_path / "run", tmp_path / "saved"
    proc = subprocess.run(
        cli(tmp_path, "--data", str(synthetic), "--config", str(tiny_config), "--epochs", "2",
            "--output", str(out), "--export", str(saved)),
        capture_output=True, text=True, cwd=tmp_path, env=env(tmp_path))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "examples/s" in proc.stdout and "export check" in proc.stdout
    for name in ("metrics.csv", "report.md", "config.json", "learning_curves.png",
                 "gate_histogram.png", "roc.png", "reliability.png"):
        assert (out / name).is_file()
    report = (out / "report.md").read_text()
    assert "oracle (true click probability)" in report and "## Test (reported)" in report
    assert (saved / "1" / "saved_model.pb").is_file()
    final = next(line for line in proc.stdout.splitlines() if line.startswith("test AUC "))
    assert "selected on validation" in final
    reported_test_auc = float(final.split()[2].rstrip(","))

    def evaluate(split):
        ev = subprocess.run(
            [sys.executable, "-m", "mdaf_tf.evaluate", "--model", str(saved / "1"), "--data",
             str(synthetic), "--output", str(tmp_path / f"eval-{split}"), "--split", split],
            capture_output=True, text=True, cwd=tmp_path, env=env(tmp_path))
        assert ev.returncode == 0, ev.stderr[-2000:]
        return json.loads((tmp_path / f"eval-{split}" / "metrics.json").read_text())

    # The export is the epoch selected on validation: its validation AUC is the best epoch's,
    # its test AUC the one the run reported (printed to 4 decimals).
    best = max(float(r["val_auc"]) for r in metrics_rows(out))
    assert evaluate("val")["auc"] == pytest.approx(best, abs=1e-4)
    assert evaluate("test")["auc"] == pytest.approx(reported_test_auc, abs=2e-4)


@pytest.mark.slow
@pytest.mark.skipif(not TAOBAO_43.is_file(), reason="shared Taobao sample not present")
def test_taobao_csv_end_to_end(tmp_path, tiny_config):
    out, saved = tmp_path / "run", tmp_path / "saved"
    proc = subprocess.run(
        cli(tmp_path, "--data", str(TAOBAO_43), "--config", str(tiny_config), "--epochs", "2",
            "--output", str(out), "--export", str(saved)),
        capture_output=True, text=True, cwd=tmp_path, env=env(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert [r["epoch"] for r in metrics_rows(out)] == ["1", "2"]
    assert "AUC per gate bucket" in (out / "report.md").read_text()
    assert (saved / "1" / "saved_model.pb").is_file()
    assert "export check" in proc.stdout
    cached = list((tmp_path / "cache").glob("taobao-users_43_complete_histories-*"))
    assert len(cached) == 1 and (cached[0] / "metadata.json").is_file()


def test_final_line_reports_test_figures_of_the_validation_choice():
    from types import SimpleNamespace

    result = SimpleNamespace(
        test={"auc": 0.75, "gauc": 0.61, "log_loss": 0.5}, best={"auc": 0.8}, best_epoch=3,
        metadata={"oracle": {"auc": 0.9, "test": {"auc": 0.85}}})
    line = train.result_line(result)
    assert line.startswith("test AUC 0.7500, gAUC 0.6100, log loss 0.5000 (epoch 3, selected "
                           "on validation: val AUC 0.8000)")
    assert line.endswith(f"oracle test AUC 0.8500, lift captured {0.25 / 0.35:.3f}")


def test_scan_flag_selects_the_implementation_over_the_config(tmp_path):
    from mdaf_tf.train import build_parser, resolve_configs

    config = tmp_path / "c.json"
    config.write_text(json.dumps({"model": {"scan": "chunked"}}))
    parse = build_parser().parse_args
    model_config, _ = resolve_configs(parse(["--data", "d", "--config", str(config)]))
    assert model_config.scan == "chunked"
    model_config, _ = resolve_configs(
        parse(["--data", "d", "--config", str(config), "--scan", "reference"]))
    assert model_config.scan == "reference"
    model_config, _ = resolve_configs(parse(["--data", "d"]))
    assert model_config.scan == "auto"  # the fast op on CPU, chunked elsewhere


def train_one_epoch_with_export_check(tmp_path, data_dir, tiny_config, out, saved):
    proc = subprocess.run(
        cli(tmp_path, "--data", str(data_dir), "--config", str(tiny_config), "--epochs", "1",
            "--output", str(out), "--export", str(saved)),
        capture_output=True, text=True, cwd=tmp_path, env=env(tmp_path))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "export check" in proc.stdout


def test_impression_log_with_extra_columns_trains_exports_and_serves_raw_fields(tmp_path,
                                                                              tiny_config):
    """An impression log with string, integer and numeric extra columns (some missing):
    pipeline -> train with export check -> evaluate -> a request like saved_models/README's."""
    import numpy as np
    import tensorflow as tf

    from pipelines import impressions

    rng = np.random.default_rng(2)
    lines = ["user_id,item_id,cate_id,timestamp,label,brand,pid,price"]
    for k in range(1500):
        item = int(rng.integers(0, 40))
        brand = "" if rng.random() < 0.1 else f"b{item % 7}"
        price = "" if rng.random() < 0.2 else f"{rng.normal(20, 5):.2f}"
        lines.append(f"u{rng.integers(0, 60)},i{item},c{item % 5},{1_700_000_000 + 600 * k},"
                     f"{int(rng.random() < 0.4)},{brand},{rng.integers(1, 4)},{price}")
    (tmp_path / "log.csv").write_text("\n".join(lines) + "\n")
    data_dir, out, saved = tmp_path / "data", tmp_path / "run", tmp_path / "saved"
    impressions.main(["--input", str(tmp_path / "log.csv"), "--output", str(data_dir),
                      "--categorical", "brand,pid", "--numeric", "price", "--history-fields",
                      "item_id,cate_id,brand", "--max-seq-len", "5"])
    train_one_epoch_with_export_check(tmp_path, data_dir, tiny_config, out, saved)
    ev = subprocess.run(
        [sys.executable, "-m", "mdaf_tf.evaluate", "--model", str(saved / "1"), "--data",
         str(data_dir), "--output", str(tmp_path / "eval")],
        capture_output=True, text=True, cwd=tmp_path, env=env(tmp_path))
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert 0 < json.loads((tmp_path / "eval" / "metrics.json").read_text())["auc"] < 1
    serve = tf.saved_model.load(str(saved / "1")).signatures["serving_default"]
    pad = ["", "", ""]
    request = dict(
        user_id=["u3", "never-seen"], item_id=["i7", "i8"], cate_id=["c2", "c3"],
        brand=["b0", "<missing>"], pid=[2, 3], hour=[21, 3], day_of_week=[4, 0],
        price=[12.5, float("nan")], hist_item_id=[pad + ["i1", "i7"]] * 2,
        hist_cate_id=[pad + ["c1", "c2"]] * 2, hist_brand=[pad + ["<missing>", "b0"]] * 2,
        hist_len=[2, 0])
    dtypes = {"pid": tf.int64, "hour": tf.int64, "day_of_week": tf.int64,
              "hist_len": tf.int64, "price": tf.float32}
    result = serve(**{k: tf.constant(v, dtypes.get(k, tf.string)) for k, v in request.items()})
    probability = result["probability"].numpy()
    assert probability.shape[0] == 2 and np.isfinite(probability).all()


def test_taobao_ad_files_train_export_and_serve_the_raw_fields(tmp_path, tiny_config):
    """pipelines.taobao_ad on the hand-written files -> train with the export check -> a
    request with the fields as they appear in the three files (pid and brand text, ids and
    profile fields as written, a user without a profile, a NULL-brand ad)."""
    import numpy as np
    import tensorflow as tf

    from pipelines import taobao_ad

    files = REPO / "tests" / "pipelines" / "taobao_ad_files"
    data_dir, out, saved = tmp_path / "data", tmp_path / "run", tmp_path / "saved"
    taobao_ad.main(["--raw-sample", str(files / "raw_sample.csv"), "--ad-feature",
                    str(files / "ad_feature.csv"), "--user-profile",
                    str(files / "user_profile.csv"), "--output", str(data_dir),
                    "--max-seq-len", "4", "--min-count", "1"])
    train_one_epoch_with_export_check(tmp_path, data_dir, tiny_config, out, saved)
    serve = tf.saved_model.load(str(saved / "1")).signatures["serving_default"]
    text = lambda *v: tf.constant(list(v), tf.string)  # noqa: E731
    ints = lambda *v: tf.constant(list(v), tf.int64)  # noqa: E731
    request = {
        "user_id": ints(7, 2), "item_id": ints(102, 103), "cate_id": ints(10, 11),
        "campaign_id": ints(501, 502), "customer": ints(9001, 9002),
        "brand": text("<missing>", "7002"), "pid": text("430548_1007", "430548_1002"),
        "price": tf.constant([30.0, 199.0]), "hour": ints(9, 22), "day_of_week": ints(5, 1),
        **{f: text("<missing>", "2") for f in taobao_ad.PROFILE_FIELDS},
        "hist_item_id": ints(-1, -1, 101, 104) * tf.ones((2, 1), tf.int64),
        "hist_cate_id": ints(-1, -1, 10, 12) * tf.ones((2, 1), tf.int64),
        "hist_len": ints(2, 2)}
    inputs = {spec.name for spec in serve.structured_input_signature[1].values()}
    assert inputs == set(request)
    probability = serve(**request)["probability"].numpy()
    assert probability.shape[0] == 2 and np.isfinite(probability).all()
