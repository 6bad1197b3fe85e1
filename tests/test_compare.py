import csv
import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "training"))

from tiny_run import tiny_model, write_dataset  # noqa: E402

from mdaf_tf import compare  # noqa: E402
from mdaf_tf.comparison import runs  # noqa: E402
from mdaf_tf.comparison.stats import holm  # noqa: E402
from mdaf_tf.data import (
    read_split_numpy,  # noqa: E402
    schema,  # noqa: E402
)
from mdaf_tf.models import registry  # noqa: E402
from mdaf_tf.training import runner  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TAOBAO_SAMPLE = REPO.parent / "shared/data/taobao_user_behavior/users_43_complete_histories.csv"
TINY_MODEL = {
    "embedding_dims": {"user": 8, "item": 8, "cate": 8},
    "hidden_dim": 16, "d_state": 4, "gate_hidden": 16, "output_hidden": [8],
    "deep_hidden": [16, 8], "autoint_attention_dim": 8, "bst_heads": 2,
    "num_mamba_layers": 1,
}
MODELS, SEEDS = ("dcnv2", "dcnv3"), (1, 2)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    subprocess.run(
        [sys.executable, "-m", "pipelines.synthetic", "--output", str(out), "--users", "40",
         "--items", "30", "--categories", "5", "--impressions-per-user", "20"],
        check=True, cwd=REPO, capture_output=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    return out


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "tiny.json"
    path.write_text(json.dumps({"model": TINY_MODEL, "train": {"batch_size": 64}}))
    return path


def _args(dataset, config_file, output, models=MODELS, seeds=SEEDS, reference="dcnv3"):
    return [
        "--data", str(dataset), "--models", ",".join(models),
        "--seeds", ",".join(map(str, seeds)), "--output", str(output), "--epochs", "1",
        "--max-steps-per-epoch", "2", "--reference", reference, "--config", str(config_file),
        "--inference-batch-size", "64", "--timing-repeats", "1", "--quiet",
    ]


class CountingTrain:
    """runner.train that records its calls and can be told to fail for some runs (or to
    build every model as ``build_model`` instead). With ``predict_test``, each trained
    model's (the selected weights') probabilities on the test split are kept in
    ``test_probabilities``, computed here in eager mode outside the runner's evaluation."""

    def __init__(self, fail=(), build_model=None, predict_test=False):
        self.calls, self.fail, self.build_model = [], set(fail), build_model
        self.predict_test, self.test_probabilities = predict_test, {}

    def __call__(self, request):
        key = (request.train_config.model, request.train_config.seed)
        self.calls.append(key)
        if key in self.fail:
            raise RuntimeError(f"forced failure of {key}")
        if self.build_model is not None:
            request = dataclasses.replace(request, build_model=self.build_model)
        result = runner.train(request)
        if self.predict_test:
            test = read_split_numpy(request.data_dir, "test")
            inputs = {k: test[k] for k in schema.MODEL_INPUT_NAMES}
            out = result.model(inputs, training=False)
            self.test_probabilities[key] = np.asarray(out["probability"]).reshape(-1)
        return result


def pairwise_auc(labels, scores):
    """P(score of a positive > score of a negative), ties counting one half."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def per_user_auc(labels, scores, users):
    """Examples-weighted mean of each user's pairwise AUC, over users with both labels."""
    total = weight = 0.0
    for user in np.unique(users):
        y, s = labels[users == user], scores[users == user]
        if 0 < y.sum() < len(y):
            total += len(y) * pairwise_auc(y, s)
            weight += len(y)
    return total / weight


def _read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _result(output, model, seed):
    return json.loads((output / "runs" / model / f"seed-{seed}" / "result.json").read_text())


def test_tables_agree_with_the_runs_and_a_rerun_skips_them(dataset, config_file, tmp_path,
                                                           capsys):
    output = tmp_path / "cmp"
    train = CountingTrain(predict_test=True)
    assert compare.main(_args(dataset, config_file, output), train_fn=train) == 0
    assert sorted(train.calls) == sorted((m, s) for m in MODELS for s in SEEDS)
    test_split = read_split_numpy(dataset, "test")
    test_labels = test_split[schema.LABEL].astype(np.float64)
    test_users = test_split[schema.USER_KEY]
    assert 0 < test_labels.sum() < len(test_labels)
    for name in ("table3.md", "table3.csv", "table8.md", "table9.md", "runs.csv", "auc_bar.png"):
        assert (output / name).is_file(), name

    results = {(m, s): _result(output, m, s) for m in MODELS for s in SEEDS}
    for (model, seed), r in results.items():
        metrics = _read_csv(output / "runs" / model / f"seed-{seed}" / "metrics.csv")
        assert len(metrics) == 1  # one epoch
        assert r["val_auc"] == pytest.approx(float(metrics[0]["val_auc"]), abs=1e-12)
        assert r["val_log_loss"] == pytest.approx(float(metrics[0]["val_log_loss"]), abs=1e-12)
        # The test figures are those of the run's selected weights on the test split (the
        # AUCs' tolerance allows a few pairs whose order flips between compiled and eager).
        p = train.test_probabilities[(model, seed)].astype(np.float64)
        assert r["test_auc"] == pytest.approx(pairwise_auc(test_labels, p), abs=1e-3)
        assert r["test_gauc"] == pytest.approx(per_user_auc(test_labels, p, test_users),
                                               abs=1e-3)
        q = np.clip(p, 1e-7, 1 - 1e-7)
        assert r["test_log_loss"] == pytest.approx(
            -np.mean(test_labels * np.log(q) + (1 - test_labels) * np.log(1 - q)), rel=1e-6)
        assert r["test_auc"] != r["val_auc"]
        assert r["train_examples_per_second"] == pytest.approx(
            float(metrics[0]["examples_per_second"]))
        assert r["inference_batch_size"] == 64 and r["inference_ms_per_batch"] > 0
        assert r["inference_examples_per_second"] == pytest.approx(
            64 / (r["inference_ms_per_batch"] / 1000))
        assert r["peak_rss_mib"] > 50

    # Table 3 is on the test figures of the weights each run selected on validation.
    rows = {row["model"]: row for row in _read_csv(output / "table3.csv")}
    assert list(rows) == list(MODELS)
    auc = {m: [results[(m, s)]["test_auc"] for s in SEEDS] for m in MODELS}
    for model in MODELS:
        assert float(rows[model]["test_auc_mean"]) == pytest.approx(np.mean(auc[model]))
        assert float(rows[model]["test_auc_std"]) == pytest.approx(np.std(auc[model], ddof=1))
        assert float(rows[model]["test_gauc_mean"]) == pytest.approx(
            np.mean([results[(model, s)]["test_gauc"] for s in SEEDS]))
        assert int(rows[model]["parameters"]) == results[(model, 1)]["parameters"]
    # dcnv2 against the reference dcnv3: difference in bp and, with 2 seeds (1 df), the
    # paired t-test's p is the Cauchy tail 1 - (2 / pi) atan |t|.
    diffs = np.subtract(auc["dcnv2"], auc["dcnv3"])
    assert float(rows["dcnv2"]["diff_bp"]) == pytest.approx(1e4 * diffs.mean())
    t = diffs.mean() / (np.std(diffs, ddof=1) / math.sqrt(2))
    assert float(rows["dcnv2"]["t"]) == pytest.approx(t)
    assert float(rows["dcnv2"]["p_value"]) == pytest.approx(1 - 2 / math.pi * math.atan(abs(t)))
    assert float(rows["dcnv2"]["p_holm"]) == pytest.approx(holm([rows["dcnv2"]["p_value"]])[0])
    assert rows["dcnv3"]["diff_bp"] == ""

    md3 = (output / "table3.md").read_text()
    assert "paired t-test" in md3 and f"{np.mean(auc['dcnv2']):.4f}" in md3
    assert "test split; models selected by validation AUC" in md3
    table8 = (output / "table8.md").read_text()
    assert "mdaf has no finished run" in table8
    table9 = (output / "table9.md").read_text()
    assert "cores" in table9 and all(f"| {m} |" in table9 for m in MODELS)

    # A rerun trains nothing and leaves the results as they were.
    before = {k: (output / "runs" / k[0] / f"seed-{k[1]}" / "result.json").stat().st_mtime_ns
              for k in results}
    capsys.readouterr()
    rerun = CountingTrain()
    assert compare.main(_args(dataset, config_file, output), train_fn=rerun) == 0
    assert rerun.calls == []
    assert capsys.readouterr().out.count("skipped") == 4
    for k, mtime in before.items():
        assert (output / "runs" / k[0] / f"seed-{k[1]}" / "result.json").stat().st_mtime_ns \
            == mtime
    assert {r["model"]: r for r in _read_csv(output / "table3.csv")} == rows

    # A changed recipe (more steps) is not the finished run: it trains again.
    again = CountingTrain()
    args = _args(dataset, config_file, output, models=("dcnv3",), seeds=(1,))
    args[args.index("--max-steps-per-epoch") + 1] = "3"
    assert compare.main(args, train_fn=again) == 0
    assert set(again.calls) == {("dcnv3", 1)}  # (a resume attempt is refused, then fresh)
    assert _result(output, "dcnv3", 1)["request"]["train"]["max_steps_per_epoch"] == 3


def test_a_result_without_test_figures_is_rerun_not_skipped(tmp_path, config_file, capsys):
    data_dir = write_dataset(tmp_path / "data", n_train=256, n_val=64, n_test=96)
    output = tmp_path / "cmp"
    args = _args(data_dir, config_file, output, models=("dcnv3",), seeds=(1,))
    first = CountingTrain(build_model=tiny_model)
    assert compare.main(args, train_fn=first) == 0 and first.calls == [("dcnv3", 1)]
    done = _result(output, "dcnv3", 1)
    row = _read_csv(output / "table3.csv")[0]
    assert float(row["test_auc_mean"]) == pytest.approx(done["test_auc"])

    # A result.json as written before runs reported test figures: the run is done again
    # (resuming its finished checkpoint) rather than skipped.
    path = output / "runs" / "dcnv3" / "seed-1" / runs.RESULT_FILE
    path.write_text(json.dumps({k: v for k, v in done.items() if k not in runs.TEST_KEYS}))
    again = CountingTrain(build_model=tiny_model)
    assert compare.main(args, train_fn=again) == 0 and again.calls == [("dcnv3", 1)]
    redone = _result(output, "dcnv3", 1)
    for key in runs.TEST_KEYS:
        assert redone[key] == pytest.approx(done[key], abs=1e-6)

    skipped = CountingTrain(build_model=tiny_model)
    assert compare.main(args, train_fn=skipped) == 0 and skipped.calls == []


def test_a_failing_run_is_reported_and_the_others_finish(dataset, config_file, tmp_path,
                                                          capsys):
    output = tmp_path / "cmp"
    train = CountingTrain(fail={("dcnv3", 2)})
    assert compare.main(_args(dataset, config_file, output), train_fn=train) == 1
    assert len(train.calls) == 4
    captured = capsys.readouterr()
    assert "dcnv3 seed 2: FAILED: RuntimeError: forced failure" in captured.out
    assert "1 of 4 runs failed" in captured.err
    failed_dir = output / "runs" / "dcnv3" / "seed-2"
    assert not (failed_dir / "result.json").exists()
    assert "forced failure" in (failed_dir / "error.txt").read_text()
    rows = {row["model"]: row for row in _read_csv(output / "table3.csv")}
    assert rows["dcnv3"]["seeds"] == "1" and rows["dcnv2"]["seeds"] == "2"
    assert "Failed runs" in (output / "table3.md").read_text()

    # Rerunning trains only the failed run.
    retry = CountingTrain()
    assert compare.main(_args(dataset, config_file, output), train_fn=retry) == 0
    assert retry.calls == [("dcnv3", 2)]
    assert not (failed_dir / "error.txt").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--models", "mdaf,nope"], "--models: unknown model 'nope'"),
        (["--seeds", "1,x"], "--seeds"),
        (["--seeds", "1,1"], "listed twice"),
        (["--models", "dcnv3", "--reference", "bst"], "--reference bst is not one of --models"),
        (["--epochs", "0"], "--epochs must be >= 1"),
    ],
)
def test_bad_input_is_one_line_with_exit_2(tmp_path, capsys, flags, message):
    args = ["--data", str(tmp_path), "--output", str(tmp_path / "out"), *flags]
    assert compare.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("compare: ") and message in err and "\n" not in err


