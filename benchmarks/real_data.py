"""Reference figures on the real Taobao rows: two one-line heuristics beside every model.

    python benchmarks/real_data.py [--input CSV] [--models LIST] [--seeds 42] [--epochs 5]
        [--work runs/real_data] [--output benchmarks/results/real_data] [--heuristics-only]

1. Builds the Taobao User Behavior dataset from ``--input`` (default: the shared
   ``../shared/data/taobao_user_behavior/users_43_complete_histories.csv``, 43 users' complete
   9-day histories) with ``python -m pipelines.taobao`` at its default arguments, into
   ``WORK/data``.
2. Copies the dataset's ``leak_report`` (metadata.json) and split sizes into the result.
3. Scores validation and test with the two heuristics of ``mdaf_tf.heuristics``
   (recency-weighted count of the target's category in the history, decay 0.9 per event fixed
   a priori; the target item's count in the history): exact AUC and gAUC by ``user_key``.
4. Trains every model of ``--models`` (default: compare's, ``registry.comparison_names()``)
   with every seed through ``python -m mdaf_tf.compare`` into ``WORK/compare`` (resumable:
   finished runs are skipped on a rerun, so adding seeds trains only the new ones) and reads
   its ``runs.csv``: mean +- std over seeds of test AUC, test gAUC and validation AUC (the
   epoch is selected on validation by the training command; test is read once).
5. Writes ``OUTPUT.json`` and ``OUTPUT.md`` (each through a temporary file renamed when
   complete): the heuristic rows first, then the models, and the models that do not beat
   the category heuristic on test.

Training settings: the dataset has ~7.6k training examples, so the seed recipe's batch 2048
would give 4 steps an epoch; the runs use the small-data recipe the synthetic default uses
(batch 256, learning rate 3e-3, 1 warmup epoch; ``mdaf_tf.data.source``) with
``--epochs`` (default 5) and early stopping as configured; ``--config`` replaces it. Defaults
are sized for 2 CPU cores: one seed (42) and 5 epochs for the ten models this was first run
with, estimated at about 15 minutes on an idle machine (MDAF alone trained at ~380
examples/s, ~20 s an epoch); measured 21 minutes for nine of them with two other jobs on
the cores (the six scan models 130-265 s a run, dcnv2 / autoint / dcnv3 5-11 s).
``--seeds 42,123,7`` gives mean +- std over three seeds in about three times that (finished
seeds are reused). With one seed the std is not defined and is shown as such.
``--heuristics-only`` skips step 4 (seconds).

Exit status: 0; 1 when some training run failed (the others are still reported); 2 for bad
input (including the shared file being absent: the folder is not part of the repository).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import common  # noqa: E402

SHARED_CSV = (common.REPO.parent / "shared" / "data" / "taobao_user_behavior"
              / "users_43_complete_histories.csv")
OUTPUT = common.RESULTS_DIR / "real_data"
WORK = common.REPO / "runs" / "real_data"
# the small-data recipe (as the synthetic default's preset): see the module docstring
TRAIN_CONFIG = {"batch_size": 256, "learning_rate": 3e-3, "warmup_epochs": 1.0}
EVAL_SPLITS = ("val", "test")
REFERENCE_RULE = "category_recency"
# runs.csv columns aggregated over seeds (missing columns are reported as None)
METRICS = ("test_auc", "test_gauc", "test_log_loss", "val_auc", "val_log_loss")
RUN_FIELDS = ("seed", "val_auc", "test_auc", "test_gauc", "test_log_loss", "best_epoch",
              "epochs_run", "wall_seconds")


# ---------------------------------------------------------------- aggregation and tables

def _number(text):
    """A runs.csv cell as a float (None when empty or not a number)."""
    if text is None:
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def read_runs_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def aggregate_runs(rows: list[dict], models) -> dict[str, dict]:
    """``{model: {"seeds": [...], METRIC: {"mean", "std", "n"} | None, "runs": [...]}}`` from
    runs.csv rows, in the order of ``models`` (models without a row are left out). ``std`` is
    the sample standard deviation, None for one seed; a metric no run reports is None."""
    by_model: dict[str, list[dict]] = {}
    for row in rows:
        by_model.setdefault(row["model"], []).append(row)
    result = {}
    for model in [m for m in models if m in by_model] + sorted(set(by_model) - set(models)):
        runs = sorted(by_model[model], key=lambda r: int(r["seed"]))
        entry = {"seeds": [int(r["seed"]) for r in runs]}
        for metric in METRICS:
            values = [v for v in (_number(r.get(metric)) for r in runs) if v is not None]
            if not values:
                entry[metric] = None
                continue
            mean = sum(values) / len(values)
            std = (math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
                   if len(values) > 1 else None)
            entry[metric] = {"mean": mean, "std": std, "n": len(values)}
        entry["runs"] = [
            {k: (int(r["seed"]) if k == "seed" else _number(r.get(k))) for k in RUN_FIELDS}
            for r in runs
        ]
        result[model] = entry
    return result


def not_beating(models: dict, heuristics: dict, rule: str = REFERENCE_RULE) -> dict:
    """Models whose mean test AUC (gAUC) is not above the rule's test AUC (gAUC).

    ``{"rule", "test_auc": [...], "test_gauc": [...], "unknown": [...]}``; ``unknown`` lists
    the models without test figures (nothing can be said about them)."""
    test = heuristics["test"][rule]
    out = {"rule": rule, "test_auc": [], "test_gauc": [], "unknown": []}
    for model, entry in models.items():
        if entry.get("test_auc") is None:
            out["unknown"].append(model)
            continue
        if not entry["test_auc"]["mean"] > test["auc"]:
            out["test_auc"].append(model)
        gauc = entry.get("test_gauc")
        if gauc is not None and not math.isnan(test["gauc"]) and not gauc["mean"] > test["gauc"]:
            out["test_gauc"].append(model)
    return out


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4f}"


def _fmt_stat(stat) -> str:
    if stat is None:
        return "n/a"
    if stat["std"] is None:
        return f"{stat['mean']:.4f}"
    return f"{stat['mean']:.4f} +- {stat['std']:.4f}"


def _in_split_order(splits: dict):
    from mdaf_tf.data.schema import SPLITS

    return sorted(splits.items(), key=lambda kv: (SPLITS + (kv[0],)).index(kv[0]))


def render_markdown(result: dict) -> str:
    """The report: dataset, the table (heuristic rows first) and the verdict line."""
    from mdaf_tf.heuristics import DESCRIPTIONS

    data = result["dataset"]
    heur = result["heuristics"]
    models = result.get("models") or {}
    lines = [
        "# Real-data reference figures (Taobao User Behavior, shared 43-user sample)",
        "",
        f"Produced by `{result['command']}` ({result['started']} UTC, "
        f"{result['seconds'] / 60:.1f} min; commit {result['machine'].get('commit', '?')}).",
        "",
        "Dataset: `python -m pipelines.taobao` at its default arguments on "
        f"`{data['input_name']}` (sha256 {str(data.get('sha256'))[:12]}...); "
        + ", ".join(f"{s} {v['examples']:,} examples ({v['positives']:,} positive)"
                    for s, v in _in_split_order(data["splits"])) + ".",
        "",
    ]
    leak = data.get("leak_report")
    if leak is None:
        lines += ["Leak report: none in metadata.json.", ""]
    else:
        flagged = leak.get("flagged") or []
        lines += [f"Leak report (metadata.json): flagged {flagged if flagged else 'nothing'} "
                  f"(threshold {leak.get('threshold', '?')}; the single-feature AUCs it "
                  "checks are in real_data.json).", ""]
    training = result.get("training")
    if training:
        seeds = ",".join(str(s) for s in training["seeds"])
        lines += [f"Models: `mdaf_tf.compare`, seeds {seeds}, up to {training['epochs']} "
                  f"epochs, training config {json.dumps(training['config'])}; the epoch is "
                  "selected on validation. Model figures are mean +- sample std over seeds "
                  "(a single figure: one seed).", ""]
    header = ["rule / model", "test AUC", "test gAUC", "val AUC", "seeds"]
    rows = []
    for name in heur["test"]:
        rows.append([f"heuristic `{name}`",
                     _fmt(heur["test"][name]["auc"]), _fmt(heur["test"][name]["gauc"]),
                     _fmt(heur["val"][name]["auc"]), "-"])
    for model, entry in models.items():
        rows.append([f"`{model}`", _fmt_stat(entry.get("test_auc")),
                     _fmt_stat(entry.get("test_gauc")), _fmt_stat(entry.get("val_auc")),
                     str(len(entry["seeds"]))])
    for model in (training or {}).get("models", []):
        if model not in models:
            rows.append([f"`{model}`", "no finished run", "", "", "0"])
    lines += [common.markdown_table(header, rows), ""]
    lines += [f"- heuristic `{name}`: {DESCRIPTIONS.get(name, '')}" for name in heur["test"]]
    lines.append("")
    verdict = result.get("not_beating")
    if verdict is not None:
        rule = verdict["rule"]
        test = heur["test"][rule]
        lines.append(
            f"**Models that do not beat the {rule} heuristic on test AUC** "
            f"({_fmt(test['auc'])}; mean over seeds): "
            + (", ".join(f"`{m}`" for m in verdict["test_auc"]) or "none") + ".")
        lines.append(
            f"On test gAUC ({_fmt(test['gauc'])}): "
            + (", ".join(f"`{m}`" for m in verdict["test_gauc"]) or "none") + ".")
        if verdict["unknown"]:
            lines.append("No test figures in runs.csv for: "
                         + ", ".join(f"`{m}`" for m in verdict["unknown"]) + ".")
        lines.append("")
    failures = result.get("failures") or []
    if failures:
        lines += ["Failed runs: " + "; ".join(failures) + ".", ""]
    return "\n".join(lines)


def write_text_atomic(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


# ---------------------------------------------------------------- the steps

def build_dataset(input_csv: Path, data_dir: Path) -> None:
    """``python -m pipelines.taobao`` at its defaults (``--overwrite``: the pipeline is
    deterministic, so a rebuilt directory holds the same dataset and compare's finished runs
    still match it)."""
    cmd = [sys.executable, "-m", "pipelines.taobao", "--input", str(input_csv),
           "--output", str(data_dir), "--overwrite"]
    print("$ " + shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=common.REPO)


def dataset_facts(data_dir: Path, input_csv: Path) -> dict:
    from mdaf_tf.data import load_metadata

    meta = load_metadata(str(data_dir))
    return {
        "input_name": input_csv.name,
        "sha256": (meta.get("source") or {}).get("sha256"),
        "splits": {s: {"examples": int(v["examples"]), "positives": int(v["positives"])}
                   for s, v in _in_split_order(meta["splits"])},
        "split_boundaries": meta.get("split_boundaries"),
        "vocab_sizes": meta.get("vocab_sizes"),
        "counts": meta.get("counts"),
        "leak_report": meta.get("leak_report"),
    }


def heuristic_figures(data_dir: Path) -> dict:
    """``{split: {rule: {"auc", "gauc", "examples"}}}`` on validation and test."""
    from mdaf_tf.data import read_split_numpy
    from mdaf_tf.heuristics import evaluate_heuristics

    return {split: evaluate_heuristics(read_split_numpy(str(data_dir), split))
            for split in EVAL_SPLITS}


def run_compare(data_dir: Path, out_dir: Path, models, seeds, epochs: int,
                config: Path) -> int:
    reference = "bst" if "bst" in models else models[0]
    cmd = [sys.executable, "-m", "mdaf_tf.compare", "--data", str(data_dir),
           "--models", ",".join(models), "--seeds", ",".join(str(s) for s in seeds),
           "--epochs", str(epochs), "--config", str(config), "--output", str(out_dir),
           "--reference", reference, "--timing-repeats", "3", "--quiet"]
    print("$ " + shlex.join(cmd), flush=True)
    return subprocess.run(cmd, cwd=common.REPO).returncode


def failed_runs(out_dir: Path, models, seeds) -> list[str]:
    """``MODEL seed-SEED`` of the requested runs that left an error.txt behind."""
    return [f"{m} seed-{s}" for m in models for s in seeds
            if (out_dir / "runs" / m / f"seed-{s}" / "error.txt").is_file()]


def main(argv=None) -> int:
    from mdaf_tf.models import registry

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=SHARED_CSV,
                        help="Taobao User Behavior CSV (default: the shared 43-user sample)")
    parser.add_argument("--models", default=",".join(registry.comparison_names()),
                        help="comma-separated models (default: compare's)")
    parser.add_argument("--seeds", default="42", help="comma-separated seeds (default 42)")
    parser.add_argument("--epochs", type=int, default=5, help="maximum epochs (default 5)")
    parser.add_argument("--config", type=Path, default=None,
                        help="training config JSON for every run (default: the small-data "
                             f"recipe {json.dumps(TRAIN_CONFIG)})")
    parser.add_argument("--work", type=Path, default=WORK,
                        help="dataset and compare runs (default runs/real_data, not committed)")
    parser.add_argument("--output", type=Path, default=OUTPUT,
                        help="writes OUTPUT.json and OUTPUT.md "
                             "(default benchmarks/results/real_data)")
    parser.add_argument("--heuristics-only", action="store_true",
                        help="skip the model runs")
    args = parser.parse_args(argv)

    from mdaf_tf.compare import parse_models, parse_seeds
    from mdaf_tf.config import ConfigError
    from mdaf_tf.heuristics import DEFAULT_DECAY

    try:
        models = parse_models(args.models)
        seeds = parse_seeds(args.seeds)
    except ConfigError as e:
        parser.exit(2, f"error: {e}\n")
    if args.epochs < 1:
        parser.exit(2, "error: --epochs must be >= 1\n")
    if not args.input.is_file():
        parser.exit(2, f"error: {args.input} is absent; the shared Taobao sample lives outside "
                       "the repository (../shared/data/taobao_user_behavior/) and is not "
                       "part of it. Nothing was written.\n")

    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    start = time.perf_counter()
    machine = common.machine()
    machine["load_average_start"] = machine.pop("load_average")
    work = args.work.resolve()
    data_dir = work / "data"
    work.mkdir(parents=True, exist_ok=True)
    build_dataset(args.input.resolve(), data_dir)
    facts = dataset_facts(data_dir, args.input)
    heur = heuristic_figures(data_dir)
    for split in EVAL_SPLITS:
        for name, fig in heur[split].items():
            print(f"{split} {name}: AUC {fig['auc']:.4f} gAUC {fig['gauc']:.4f}", flush=True)

    result = {
        "command": shlex.join(["python", "benchmarks/real_data.py",
                               *(sys.argv[1:] if argv is None else argv)]),
        "started": started,
        "machine": machine,
        "dataset": facts,
        "heuristics": heur,
        "heuristic_decay": DEFAULT_DECAY,
    }
    status = 0
    if not args.heuristics_only:
        config = args.config
        if config is None:
            config = work / "train_config.json"
            write_text_atomic(config, json.dumps(TRAIN_CONFIG) + "\n")
        config_fields = json.loads(Path(config).read_text())
        compare_dir = work / "compare"
        rc = run_compare(data_dir, compare_dir, models, seeds, args.epochs, config)
        if rc not in (0, 1) or not (compare_dir / "runs.csv").is_file():
            print(f"error: mdaf_tf.compare exited {rc}; nothing written", file=sys.stderr)
            return 2
        status = rc
        rows = [r for r in read_runs_csv(compare_dir / "runs.csv")
                if r["model"] in models and int(r["seed"]) in seeds]
        result["training"] = {"models": models, "seeds": seeds, "epochs": args.epochs,
                              "config": config_fields}
        result["models"] = aggregate_runs(rows, models)
        result["not_beating"] = not_beating(result["models"], heur)
        result["failures"] = failed_runs(compare_dir, models, seeds)
    machine["load_average_end"] = common.load_average()
    result["seconds"] = time.perf_counter() - start

    out = Path(args.output)
    common.write_json(out.with_name(out.name + ".json"), result)
    markdown = render_markdown(result)
    write_text_atomic(out.with_name(out.name + ".md"), markdown)
    print(markdown)
    print(f"wrote {out}.json and {out}.md")
    return status


if __name__ == "__main__":
    sys.exit(main())
