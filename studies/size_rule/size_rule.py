"""The size rule against hand-set recipes on a many-users / short-logs impression log.

    python studies/size_rule/size_rule.py --output studies/size_rule/results [--epochs 3]
        [--recipes rule seed b256_lr1e-3 ...] [--users 3500 --impressions-per-user 60
        --items 8000 --categories 60 --data-seed 7]

Generates the log with ``pipelines.synthetic`` (by default 3,500 users x 60 impressions,
8,000 items, 60 categories: 147,000 training examples), then trains MDAF on it once per recipe
with the real command line, ``python -m mdaf_tf.train --data DIR --epochs E``, adding only
the recipe's ``--config`` (the ``rule`` recipe adds nothing: batch size, learning rate and
warmup come from ``mdaf_tf.training.recipe``). Every run has the same epochs budget, seed and
early stopping; the table gives each run's best validation AUC (what selection sees) and its
ratio to the best hand-set recipe's. Each run keeps ``config.json``, ``metrics.csv`` and its
log under ``OUTPUT/NAME/``; ``OUTPUT/size_rule.json`` and ``OUTPUT/README.md`` sum them up.
Not a test: about 20 minutes a run on 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import common  # noqa: E402

# Hand-set recipes: TrainConfig fields given in --config (warmup: 20% of the epochs budget,
# as the rule's, unless a recipe says otherwise).
RECIPES = {
    "rule": {},
    "seed": {"batch_size": 2048, "learning_rate": 3e-4},
    "b256_lr1e-3": {"batch_size": 256, "learning_rate": 1e-3},
    "b256_lr3e-3": {"batch_size": 256, "learning_rate": 3e-3},
    "b1024_lr3e-3": {"batch_size": 1024, "learning_rate": 3e-3},
    "b256_lr3e-3_warmup1": {"batch_size": 256, "learning_rate": 3e-3, "warmup_epochs": 1.0},
}


def generate(args, data_dir: Path) -> None:
    if (data_dir / "metadata.json").exists():
        return
    subprocess.run([sys.executable, "-m", "pipelines.synthetic", "--output", str(data_dir),
                    "--users", str(args.users), "--items", str(args.items),
                    "--categories", str(args.categories),
                    "--impressions-per-user", str(args.impressions_per_user),
                    "--seed", str(args.data_seed)], check=True, cwd=common.REPO)


def train(name: str, args, data_dir: Path, out: Path) -> dict:
    """One recipe's run through the command line; its best validation AUC and choices."""
    run_dir = out / name
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    cmd = [sys.executable, "-m", "mdaf_tf.train", "--data", str(data_dir),
           "--epochs", str(args.epochs), "--output", str(run_dir / "run"),
           "--export", str(run_dir / "saved")]
    if RECIPES[name]:
        config = run_dir / "recipe.json"
        config.write_text(json.dumps({"train": RECIPES[name]}) + "\n")
        cmd += ["--config", str(config)]
    started = time.perf_counter()
    with open(run_dir / "train.log", "w") as log:
        subprocess.run(cmd, check=True, cwd=common.REPO, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    for keep in ("config.json", "metrics.csv"):
        shutil.copy(run_dir / "run" / keep, run_dir / keep)
    shutil.rmtree(run_dir / "run")
    shutil.rmtree(run_dir / "saved")
    return summarise(name, cmd, run_dir, seconds)


def summarise(name: str, cmd: list[str], run_dir: Path, seconds: float) -> dict:
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    val = [float(r["val_auc"]) for r in rows]
    best = max(range(len(val)), key=val.__getitem__)
    train = json.loads((run_dir / "config.json").read_text())["train"]
    return {"recipe": name, "command": " ".join(["python", *cmd[1:]]),
            "batch_size": train["batch_size"], "learning_rate": train["learning_rate"],
            "warmup_epochs": train["warmup_epochs"], "val_auc_per_epoch": val,
            "best_epoch": best + 1, "best_val_auc": val[best], "seconds": seconds}


def markdown(result: dict) -> str:
    hand = [r for r in result["runs"] if r["recipe"] != "rule"]
    best_hand = max((r["best_val_auc"] for r in hand), default=None)
    rows = [[r["recipe"], r["batch_size"], f"{r['learning_rate']:.2e}",
             f"{r['warmup_epochs']:g}", " ".join(f"{v:.4f}" for v in r["val_auc_per_epoch"]),
             f"{r['best_val_auc']:.4f}",
             f"{r['best_val_auc'] / best_hand:.3f}" if best_hand else "-",
             f"{r['seconds'] / 60:.0f}"] for r in result["runs"]]
    return "\n".join([
        "# Size rule against hand-set recipes (validation split)", "",
        f"Data: `{result['data_command']}` ({result['train_examples']} training, "
        f"{result['val_examples']} validation examples; oracle validation AUC "
        f"{result['oracle_val_auc']:.4f}). Model: mdaf, seed 42, {result['epochs']} epochs.",
        "", "Each run: `python -m mdaf_tf.train --data DIR --epochs E` plus the recipe's "
        "`--config` (none for `rule`); commands in `size_rule.json`.", "",
        common.markdown_table(["recipe", "batch", "lr", "warmup epochs",
                               "val AUC per epoch", "best val AUC",
                               "/ best hand-set", "minutes"], rows), ""])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    p.add_argument("--users", type=int, default=3500)
    p.add_argument("--impressions-per-user", type=int, default=60)
    p.add_argument("--items", type=int, default=8000)
    p.add_argument("--categories", type=int, default=60)
    p.add_argument("--data-seed", type=int, default=7)
    p.add_argument("--data-dir", type=Path, help="where the generated log goes "
                   "(default OUTPUT/data, deleted at the end)")
    p.add_argument("--append", action="store_true",
                   help="keep the runs already in OUTPUT/size_rule.json (a recipe run again "
                   "replaces its row)")
    args = p.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    data_dir = args.data_dir or args.output / "data"
    generate(args, data_dir)
    meta = json.loads((data_dir / "metadata.json").read_text())
    result = {
        "data_command": (f"python -m pipelines.synthetic --users {args.users} "
                         f"--impressions-per-user {args.impressions_per_user} --items "
                         f"{args.items} --categories {args.categories} --seed {args.data_seed}"),
        "train_examples": meta["splits"]["train"]["examples"],
        "val_examples": meta["splits"]["val"]["examples"],
        "oracle_val_auc": meta["oracle"]["auc"], "epochs": args.epochs,
        "machine": common.machine(), "runs": []}
    summary = args.output / "size_rule.json"
    if args.append and summary.exists():
        result["runs"] = json.loads(summary.read_text())["runs"]
    for name in args.recipes:
        run = train(name, args, data_dir, args.output)
        result["runs"] = [r for r in result["runs"] if r["recipe"] != name] + [run]
        common.write_json(summary, result)
        (args.output / "README.md").write_text(markdown(result))
        print(markdown(result), flush=True)
    if args.data_dir is None:
        shutil.rmtree(data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
