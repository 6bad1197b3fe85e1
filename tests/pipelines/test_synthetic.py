import json
import time

import numpy as np
from pipeline_helpers import shard_bytes

from mdaf_tf.data import read_split_numpy
from pipelines import synthetic

SMALL = ["--users", 300, "--items", 120, "--categories", 12, "--impressions-per-user", 60]


def test_oracle_gaps_and_metadata(tmp_path, cli):
    out = tmp_path / "ds"
    code, err = cli(synthetic, "--output", out, *SMALL)
    assert code == 0, err
    meta = json.loads((out / "metadata.json").read_text())
    o = meta["oracle"]
    assert 0.7 < o["auc"] < 0.9
    assert o["auc"] - o["static_only_auc"] >= 0.03
    assert o["auc"] - o["sequence_only_auc"] >= 0.03
    assert sum(meta["splits"][s]["examples"] for s in ("train", "val", "test")) == 300 * 60
    assert 0.7 < o["test"]["auc"] < 0.9
    assert meta["source"]["path"] == synthetic.CSV_NAME and (out / synthetic.CSV_NAME).exists()
    val = read_split_numpy(out, "val")
    assert abs(val["label"].mean() - o["val_ctr"]) < 1e-9
    test = read_split_numpy(out, "test")
    assert abs(test["label"].mean() - o["test"]["ctr"]) < 1e-9
    assert "oracle test AUC" in err


def test_sequence_part_is_built_from_actual_previous_clicks():
    args = synthetic.parse_args(["--output", "unused", "--users", "40", "--items", "30",
                                 "--categories", "5", "--impressions-per-user", "50"])
    log = synthetic.simulate(args)
    logit = lambda p: np.log(p / (1 - p))
    # logit(p) - logit(p with the sequence part at its mean) = q_part - mean(q_part)
    q_centered = logit(log["p"]) - logit(log["p_static_only"])
    q = np.zeros(len(log["p"]))
    clicks: dict[int, list[int]] = {}
    for k in np.argsort(log["timestamp"], kind="stable"):
        u, c = int(log["user_id"][k]), int(log["cate_id"][k])
        recent = clicks.setdefault(u, [])[::-1][: args.recent_clicks]
        q[k] = args.sequence_strength * sum(args.decay ** m for m, rc in enumerate(recent)
                                            if rc == c)
        if log["label"][k] == 1:
            clicks[u].append(c)
    np.testing.assert_allclose(q_centered, q - q.mean(), atol=1e-9)


def test_default_size_fits_the_training_budget(tmp_path, cli):
    # The main command trains MDAF on the default with the synthetic preset's epochs at about
    # 380 examples/s on 2 cores (batch 256, README): at most seven minutes of training leaves
    # room for the data build, the export and its check in the 10-minute budget. The sizes
    # are measured on the default dataset as built, not derived from the arguments.
    from mdaf_tf.data.source import SYNTHETIC_DEFAULT_TRAIN

    out = tmp_path / "default"
    started = time.perf_counter()
    code, err = cli(synthetic, "--output", out)
    build_seconds = time.perf_counter() - started
    assert code == 0, err
    train = read_split_numpy(out, "train")  # the records actually in the written shards
    train_examples = len(train["label"])
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["splits"]["train"]["examples"] == train_examples > 0
    assert train_examples * SYNTHETIC_DEFAULT_TRAIN["epochs"] / 380 <= 420
    assert build_seconds < 60
    # Each user's affinity has to be learnable from that user's own clicks: every user has
    # a few hundred training impressions, dozens of them clicks.
    users, per_user = np.unique(train["user_id"], return_counts=True)
    clicks = np.array([train["label"][train["user_id"] == u].sum() for u in users])
    assert len(users) == synthetic.parse_args(["--output", "unused"]).users
    assert per_user.min() >= 200 and clicks.min() >= 40


def test_same_seed_same_bytes(tmp_path, cli):
    small = ["--users", 50, "--items", 40, "--categories", 5, "--impressions-per-user", 20]
    assert cli(synthetic, "--output", tmp_path / "a", *small)[0] == 0
    assert cli(synthetic, "--output", tmp_path / "b", *small)[0] == 0
    assert cli(synthetic, "--output", tmp_path / "c", *small, "--seed", 3)[0] == 0
    assert shard_bytes(tmp_path / "a") == shard_bytes(tmp_path / "b")
    assert shard_bytes(tmp_path / "a") != shard_bytes(tmp_path / "c")
    assert cli(synthetic, "--output", tmp_path / "a", *small)[0] == 0  # rerun in place
    code, err = cli(synthetic, "--output", tmp_path / "a", *small, "--items", 41)
    assert code == 2 and "different dataset" in err
