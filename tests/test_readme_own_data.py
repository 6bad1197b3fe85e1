"""README's "Use your own data" walkthrough runs as written on the committed example file:
pipeline, train (1 epoch, with its export check), evaluate, predict and saved_model_cli; then
predict's scores equal the export's signature on the pipeline's own examples of those rows."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def walkthrough() -> list[str]:
    match = re.search(r"<!-- own-data:start -->\n```\n(.*?)```\n<!-- own-data:end -->",
                      README.read_text(), re.S)
    assert match, "README has no own-data block"
    return [line.strip() for line in match.group(1).replace("\\\n", " ").splitlines()
            if line.strip()]


@pytest.mark.slow
def test_the_own_data_walkthrough_runs_as_written(tmp_path):
    from mdaf_tf import data, export, predict
    from mdaf_tf.data import load_metadata

    (tmp_path / "examples").mkdir()
    shutil.copy(REPO / "examples" / "impressions.csv", tmp_path / "examples")
    env = {k: v for k, v in os.environ.items() if k != "MDAF_TF_DATA_CACHE"}
    outputs = []
    for command in walkthrough():
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True,
                              text=True)
        assert done.returncode == 0, f"{command}\n{done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr, command
        if command.startswith("python -m"):  # ours start TensorFlow quietly
            assert "cuInit" not in done.stderr and "I0000" not in done.stderr, command
        outputs.append(done.stdout)
    train_output = outputs[1]
    check = re.search(r"match the Keras model to ([0-9.e+-]+)", train_output)
    assert check and float(check.group(1)) <= 1e-5  # the export is the Keras model
    assert "serving_default" in outputs[-1] and "hist_item_id" in outputs[-1]

    rows = pd.read_csv(tmp_path / "examples" / "impressions.csv")
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert len(scores) == len(rows) and scores["line"].tolist() == list(range(2, len(rows) + 2))
    data_dir, path = tmp_path / "data" / "mine", tmp_path / "saved_models" / "mine" / "1"
    meta = load_metadata(data_dir)
    vocabs = export.read_vocabularies(data_dir, meta)
    inputs = export.feature_schema.from_metadata(meta).model_inputs()
    row_of = {(u, t): i for i, (u, t) in enumerate(zip(rows.user_id, rows.timestamp,
                                                       strict=True))}
    scorer = predict.Scorer(path)
    compared = 0
    for split in ("train", "val", "test"):
        for features, _ in data.make_dataset(data_dir, split, 128, include_timestamp=True,
                                             extra_features=("user_key",)):
            keys = zip(features.pop("user_key").numpy(), features.pop("timestamp").numpy(),
                       strict=True)
            index = np.array([row_of[(int(u), int(t))] for u, t in keys])
            raw = export.dense_to_raw({k: v.numpy() for k, v in features.items()}, vocabs,
                                      inputs)
            served = scorer(raw, 1024)["probability"]
            np.testing.assert_allclose(scores["probability"].to_numpy()[index], served,
                                       atol=1e-6)
            compared += len(index)
    assert compared == len(rows)  # every row of the file is one of the pipeline's examples
