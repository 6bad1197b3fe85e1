"""``python -m mdaf_tf.predict``: raw impression rows scored through an export, compared with
the pipeline's own examples of the same rows fed to the Keras model and to the export."""

import json
import os
import sys

import keras
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mdaf_tf import data, export, models, predict, raw_rows  # noqa: E402
from mdaf_tf.data import load_metadata  # noqa: E402
from mdaf_tf.training.runner import fill_model_config  # noqa: E402
from pipelines import impressions  # noqa: E402

SEQ = 8


def write_log(path, n=400, seed=0):
    """An impression log with unique (user, time), a string brand and a price with gaps."""
    rng = np.random.default_rng(seed)
    user = rng.integers(1, 25, n)
    item = rng.integers(100, 150, n)
    time = 1_700_000_000 + np.cumsum(rng.integers(1, 900, n))
    brand = np.array(["acme", "bolt", "", "čapek"])[item % 4]
    price = np.where(item % 5 == 0, np.nan, item / 10)
    label = (rng.random(n) < 0.25 + 0.2 * (item % 3 == 0)).astype(int)
    frame = pd.DataFrame({"user_id": user, "item_id": item, "cate_id": item % 6,
                          "timestamp": time, "label": label, "brand": brand,
                          "price": price})
    frame.to_csv(path, index=False, na_rep="")
    return frame


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    log = root / "log.csv"
    frame = write_log(log)
    data_dir = root / "data"
    impressions.main(["--input", str(log), "--output", str(data_dir), "--quiet",
                      "--max-seq-len", str(SEQ), "--categorical", "brand", "--numeric",
                      "price", "--history-fields", "item_id,cate_id,brand", "--timezone",
                      "Asia/Shanghai"])
    keras.utils.set_random_seed(5)
    config = fill_model_config(models.make_config("dnn", {
        "embedding_dims": {"user": 4, "item": 4, "cate": 4}, "deep_hidden": (16,)}),
        load_metadata(data_dir))
    model = models.build_model("dnn", config)
    path = export.export_model(model, config, "dnn", data_dir, root / "saved")
    return root, log, frame, data_dir, model, path


def pipeline_examples(data_dir, model):
    """Every split's examples keyed by (user, time): the Keras model's probability and the
    examples' raw ids."""
    vocabs = export.read_vocabularies(data_dir, load_metadata(data_dir))
    inputs = export.feature_schema.from_metadata(load_metadata(data_dir)).model_inputs()
    keys, probabilities, raws = [], [], []
    for split in ("train", "val", "test"):
        for features, _ in data.make_dataset(data_dir, split, 64, include_timestamp=True,
                                             extra_features=("user_key",)):
            keys += list(zip(features.pop("user_key").numpy().tolist(),
                             features.pop("timestamp").numpy().tolist(), strict=True))
            probabilities.append(model(features, training=False)["probability"].numpy())
            raws.append(export.dense_to_raw({k: v.numpy() for k, v in features.items()},
                                            vocabs, inputs))
    raw = {k: np.concatenate([r[k] for r in raws]) for k in raws[0]}
    return keys, np.concatenate(probabilities).reshape(-1), raw


def test_scores_equal_the_keras_model_and_the_export_on_the_pipelines_rows(served, tmp_path):
    root, log, frame, data_dir, model, path = served
    out = tmp_path / "scores.csv"
    assert predict.main(["--model", str(path), "--input", str(log), "--output", str(out),
                         "--batch-size", "37"]) == 0
    scores = pd.read_csv(out)
    assert list(scores.columns) == ["line", "probability"]
    assert scores["line"].tolist() == list(range(2, len(frame) + 2))  # input order
    keys, keras_probability, raw = pipeline_examples(data_dir, model)
    assert len(keys) == len(frame)  # the pipeline kept every row
    row_of = {(u, t): i for i, (u, t) in enumerate(zip(frame.user_id, frame.timestamp,
                                                       strict=True))}
    rows = np.array([row_of[k] for k in keys])
    ours = scores["probability"].to_numpy()[rows]
    np.testing.assert_allclose(ours, keras_probability, atol=1e-5)
    # The same rows as the pipeline wrote them, fed to the export's signature.
    signature = predict.Scorer(path)
    served_probability = signature({k: v for k, v in raw.items()}, 1000)["probability"]
    np.testing.assert_allclose(ours, served_probability, atol=1e-6)


def test_histories_given_as_columns_score_like_built_ones(served, tmp_path):
    root, log, frame, data_dir, model, path = served
    layout = predict.export_layout(path)
    table, first = raw_rows.read_table(log)
    built = raw_rows.signature_inputs(table, layout, log, first)
    columns = {c: frame[c].astype(str).tolist() for c in ("user_id", "item_id", "cate_id",
                                                          "timestamp")}
    columns["brand"] = frame["brand"].fillna("").tolist()
    columns["price"] = frame["price"].tolist()
    for name in ("hist_item_id", "hist_cate_id", "hist_brand"):
        history, length = built[name], built["hist_len"]
        columns[name] = [[v.decode() if isinstance(v, bytes) else int(v)
                          for v in history[i, SEQ - length[i]:]] for i in range(len(frame))]
    pq.write_table(pa.table(columns), tmp_path / "given.parquet")
    assert predict.main(["--model", str(path), "--input", str(tmp_path / "given.parquet"),
                         "--output", str(tmp_path / "given.parquet.scores.parquet")]) == 0
    assert predict.main(["--model", str(path), "--input", str(log), "--output",
                         str(tmp_path / "built.csv")]) == 0
    given = pd.read_parquet(tmp_path / "given.parquet.scores.parquet")
    np.testing.assert_allclose(given["probability"],
                               pd.read_csv(tmp_path / "built.csv")["probability"], atol=1e-6)
    assert given["line"].tolist() == list(range(1, len(frame) + 1))


