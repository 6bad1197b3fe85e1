"""Every model on a declared schema of 7 categorical + 2 numeric static fields, 3 aligned
sequence fields and a history-only one: it builds, trains a step, round-trips through .keras
and exports, and its export's serving_default takes exactly the declared raw fields and
matches Keras to 1e-5 in a fresh process without mdaf_tf."""

import keras
import numpy as np
import pytest
from declared_data import DECLARED, STRING_VOCABS, write

from mdaf_tf import data, export
from mdaf_tf.config import ModelConfig
from mdaf_tf.models import MODEL_NAMES, build_model
from mdaf_tf.training.splits import fill_model_config


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write(tmp_path_factory.mktemp("declared") / "data")


@pytest.fixture(scope="module")
def trained():
    """name -> (model, config) once its test has trained it (for the export test)."""
    return {}


def small_config(data_dir) -> ModelConfig:
    config = ModelConfig(hidden_dim=16, d_state=4, gate_hidden=16, output_hidden=(8,),
                         deep_hidden=(16, 8), autoint_attention_dim=8, bst_heads=2,
                         user_embedding_dim=8, item_embedding_dim=8, cate_embedding_dim=4,
                         embedding_dims={"hour": 4}, dropout=0.1)
    return fill_model_config(config, data.load_metadata(data_dir))


def expected_inputs() -> dict:
    dtypes = {f["name"]: ("float32" if f["kind"] == "numeric" else
                          "string" if f.get("vocabulary", f["name"]) in STRING_VOCABS
                          else "int64") for f in DECLARED["static"]}
    for f in DECLARED["sequence"]:
        dtypes[f["name"]] = (dtypes[f["static"]] if "static" in f else
                             "string" if f["vocabulary"] in STRING_VOCABS else "int64")
    return {**dtypes, "hist_len": "int64"}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_trains_a_step_and_round_trips(name, data_dir, trained, tmp_path):
    keras.utils.set_random_seed(1)
    config = small_config(data_dir)
    model = build_model(name, config)
    assert {i.name for i in model.inputs} == set(expected_inputs())
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss={"logit": keras.losses.BinaryCrossentropy(from_logits=True)})
    batch = data.make_dataset(data_dir, "train", 32).take(1)
    before = [np.array(w) for w in model.trainable_weights]
    history = model.fit(batch.map(lambda x, y: (x, {"logit": y})), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    changed = sum(not np.allclose(a, np.array(b)) for a, b in
                  zip(before, model.trainable_weights, strict=True))
    assert changed > len(before) // 2  # the step reached most weights, numeric ones included
    features, _ = next(iter(data.make_dataset(data_dir, "val", 64)))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored(features)["probability"],
                               model(features)["probability"], atol=1e-6)
    trained[name] = model, config


def test_every_export_takes_the_declared_fields_and_matches_keras(data_dir, trained,
                                                                   tmp_path):
    if not trained:  # selected alone (-k): the per-model tests train the models
        pytest.skip("no model trained by the per-model tests in this run")
    exports = [(export.export_model(model, config, name, data_dir, tmp_path / name), model)
               for name, (model, config) in trained.items()]
    reports = export.verify_exports(exports, data_dir, tolerance=1e-5)
    for report in reports:
        assert report["serving_default_inputs"] == dict(sorted(expected_inputs().items()))
        assert not report["mdaf_tf_imported"] and report["examples"] == 96