def test_bad_data_directory_exits_2(tmp_path, capsys):
    assert compare.main(["--data", str(tmp_path), "--output", str(tmp_path / "o"),
                         "--models", "dcnv3", "--reference", "dcnv3"]) == 2
    assert "metadata.json" in capsys.readouterr().err


def test_help_lists_every_flag():
    out = subprocess.run([sys.executable, "-m", "mdaf_tf.compare", "--help"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    for flag in ("--data", "--models", "--seeds", "--output", "--epochs",
                 "--max-steps-per-epoch", "--reference", "--config", "--batch-size"):
        assert flag in out


def check_rows_against_run_files(output, models, seeds):
    """Table 3 of a comparison against each run's own files: one row per model over all its
    seeds, the figures those runs report, and runs that differ by seed and by model."""
    rows = _read_csv(output / "table3.csv")
    assert [r["model"] for r in rows] == list(models)
    results = {(m, s): _result(output, m, s) for m in models for s in seeds}
    data_sha = {r["request"]["data_metadata_sha256"] for r in results.values()}
    assert len(data_sha) == 1  # every run on the same dataset
    for (model, seed), r in results.items():
        assert (r["model"], r["seed"]) == (model, seed)
        assert (r["request"]["train"]["model"], r["request"]["train"]["seed"]) == (model, seed)
        metrics = _read_csv(output / "runs" / model / f"seed-{seed}" / "metrics.csv")
        assert len(metrics) == r["epochs_run"] == 1 and r["best_epoch"] == 1
        assert r["val_auc"] == pytest.approx(float(metrics[0]["val_auc"]), abs=1e-12)
        assert all(math.isfinite(r[k]) for k in runs.TEST_KEYS)
    for row in rows:
        auc = [results[(row["model"], s)]["test_auc"] for s in seeds]
        gauc = [results[(row["model"], s)]["test_gauc"] for s in seeds]
        assert int(row["seeds"]) == len(seeds)
        assert float(row["test_auc_mean"]) == pytest.approx(np.mean(auc), abs=1e-9)
        # sample standard deviation; the table writes 0 for a single seed
        std = np.std(auc, ddof=1) if len(auc) > 1 else 0.0
        assert float(row["test_auc_std"]) == pytest.approx(std, abs=1e-9)
        assert float(row["test_gauc_mean"]) == pytest.approx(np.mean(gauc), abs=1e-9)
    # (Log loss, not AUC, tells runs apart: AUCs are ratios of pair counts, and two runs'
    # can tie on one by chance.)
    loss = {m: tuple(results[(m, s)]["test_log_loss"] for s in seeds) for m in models}
    for model in models:  # the seed reaches the run: another seed, other weights
        assert len(set(loss[model])) == len(seeds), (model, loss[model])
    # Every model is its own network: no two models give the same figures.
    assert len(set(loss.values())) == len(models), loss


@pytest.mark.slow
@pytest.mark.skipif(not TAOBAO_SAMPLE.is_file(), reason="Taobao sample not available")
def test_all_models_end_to_end_on_the_taobao_sample(tmp_path, config_file):
    # Small layers and one seed keep 12 models within the suite's budget; the pipeline, every
    # model's graph, training, evaluation, timing and the tables are the real ones (several
    # seeds: test_tables_agree_with_the_runs_and_a_rerun_skips_them).
    output = tmp_path / "cmp"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
           "MDAF_TF_DATA_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "mdaf_tf.compare", "--data", str(TAOBAO_SAMPLE),
         "--seeds", "1", "--output", str(output), "--epochs", "1",
         "--max-steps-per-epoch", "3", "--batch-size", "256", "--timing-repeats", "2",
         "--inference-batch-size", "256", "--config", str(config_file), "--quiet"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=3600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_rows_against_run_files(output, registry.comparison_names(), (1,))
    table8 = (output / "table8.md").read_text()
    for model in ("dcnv3", "mdaf_seq", "mdaf_concat", "mdaf_fixed"):
        assert f"| {model} |" in table8
    assert (output / "auc_bar.png").stat().st_size > 1000


# One model for each way of reading the fields: MDAF's static and scanned sequence branches,
# BST's positions and self-attention, DIN's target attention, AutoInt's per-field projections
# and DCN-V2's keras-rs crosses (the others are these parts, or a concatenation of the
# fields). Every default model compares on the Taobao sample above, and every model takes a
# gradient step on a declared schema (tests/models/test_declared_features.py).
TAOBAO_AD_MODELS = ("mdaf", "bst", "din", "autoint", "dcnv2")


def test_models_compare_on_taobao_ad_data(tmp_path, config_file):
    """pipelines.taobao_ad with the behaviour-log history (18 static and 3 sequence fields,
    string and integer ids) on generated files (the hand-written ones are too small for a test
    gAUC) -> compare: one row per model, each from its run's own files."""
    from benchmarks import taobao_ad_data as generated
    from pipelines import taobao_ad

    files = generated.generate(str(tmp_path), 3000)
    files["behavior_log"] = generated.generate_behavior_log(str(tmp_path), 30000, 3000)
    data_dir = tmp_path / "data"
    taobao_ad.main([*generated.pipeline_args(files, str(data_dir)), "--max-seq-len", "8",
                    "--min-count", "1"])
    output = tmp_path / "cmp"
    args = _args(data_dir, config_file, output, models=TAOBAO_AD_MODELS, seeds=(1,),
                 reference="din")
    assert compare.main(args) == 0
    check_rows_against_run_files(output, TAOBAO_AD_MODELS, (1,))
