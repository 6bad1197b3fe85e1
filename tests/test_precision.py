"""Mixed precision (``mdaf_tf.precision``): dtype policies through building, training,
saving and export, for every model of the registry."""

import json
import os
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).parent / "training"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tiny_run import write_dataset  # noqa: E402

from mdaf_tf import data, export  # noqa: E402
from mdaf_tf.config import TrainConfig  # noqa: E402
from mdaf_tf.data import load_metadata  # noqa: E402
from mdaf_tf.internal_apis import nested_layers  # noqa: E402
from mdaf_tf.models import MODEL_NAMES, build_model, registry  # noqa: E402
from mdaf_tf.precision import PRECISIONS, check_precision, needs_loss_scaling  # noqa: E402
from mdaf_tf.training import config_file  # noqa: E402
from mdaf_tf.training.runner import compile_trainer, fill_model_config  # noqa: E402
from tests.models.conftest import random_batch, tiny_config  # noqa: E402
from tests.models.model_checks import one_per_class  # noqa: E402

SEQ = 6
COMPUTE_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16",
                 "mixed_float16": "float16"}
# How far an export may be from the Keras model it was made from: export.CHECK_TOLERANCE.
EXPORT_TOLERANCE = export.CHECK_TOLERANCE


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("precision") / "data", n_train=32, n_val=64,
                         max_seq_len=SEQ)


def test_an_unknown_precision_names_the_field():
    with pytest.raises(ValueError, match="'precision'.*float32, mixed_bfloat16"):
        check_precision("bfloat16")
    with pytest.raises(ValueError, match="'precision'"):
        build_model("bst", tiny_config("bst", precision="half"))


@pytest.mark.parametrize("precision", PRECISIONS)
def test_per_token_layers_take_the_policy_the_rest_stays_float32(precision):
    model = build_model("mdaf", tiny_config(precision=precision))
    encoder = model.get_layer("sequence_encoder")
    assert {layer.compute_dtype for layer in [encoder, *nested_layers(encoder)]} == {
        COMPUTE_DTYPE[precision]}
    for name in ("feature_embedding", "static_projection", "static_dcnv3", "fusion",
                 "output_mlp"):
        assert model.get_layer(name).compute_dtype == "float32", name
    assert all(v.dtype == "float32" for v in model.weights)
    outputs = model(random_batch(model.config, 4))
    assert {k: v.dtype for k, v in outputs.items()} == {
        "logit": tf.float32, "probability": tf.float32, "gate": tf.float32}
    assert needs_loss_scaling(model) == (precision == "mixed_float16")
    trainer = compile_trainer(model, TrainConfig(batch_size=4), 10, False)
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer) == (
        precision == "mixed_float16")


def test_a_keras_round_trip_keeps_the_precision_and_the_predictions(tmp_path):
    model = build_model("mdaf_ta", tiny_config(precision="mixed_bfloat16"))
    batch = random_batch(model.config, 8)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("sequence_encoder").mamba_blocks[0].compute_dtype == "bfloat16"
    np.testing.assert_array_equal(loaded(batch)["probability"], model(batch)["probability"])


def trained_model(name: str, precision: str, data_dir):
    """``name`` at the tiny config after four ``fit`` steps, and whether the loss was finite
    and some weight moved."""
    keras.utils.set_random_seed(0)
    config = fill_model_config(tiny_config(name, precision=precision, max_seq_len=SEQ),
                               load_metadata(data_dir))
    model = build_model(name, config)
    trainer = compile_trainer(model, TrainConfig(batch_size=16), 4, False)
    before = [w.numpy() for w in model.trainable_weights]
    # Four steps: under float16 the loss scale starts high (2^15) and the first steps may
    # overflow, which LossScaleOptimizer answers by skipping the step and halving the scale.
    batches = data.make_dataset(data_dir, "train", 16, training=True).repeat()
    losses = trainer.fit(batches, epochs=1, steps_per_epoch=4, verbose=0).history["loss"]
    moved = any(not np.array_equal(b, w.numpy())
                for b, w in zip(before, model.trainable_weights, strict=True))
    return model, config, bool(np.all(np.isfinite(losses))) and moved


def model_with_a_gradient(name: str, precision: str, data_dir):
    """``name`` at the tiny config after one eager forward and backward pass under
    ``precision``, and whether the loss and every gradient were finite and most weights got
    one (``trained_model``'s ``fit`` through the recipe's trainer costs ten times more, most
    of it tracing)."""
    keras.utils.set_random_seed(0)
    config = fill_model_config(tiny_config(name, precision=precision, max_seq_len=SEQ),
                               load_metadata(data_dir))
    model = build_model(name, config)
    x, y = next(iter(data.make_dataset(data_dir, "train", 16, training=True)))
    with tf.GradientTape() as tape:
        logit = tf.reshape(model(x, training=True)["logit"], [-1])
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
            tf.cast(tf.reshape(y, [-1]), logit.dtype), logit))
    grads = [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_weights)
             if g is not None]
    finite = bool(np.isfinite(float(loss))) and all(
        bool(tf.reduce_all(tf.math.is_finite(g))) for g in grads)
    reached = sum(bool(tf.reduce_any(g != 0)) for g in grads)
    return model, config, finite and reached > len(model.trainable_weights) // 2


