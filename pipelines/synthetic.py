"""Synthetic impression log with a known click probability -> TFRecord dataset.

``python -m pipelines.synthetic --output DIR [--users --items --categories --seed ...]``

Each user sees ``--impressions-per-user`` impressions at increasing times. The click
probability is

    p = sigmoid(bias + static_strength * s + sequence_strength * q)

* static part ``s = (a_u . b_c + quality_i) / sqrt(2)``: a low-rank user x category
  affinity plus an item quality, both standard normal in scale;
* sequential part ``q = sum_m decay**m * [category of the m-th most recent click == c]``
  over the user's last ``--recent-clicks`` clicks (m = 0 is the latest).

The log is simulated in time order, so ``q`` is computed from the user's actual earlier
clicks, which are exactly what the impression pipeline puts in the history. Items are shown
partly from the categories of the user's recent clicks (``--recent-exposure``), as a
recommender would, so the sequential part varies. The log is written as CSV and goes
through ``pipelines.impressions``; the metadata records the oracle AUC (AUC of the true
probabilities) and the static-only / sequence-only oracle AUCs (the other part replaced by
its mean) on validation, and the same on test under ``oracle.test``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

from pipelines import impressions, progress
from pipelines.errors import PipelineError, run_cli
from pipelines.examples import SPLIT_CODES, split_codes
from pipelines.output import check_args, summary_line

CSV_NAME = "synthetic_impressions.csv"
START_TIME = 1_700_000_000
USER_ID_BASE, ITEM_ID_BASE, CATE_ID_BASE = 1, 100_000, 5_000


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m pipelines.synthetic",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=100,
                   help="users (default 100; few users with long logs, so that each user's "
                        "affinity is learnable from their own clicks)")
    p.add_argument("--items", type=int, default=200, help="items (default 200)")
    p.add_argument("--categories", type=int, default=25, help="categories (default 25)")
    p.add_argument("--impressions-per-user", type=int, default=360,
                   help="default 360: 36k impressions, about 25k train / 5k val / 5k test")
    p.add_argument("--rank", type=int, default=4, help="rank of the user x category affinity")
    p.add_argument("--static-strength", type=float, default=1.0,
                   help="weight of the static part s in the click logit (default 1.0)")
    p.add_argument("--sequence-strength", type=float, default=0.7,
                   help="weight of the sequential part q in the click logit (default 0.7)")
    p.add_argument("--bias", type=float, default=-1.4,
                   help="constant of the click logit (default -1.4, about 40%% clicks)")
    p.add_argument("--recent-clicks", type=int, default=10,
                   help="clicks the sequential part looks back over")
    p.add_argument("--decay", type=float, default=0.8, help="recency weight per click back")
    p.add_argument("--recent-exposure", type=float, default=0.5,
                   help="share of impressions drawn from recently clicked categories")
    p.add_argument("--days", type=float, default=14.0, help="time span of the log")
    impressions.add_impression_args(p)
    args = p.parse_args(argv)
    check_args(args)
    for name in ("users", "items", "categories", "impressions_per_user", "rank",
                 "recent_clicks"):
        if getattr(args, name) < 1:
            raise PipelineError(f"--{name.replace('_', '-')} must be at least 1")
    if args.items < args.categories:
        raise PipelineError("--items must be at least --categories (every category "
                            "needs an item)")
    if not 0.0 <= args.recent_exposure <= 1.0:
        raise PipelineError("--recent-exposure must be in [0, 1]")
    return args


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def simulate(args) -> dict:
    """The impression log (numpy columns) with its true probabilities and parts."""
    rng = np.random.default_rng(args.seed)
    n_u, n_i, n_c, steps = args.users, args.items, args.categories, args.impressions_per_user
    item_cate = rng.permutation(np.arange(n_i) % n_c)
    quality = rng.standard_normal(n_i)
    user_f = rng.standard_normal((n_u, args.rank)) / np.sqrt(args.rank)
    cate_f = rng.standard_normal((n_c, args.rank))
    affinity = user_f @ cate_f.T  # (users, categories)
    items_by_cate = [np.flatnonzero(item_cate == c) for c in range(n_c)]
    cate_start = np.cumsum([0] + [len(x) for x in items_by_cate])[:-1]
    cate_count = np.array([len(x) for x in items_by_cate])
    items_sorted = np.concatenate(items_by_cate)

    recent = np.full((n_u, args.recent_clicks), -1, dtype=np.int64)  # column 0 = latest
    weights = args.decay ** np.arange(args.recent_clicks)
    mean_gap = args.days * 86400.0 / steps
    gaps = np.maximum(1, np.round(rng.exponential(mean_gap, (n_u, steps)))).astype(np.int64)
    offsets = rng.integers(0, int(mean_gap) + 1, n_u)[:, None]
    ts = START_TIME + offsets + np.cumsum(gaps, axis=1)
    out = {"item": np.zeros((steps, n_u), np.int64), "label": np.zeros((steps, n_u), np.int64),
           "affinity": np.zeros((steps, n_u)), "seq": np.zeros((steps, n_u))}
    users = np.arange(n_u)
    for t in range(steps):
        item = rng.integers(0, n_i, n_u)
        has_recent = recent[:, 0] >= 0
        from_recent = has_recent & (rng.random(n_u) < args.recent_exposure)
        if from_recent.any():
            n_valid = np.maximum(1, (recent >= 0).sum(axis=1))
            pick = recent[users, (rng.random(n_u) * n_valid).astype(np.int64)]
            pick_c = np.where(from_recent, pick, 0)
            j = (rng.random(n_u) * cate_count[pick_c]).astype(np.int64)
            item = np.where(from_recent, items_sorted[cate_start[pick_c] + j], item)
        cate = item_cate[item]
        static = (affinity[users, cate] + quality[item]) / np.sqrt(2.0)
        seq = ((recent == cate[:, None]) * weights).sum(axis=1)
        p = _sigmoid(args.bias + args.static_strength * static + args.sequence_strength * seq)
        label = (rng.random(n_u) < p).astype(np.int64)
        clicked = label == 1
        recent[clicked, 1:] = recent[clicked, :-1]
        recent[clicked, 0] = cate[clicked]
        out["item"][t], out["label"][t], out["affinity"][t], out["seq"][t] = (
            item, label, affinity[users, cate], seq)
    log = {
        "user_id": np.repeat(users[None, :], steps, axis=0).T.reshape(-1) + USER_ID_BASE,
        "item_id": out["item"].T.reshape(-1) + ITEM_ID_BASE,
        "cate_id": item_cate[out["item"].T.reshape(-1)] + CATE_ID_BASE,
        "timestamp": ts.reshape(-1),
        "label": out["label"].T.reshape(-1),
    }
    # the logit's parts before their strengths: user x category affinity, item quality, q
    log["part_affinity"] = out["affinity"].T.reshape(-1)
    log["part_quality"] = quality[out["item"].T.reshape(-1)]
    log["part_sequence"] = out["seq"].T.reshape(-1)
    static = (log["part_affinity"] + log["part_quality"]) / np.sqrt(2.0)
    s_part = args.static_strength * static
    q_part = args.sequence_strength * log["part_sequence"]
    log["p"] = _sigmoid(args.bias + s_part + q_part)
    log["p_static_only"] = _sigmoid(args.bias + s_part + q_part.mean())
    log["p_sequence_only"] = _sigmoid(args.bias + s_part.mean() + q_part)
    # file order: by time, users interleaved as in a real log
    order = np.lexsort((log["user_id"], log["timestamp"]))
    return {k: v[order] for k, v in log.items()}


def _oracle_aucs(log: dict, rows: np.ndarray) -> dict:
    from mdaf_tf.metrics import exact_auc, group_auc, log_loss

    y, p = log["label"][rows], log["p"][rows]
    return {"auc": exact_auc(y, p),
            "gauc": group_auc(y, p, log["user_id"][rows]),
            "log_loss": log_loss(y, p),
            "static_only_auc": exact_auc(y, log["p_static_only"][rows]),
            "sequence_only_auc": exact_auc(y, log["p_sequence_only"][rows]),
            "ctr": float(y.mean()) if len(y) else float("nan")}


def oracle_metadata(log: dict, ev: dict, boundaries: tuple[int, int]) -> dict:
    """The true probabilities' AUCs: validation figures at the top level (as before the
    test split existed) and the test split's under ``test``."""
    code = split_codes(ev["ts"], boundaries)
    rows = {split: ev["order"][code == c] for c, split in enumerate(SPLIT_CODES)}
    val = _oracle_aucs(log, rows["val"])
    val["val_ctr"] = val.pop("ctr")
    return {**val, "test": _oracle_aucs(log, rows["test"]),
            "train_ctr": float(log["label"][rows["train"]].mean())}


