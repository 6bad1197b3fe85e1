"""Every model on a declared schema of 7 categorical + 2 numeric static fields, 3 aligned
sequence fields and a history-only one, and on pipelines.taobao_ad's output for generated
Taobao Ad files with a behaviour log (17 categorical + 1 numeric static fields, 3 sequence
fields): it builds, gets a gradient in most weights (on the declared schema; each model's own
test trains it with ``fit``, and ``tests/test_compare.py`` one model of each way of reading
the fields on the same generated Taobao Ad files), round-trips through .keras; one model per
class (the variant with every layer of its class, ``model_checks.one_per_class``) exports,
and its export's serving_default takes exactly the raw fields and matches Keras to 1e-5 in a
fresh process without mdaf_tf."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from declared_data import DECLARED, STRING_VOCABS, write

from mdaf_tf import data, export
from mdaf_tf.models import MODEL_NAMES, build_model, make_config
from mdaf_tf.models.config import ModelConfig, fill_model_config
from tests.models.model_checks import one_per_class

PROFILE = ("cms_segid", "cms_group_id", "final_gender_code", "age_level", "pvalue_level",
           "shopping_level", "occupation", "new_user_class_level")
# The raw fields as the generated files hold them: all-integer columns stay int64; brand
# (NULL cells), pid and the profile fields (a user without a profile) are text.
TAOBAO_AD_INPUTS = {
    **dict.fromkeys(("user_id", "item_id", "cate_id", "campaign_id", "customer", "hour",
                     "day_of_week", "hist_cate_id", "hist_len"), "int64"),
    **dict.fromkeys(("brand", "pid", "hist_brand", "hist_btag", *PROFILE), "string"),
    "price": "float32"}


def taobao_ad_data(path):
    from benchmarks import taobao_ad_data as generated
    from pipelines import taobao_ad

    path.mkdir()
    files = generated.generate(str(path), 3000)
    files["behavior_log"] = generated.generate_behavior_log(str(path), 30000, 3000)
    taobao_ad.main([*generated.pipeline_args(files, str(path / "data")), "--max-seq-len", "8",
                    "--min-count", "1"])
    return path / "data"


@pytest.fixture(scope="module", params=["declared", "taobao_ad"])
def dataset(request, tmp_path_factory):
    """(name, data directory, trained: name -> (model, config) once its test trained it)."""
    root = tmp_path_factory.mktemp(request.param)
    path = write(root / "data") if request.param == "declared" else taobao_ad_data(root / "raw")
    return request.param, path, {}


def small_config(name, data_dir) -> ModelConfig:
    values = dict(hidden_dim=16, d_state=4, gate_hidden=16, output_hidden=(8,),
                  deep_hidden=(16, 8), autoint_attention_dim=8, bst_heads=2,
                  embedding_dims={"user": 8, "item": 8, "cate": 4, "hour": 4}, dropout=0.1)
    config = make_config(name, values, strict=False)
    return fill_model_config(config, data.load_metadata(data_dir))


def expected_inputs(dataset: str = "declared") -> dict:
    if dataset == "taobao_ad":
        return TAOBAO_AD_INPUTS
    dtypes = {f["name"]: ("float32" if f["kind"] == "numeric" else
                          "string" if f.get("vocabulary", f["name"]) in STRING_VOCABS
                          else "int64") for f in DECLARED["static"]}
    for f in DECLARED["sequence"]:
        dtypes[f["name"]] = (dtypes[f["static"]] if "static" in f else
                             "string" if f["vocabulary"] in STRING_VOCABS else "int64")
    return {**dtypes, "hist_len": "int64"}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_trains_and_round_trips(name, dataset, tmp_path):
    kind, data_dir, trained = dataset
    keras.utils.set_random_seed(1)
    config = small_config(name, data_dir)
    model = build_model(name, config)
    assert {i.name for i in model.inputs} == set(expected_inputs(kind))
    if kind == "declared":  # a gradient step, eager (fit is each model's own test's)
        x, y = next(iter(data.make_dataset(data_dir, "train", 32)))
        with tf.GradientTape() as tape:
            logit = tf.reshape(model(x, training=True)["logit"], [-1])
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
                tf.cast(tf.reshape(y, [-1]), logit.dtype), logit))
        grads = tape.gradient(loss, model.trainable_weights)
        assert np.isfinite(float(loss))
        reached = sum(g is not None and bool(tf.reduce_any(tf.convert_to_tensor(g) != 0))
                      for g in grads)
        assert reached > len(grads) // 2  # most weights get a gradient, numeric ones too
    features, _ = next(iter(data.make_dataset(data_dir, "val", 64)))
    assert np.all(np.isfinite(model(features)["probability"]))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored(features)["probability"],
                               model(features)["probability"], atol=1e-6)
    trained[name] = model, config


def test_each_model_classs_export_takes_the_declared_fields_and_matches_keras(dataset, tmp_path):
    kind, data_dir, trained = dataset
    if not trained:  # selected alone (-k): the per-model tests train the models
        pytest.skip("no model trained by the per-model tests in this run")
    assert sorted(trained) == sorted(MODEL_NAMES), "the per-model tests ran elsewhere"
    chosen = one_per_class({name: model for name, (model, _) in trained.items()})
    assert len(chosen) == 9 and {"mdaf_match", "dnn_match"} <= set(chosen)
    exports = [(export.export_model(model, trained[name][1], name, data_dir, tmp_path / name),
                model) for name, model in chosen.items()]
    reports = export.verify_exports(exports, data_dir, tolerance=1e-5)
    for report in reports:
        assert report["serving_default_inputs"] == dict(sorted(expected_inputs(kind).items()))
        assert not report["mdaf_tf_imported"]
        assert report["examples"] == (96 if kind == "declared" else 371)  # the val split
