"""The embedding width rule against fixed user/item widths, on four generated logs.

    python studies/width_rule/width_rule.py --output studies/width_rule/results --work DIR
        [--settings many_users long_logs_rank16 many_items synthetic_default]
        [--widths rule seed w4 w16 w32] [--models dnn] [--seed 42]

For every setting (a ``pipelines.synthetic`` log, or the main command's synthetic default),
every width choice and every model, one run of the real command line,
``python -m mdaf_tf.train [--data DIR] --model M --seed S [--epochs 3] [--config W.json]``:
``rule`` adds no config (``mdaf_tf.models.embedding_sizes``: user and item widths follow
the training examples per id); ``seed`` sets the seed's user 80 / item 64; ``wN`` sets both to
N. The category width is left to the rule in every run (the seed's 32 on all four logs). The
generated logs train 3 epochs; the synthetic default keeps its own preset (5 epochs, lr 3e-3).
Selection is on validation; each run's test AUC is the one the command reports for the epoch
validation chose. Runs already in ``WORK`` are kept (delete one to run it again). Writes
``OUTPUT/width_rule.json``, ``OUTPUT/README.md`` and each run's ``config.json`` and
``metrics.csv`` under ``OUTPUT/run_files/``. Not a test: a DNN run takes about a minute on
2 cores, an MDAF run about 20.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import common  # noqa: E402
from mdaf_tf.files import write_text_atomic  # noqa: E402

# pipelines.synthetic arguments; None: the main command's synthetic default (no --data).
SETTINGS = {
    "many_users": "--users 3500 --impressions-per-user 60 --items 8000 --categories 60 --seed 7",
    "long_logs_rank16": "--users 700 --impressions-per-user 300 --items 2000 --categories 60 "
                        "--rank 16 --seed 8",
    "many_items": "--users 3500 --impressions-per-user 60 --items 30000 --categories 200 "
                  "--sequence-strength 1.2 --seed 9",
    "synthetic_default": None,
}
WIDTHS = {"rule": None, "seed": (80, 64), "w4": (4, 4), "w16": (16, 16), "w32": (32, 32)}
REPORTED = re.compile(r"test AUC ([0-9.]+), gAUC ([0-9.na]+), log loss ([0-9.]+) \(epoch (\d+), "
                      r"selected on validation: val AUC ([0-9.]+)\)")


def generate(setting: str, data_dir: Path) -> None:
    if SETTINGS[setting] is None or (data_dir / "metadata.json").exists():
        return
    subprocess.run([sys.executable, "-m", "pipelines.synthetic", "--output", str(data_dir),
                    *SETTINGS[setting].split()], check=True, cwd=common.REPO)


def command(setting: str, widths: str, model: str, seed: int, work: Path) -> list[str]:
    name = f"{model}_{widths}"
    cmd = [sys.executable, "-m", "mdaf_tf.train", "--model", model, "--seed", str(seed),
           "--output", str(work / "runs" / setting / name),
           "--export", str(work / "saved" / setting / name)]
    if SETTINGS[setting] is not None:
        cmd += ["--data", str(work / "data" / setting), "--epochs", "3"]
    if WIDTHS[widths] is not None:
        user, item = WIDTHS[widths]
        config = work / "configs" / f"{widths}.json"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(json.dumps({"model": {"embedding_dims": {"user": user,
                                                                   "item": item}}}) + "\n")
        cmd += ["--config", str(config)]
    return cmd


def parse_report(log_text: str) -> dict:
    """The figures of the command's last line: test AUC, gAUC and log loss of the epoch chosen
    on validation, that epoch and its validation AUC."""
    found = REPORTED.findall(log_text)
    if not found:
        raise ValueError("no 'test AUC ..., selected on validation: val AUC ...' line")
    auc, gauc, loss, epoch, val = found[-1]
    return {"test_auc": float(auc), "test_gauc": float(gauc), "test_log_loss": float(loss),
            "best_epoch": int(epoch), "val_auc": float(val)}


def run(setting: str, widths: str, model: str, seed: int, work: Path, output: Path) -> dict:
    """One run (skipped when WORK holds its finished log); its figures and chosen widths."""
    cmd = command(setting, widths, model, seed, work)
    run_dir = Path(cmd[cmd.index("--output") + 1])
    log_path = run_dir.parent / f"{run_dir.name}.log"
    if not (log_path.exists() and REPORTED.search(log_path.read_text())):
        shutil.rmtree(run_dir, ignore_errors=True)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as log:
            subprocess.run(cmd, check=True, cwd=common.REPO, stdout=log,
                           stderr=subprocess.STDOUT)
    kept = output / "run_files" / setting / run_dir.name
    kept.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "metrics.csv"):
        shutil.copy(run_dir / name, kept / name)
    config = json.loads((run_dir / "config.json").read_text())
    with open(run_dir / "metrics.csv") as f:
        val_per_epoch = [round(float(r["val_auc"]), 4) for r in csv.DictReader(f)]
    return {"setting": setting, "widths": widths, "model": model, "seed": seed,
            "command": " ".join(["python", *cmd[1:]]).replace(str(work), "WORK"),
            "user_width": config["model"]["embedding_dims"]["user"],
            "item_width": config["model"]["embedding_dims"]["item"],
            "cate_width": config["model"]["embedding_dims"]["cate"],
            "train_examples": config["train_examples"], "val_auc_per_epoch": val_per_epoch,
            **parse_report(log_path.read_text())}


def markdown(result: dict) -> str:
    rows = [[r["setting"], r["model"], r["widths"],
             f"{r['user_width']}/{r['item_width']}/{r['cate_width']}",
             f"{r['val_auc']:.4f}", f"{r['test_auc']:.4f}", r["best_epoch"]]
            for r in result["runs"]]
    lines = ["# Embedding width rule against fixed user/item widths", "",
             "Written by `python studies/width_rule/width_rule.py` (commands in "
             "`width_rule.json`, each run's `config.json` and `metrics.csv` in `run_files/`). "
             "One seed per run; the epoch is chosen on validation, test is that epoch's.", "",
             "Settings (`python -m pipelines.synthetic ARGS`; `synthetic_default`: the main "
             "command's data):", ""]
    lines += [f"- `{name}`: `{args or 'no --data'}`" for name, args in SETTINGS.items()
              if name in {r["setting"] for r in result["runs"]}]
    lines += ["", common.markdown_table(["setting", "model", "widths", "user/item/cate",
                                         "val AUC", "test AUC", "epoch"], rows), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True,
                   help="generated logs and run directories (kept for reruns)")
    p.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    p.add_argument("--widths", nargs="+", choices=list(WIDTHS), default=list(WIDTHS))
    p.add_argument("--models", nargs="+", default=["dnn"])
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    result = {"machine": common.machine(), "runs": []}
    for setting in args.settings:
        generate(setting, args.work / "data" / setting)
        for model in args.models:
            for widths in args.widths:
                result["runs"].append(run(setting, widths, model, args.seed, args.work,
                                          args.output))
                common.write_json(args.output / "width_rule.json", result)
                write_text_atomic(args.output / "README.md", markdown(result))
    print(markdown(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
