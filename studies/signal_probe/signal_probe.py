"""Which parts of a synthetic dataset's click logit a trained model has learned.

    python studies/signal_probe/signal_probe.py DATA_DIR [EXPORT_DIR ...] [--lr-ceiling]
        [--split val] [--output FILE]

The synthetic click logit is ``bias + static_strength * (a_u . b_c + quality_i) / sqrt(2) +
sequence_strength * q`` (``pipelines/synthetic.py``). The log is simulated again from the
dataset's recorded arguments (``simulate`` is deterministic by its seed), each example of the
split is matched to its impression by (user, time), and each export's logit on the split is
regressed by least squares on the three true parts: user x category affinity, item quality
and the recency-weighted category match ``q``. A model that learned the true logit gets the
true weights (``static_strength / sqrt(2)`` twice, ``sequence_strength``) and R^2 = 1; the
``learned`` ratios (fitted weight / true weight) show which part a model misses. Label
smoothing shrinks every weight alike, so compare the ratios of one model with each other.
A data diagnostic, not a test or a speed benchmark.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

PARTS = ("part_affinity", "part_quality", "part_sequence")


# The ceilings the probe regresses (README's table): static, sequence and both feature sets.
PROBED_FEATURE_SETS = ("static", "sequence", "both")


def true_parts(data_dir: str, split: str) -> tuple[dict, dict]:
    """The split's examples (file order) with their true logit parts, and the true weights."""
    from mdaf_tf.data import load_metadata, read_split_numpy, schema
    from pipelines import synthetic

    meta = load_metadata(data_dir)
    args = argparse.Namespace(**meta["args"])
    log = synthetic.simulate(args)
    examples = read_split_numpy(data_dir, split)
    index = {(int(u), int(t)): i for i, (u, t) in
             enumerate(zip(log["user_id"], log["timestamp"], strict=True))}
    rows = np.array([index[(int(u), int(t))] for u, t in
                     zip(examples[schema.USER_KEY], examples[schema.TIMESTAMP], strict=True)])
    if not np.array_equal(log["label"][rows], examples[schema.LABEL]):
        raise SystemExit(f"{data_dir}: the simulated log does not match the dataset's labels")
    weights = {"part_affinity": args.static_strength / np.sqrt(2.0),
               "part_quality": args.static_strength / np.sqrt(2.0),
               "part_sequence": args.sequence_strength}
    return {**{p: log[p][rows] for p in PARTS}, "p": log["p"][rows],
            "label": examples[schema.LABEL]}, weights


def regress(logit: np.ndarray, parts: dict, weights: dict) -> dict:
    """Least-squares weights of ``logit`` on the parts (with a constant), R^2, and each
    weight over its true weight."""
    design = np.column_stack([np.ones(len(logit)), *(parts[p] for p in PARTS)])
    coef, *_ = np.linalg.lstsq(design, logit, rcond=None)
    residual = logit - design @ coef
    r2 = 1.0 - residual.var() / logit.var()
    fitted = dict(zip(PARTS, coef[1:].tolist(), strict=True))
    return {"weights": fitted, "r2": float(r2),
            "learned": {p: fitted[p] / weights[p] for p in PARTS}}


def lr_ceiling_logits(data_dir: str, split: str) -> dict:
    """Feature set -> the logistic-regression ceiling's logit on ``split`` (C chosen on
    validation, as ``mdaf_tf.compare``'s ``lr_ceiling`` row chooses it)."""
    from mdaf_tf.comparison import linear_ceiling as lc
    from mdaf_tf.data import load_metadata

    splits = lc.read_splits(data_dir)
    params = lc.feature_params(load_metadata(data_dir))
    logits = {}
    for name in PROBED_FEATURE_SETS:
        kinds = lc.FEATURE_SETS[name]
        x = {s: lc.features(splits[s], **params, **kinds) for s in ("train", "val", split)}
        model, _, _ = lc.fit_selected(x["train"], splits["train"]["label"], x["val"],
                                      splits["val"]["label"])
        logits[f"lr_ceiling_{name}"] = model.decision_function(x[split])
    return logits


def _run_name(export: str) -> str:
    """An export's name for the table: its base directory's when it is a version folder."""
    path = Path(export)
    return path.parent.name if path.name.isdigit() else path.name


def probe(data_dir: str, exports: list[str], split: str, lr_ceiling: bool = False) -> dict:
    from scipy import special

    from mdaf_tf import metrics
    from mdaf_tf.evaluate import evaluate

    parts, weights = true_parts(data_dir, split)
    oracle_logit = special.logit(parts["p"])
    result = {"split": split, "examples": int(len(parts["label"])), "true_weights": weights,
              "oracle": {"auc": metrics.exact_auc(parts["label"], parts["p"]),
                         **regress(oracle_logit, parts, weights)},
              "models": {}}
    for name, logit in (lr_ceiling_logits(data_dir, split) if lr_ceiling else {}).items():
        result["models"][name] = {"auc": metrics.exact_auc(parts["label"], logit),
                                  **regress(logit, parts, weights)}
    for export in exports:
        predictions, _, _ = evaluate(export, data_dir, split, progress=False)
        if not np.array_equal(predictions.labels, parts["label"]):
            raise SystemExit(f"{export}: predictions are not in the split's file order")
        prob = np.clip(predictions.probabilities.astype(np.float64), 1e-7, 1 - 1e-7)
        logit = special.logit(prob)
        result["models"][_run_name(export)] = {"export": str(export),
                                               "auc": metrics.exact_auc(parts["label"], prob),
                                               **regress(logit, parts, weights)}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="a dataset directory written by pipelines.synthetic")
    parser.add_argument("exports", nargs="*", help="export version directories (the "
                        "numbered folder under train's --export)")
    parser.add_argument("--lr-ceiling", action="store_true",
                        help="also probe the logistic-regression ceilings (studies/"
                             "linear_ceiling/linear_ceiling.py's three feature sets)")
    parser.add_argument("--split", default="val", choices=("train", "val", "test"))
    parser.add_argument("--output", default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    result = probe(args.data, args.exports, args.split, args.lr_ceiling)
    print(f"{args.split}: {'':<40}{'AUC':>7}{'R^2':>7}{'affinity':>10}{'quality':>9}{'q':>7}")
    for name, r in [("oracle", result["oracle"]), *result["models"].items()]:
        learned = r["learned"]
        print(f"{name[-46:]:<46}{r['auc']:>7.4f}{r['r2']:>7.3f}"
              f"{learned['part_affinity']:>10.3f}{learned['part_quality']:>9.3f}"
              f"{learned['part_sequence']:>7.3f}")
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