def exported_probabilities(path, data_dir, model) -> tuple[np.ndarray, np.ndarray]:
    """(serving_default's probabilities on the raw validation ids, the Keras model's with
    the export's scan)."""
    meta = load_metadata(data_dir)
    features, _ = next(iter(data.make_dataset(data_dir, "val", 64, training=False)))
    raw = export.dense_to_raw({k: v.numpy() for k, v in features.items()},
                              export.read_vocabularies(data_dir, meta))
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    served = signature(**{k: tf.constant(v) for k, v in raw.items()})["probability"]
    with export.portable_scans(model):  # the scan the export runs (export.CHECK_TOLERANCE)
        expected = np.asarray(model(features, training=False)["probability"]).reshape(-1)
    return served.numpy(), expected


def sixteen_bit_layers(name: str, precision: str) -> list:
    """The layers of registry model ``name`` that compute in ``precision``'s 16-bit dtype
    (with ``precision`` in its config where the config has the field)."""
    given = {"precision": precision} if "precision" in registry.config_fields(name) else {}
    return [layer for layer in nested_layers(build_model(name, tiny_config(name, **given)))
            if layer.compute_dtype != "float32"]


def policy_takers(precision: str) -> list[str]:
    """The registry models with a layer that computes in ``precision``'s 16-bit dtype."""
    return [name for name in MODEL_NAMES if sixteen_bit_layers(name, precision)]


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_a_model_has_a_precision_field_exactly_when_it_has_a_16_bit_layer(precision):
    """What the export test below leaves out has no precision to set: float32 through and
    through, whose exports ``tests/models/test_declared_features.py`` checks for every model
    on two schemas; ``--precision`` leaves it as it is."""
    takers = policy_takers(precision)
    assert {"mdaf", "mamba4rec", "bst", "din"} <= set(takers)
    with_field = [n for n in MODEL_NAMES if "precision" in registry.config_fields(n)]
    assert sorted(takers) == sorted(with_field)
    for name in sorted(set(MODEL_NAMES) - set(takers)):
        assert not sixteen_bit_layers(name, precision)  # no field, and float32 throughout
        config = config_file.model_config(name, {}, flags={"precision": precision})
        assert not hasattr(config, "precision"), name


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_every_model_trains_and_exports(precision, data_dir, tmp_path, graph_optimizer):
    """Each model class that computes in ``precision``'s 16-bit dtype learns under it
    (``fit`` with the recipe on MDAF, a finite gradient reaching most weights on the others),
    and its export, run by TF Serving's session loader in a process without mdaf_tf
    (``export.verify_exports``), matches the Keras model; of a class's names, the one with
    every layer of the class (``model_checks.one_per_class``: ``mdaf_match`` for MDAF). The
    other models are float32 throughout (the test above), whose exports
    ``tests/models/test_declared_features.py`` checks on two schemas."""
    names = list(one_per_class({name: build_model(name, tiny_config(name))
                                for name in policy_takers(precision)}))
    assert len(names) == 5 and "mdaf_match" in names
    exports = []
    for name in names:
        # the recipe's trainer (LossScaleOptimizer under float16) on MDAF; a gradient pass
        # on the others, whose training step differs from MDAF's only in the model
        model, config, learnt = (trained_model if name == "mdaf_match"
                                 else model_with_a_gradient)(name, precision, data_dir)
        assert learnt, f"{name} under {precision}: a non-finite loss or gradient, or no " \
            "weight moved"
        exports.append((export.export_model(model, config, name, data_dir, tmp_path / name),
                        model))
    with graph_optimizer():  # float16 rounds differently without it (1e-4 on mdaf)
        reports = export.verify_exports(exports, data_dir, tolerance=EXPORT_TOLERANCE)
    for name, report in zip(names, reports, strict=True):
        assert report["loader"] == "tf.compat.v1.saved_model.loader", name
        assert report["nonstandard_ops"] == [] and not report["mdaf_tf_imported"], name
        assert report["examples"] == 64, name
        for signature in ("serving_default", "predict_examples"):
            worst = report[signature]["probability"]
            assert worst <= EXPORT_TOLERANCE, f"{name} {signature}: {worst:.2e}"


def test_a_bfloat16_serving_graph_keeps_the_signature_and_the_weights(data_dir, tmp_path):
    model, config, _ = trained_model("mdaf", "float32", data_dir)
    path = export.export_model(model, config, "mdaf", data_dir, tmp_path / "saved",
                               serving_precision="mixed_bfloat16")
    info = json.loads((Path(path) / export.INFO_FILE).read_text())
    assert info["model_config"]["precision"] == "mixed_bfloat16"
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    assert {k: v.dtype for k, v in signature.structured_outputs.items()} == {
        "probability": tf.float32, "gate": tf.float32}
    copy = export.serving_model(model, "mixed_bfloat16")
    assert copy.get_layer("sequence_encoder").compute_dtype == "bfloat16"
    for ours, theirs in zip(copy.weights, model.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    served, expected = exported_probabilities(path, data_dir, copy)
    assert np.max(np.abs(served - expected)) <= EXPORT_TOLERANCE
    assert export.serving_model(model, None) is model