def test_history_of_a_row_is_the_users_earlier_clicks(served):
    """Hand-checked on three rows: a history holds the same user's clicked rows strictly
    earlier in time, oldest first, and a row's own click is not in it."""
    root, log, frame, data_dir, model, path = served
    layout = predict.export_layout(path)
    rows = pd.DataFrame({"user_id": ["7", "7", "7", "8"], "item_id": ["101", "102", "103",
                                                                      "104"],
                         "cate_id": ["1", "2", "3", "4"],
                         "timestamp": ["10", "20", "20", "5"], "label": ["1", "1", "", "1"],
                         "brand": ["", "acme", "bolt", "acme"], "price": ["", "1", "2", "3"]})
    inputs = raw_rows.signature_inputs(pa.Table.from_pandas(rows), layout)
    assert inputs["hist_len"].tolist() == [0, 1, 1, 0]  # time 20 sees only time 10's click
    assert inputs["hist_item_id"][:, -1].tolist() == [-1, 101, 101, -1]
    assert inputs["hist_brand"][1, -1] == b"<missing>"  # an empty brand, as the pipeline
    assert inputs["hour"].tolist()[0] == 8  # Unix second 10 is 08:00 in Asia/Shanghai


@pytest.mark.parametrize("line, bad, message", [
    (5, {"item_id": "x12"}, "item_id 'x12' is not an integer id"),
    (3, {"user_id": ""}, "empty user_id"),
    (4, {"timestamp": "soon"}, "timestamp 'soon' is not an integer"),
    (6, {"price": "cheap"}, "price 'cheap' is not a number"),
    (7, {"label": "maybe"}, "label 'maybe' is not 0/1"),
])
def test_a_row_the_export_cannot_take_is_one_line_naming_it(served, tmp_path, capsys, line,
                                                             bad, message):
    root, log, frame, data_dir, model, path = served
    broken = frame.copy().astype(object)
    for column, value in bad.items():
        broken.loc[line - 2, column] = value
    broken.to_csv(tmp_path / "rows.csv", index=False, na_rep="")
    out = tmp_path / "scores.csv"
    assert predict.main(["--model", str(path), "--input", str(tmp_path / "rows.csv"),
                         "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path / 'rows.csv'}:{line}: {message}" or (
        err.startswith(f"error: {tmp_path / 'rows.csv'}:{line}: {message}")), err
    assert "\n" not in err and not out.exists() and not list(tmp_path.glob(".scores*"))


def test_bytes_that_are_not_text_name_their_line(served, tmp_path, capsys):
    root, log, frame, data_dir, model, path = served
    lines = log.read_bytes().splitlines(keepends=True)
    lines[9] = b"3,12\xff,1,1700000000,0,acme,1\n"
    (tmp_path / "rows.csv").write_bytes(b"".join(lines))
    assert predict.main(["--model", str(path), "--input", str(tmp_path / "rows.csv"),
                         "--output", str(tmp_path / "s.csv")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path / 'rows.csv'}:10: the row is not UTF-8 text")


def test_an_export_without_a_schema_is_refused(served, tmp_path, capsys):
    import shutil

    root, log, frame, data_dir, model, path = served
    old = tmp_path / "old"
    shutil.copytree(path, old)
    info = json.loads((old / export.INFO_FILE).read_text())
    del info["schema"]
    (old / export.INFO_FILE).write_text(json.dumps(info))
    assert predict.main(["--model", str(old), "--input", str(log), "--output",
                         str(tmp_path / "s.csv")]) == 2
    assert "export the model again" in capsys.readouterr().err


def test_the_signature_outputs_stay_float32(served):
    *_, path = served
    assert {v.dtype for v in predict.Scorer(path).signature.outputs.values()} == {
        tf.float32.as_datatype_enum}
    assert sys.modules["mdaf_tf.predict"] is predict


def test_quiet_prints_nothing_and_writes_the_same_scores(served, tmp_path, capsys):
    root, log, frame, data_dir, model, path = served
    assert predict.main(["--model", str(path), "--input", str(log), "--output",
                         str(tmp_path / "loud.csv")]) == 0
    assert capsys.readouterr().out.startswith(f"scored {len(frame):,} rows")
    assert predict.main(["--model", str(path), "--input", str(log), "--output",
                         str(tmp_path / "quiet.csv"), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert (tmp_path / "quiet.csv").read_text() == (tmp_path / "loud.csv").read_text()