def write_csv(log: dict, path: str):
    cols = impressions.COLUMNS
    data = np.stack([log[c] for c in cols], axis=1)
    np.savetxt(path, data, fmt="%d", delimiter=",", header=",".join(cols), comments="")


def build(args) -> dict:
    progress.phase("simulating the impression log")
    log = simulate(args)
    arg_dict = vars(args).copy()
    out_parent = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(out_parent, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_parent, prefix=".synthetic-") as tmp:
        csv_path = os.path.join(tmp, CSV_NAME)
        write_csv(log, csv_path)
        imp_args = argparse.Namespace(**{**arg_dict, "input": csv_path})

        def oracle(boundaries, ev):
            return {"oracle": oracle_metadata(log, ev, boundaries)}

        return impressions.build(imp_args, extra_metadata=oracle,
                                 extra_files={CSV_NAME: csv_path}, arg_dict=arg_dict,
                                 source_display=CSV_NAME)


def main(argv=None):
    args = parse_args(argv)
    with progress.report("synthetic", args.quiet):
        meta = build(args)
    if args.quiet:
        return
    t = meta["oracle"]["test"]
    print(summary_line("synthetic", meta) + f"; oracle test AUC {t['auc']:.4f} (static only "
          f"{t['static_only_auc']:.4f}, sequence only {t['sequence_only_auc']:.4f})",
          file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
