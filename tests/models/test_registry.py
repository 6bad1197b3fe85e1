import dataclasses
import json
import subprocess

import keras
import numpy as np
import pytest

from mdaf_tf.config import ConfigError
from mdaf_tf.models import MODEL_NAMES, ModelConfig, legacy_config, make_config, registry
from mdaf_tf.models.registry import build_model, register_model
from tests.models.conftest import random_batch, tiny_config
from tests.test_imports import REPO

# A_log = log(1..N) per channel is deterministic by design (Mamba's S4D-real init).
DETERMINISTIC = ("A_log",)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_random_weight_gets_its_own_draws(name):
    # An initializer instance shared by several weights repeats its draws in Keras 3 (one seed
    # per instance): same-shaped weights came out identical, e.g. DCNv3's six cross kernels and
    # AutoInt's query, key and value. Leading values compared, as different shapes share those.
    keras.utils.set_random_seed(0)
    config = tiny_config(name)
    model = build_model(name, config)
    model(random_batch(config, 2))
    seen = {}
    for weight in model.weights:
        values = np.asarray(weight).ravel()
        if values.size < 8 or np.ptp(values) == 0 or weight.path.endswith(DETERMINISTIC):
            continue
        key = values[:8].tobytes()
        assert key not in seen, f"{weight.path} starts with the draws of {seen[key]}"
        seen[key] = weight.path
    assert len(seen) >= 5


class _ReadRecorder:
    """Wraps a config: the field names read through it."""

    def __init__(self, config):
        self.read = set()
        recorder = self

        class Recording(type(config)):
            def __getattribute__(self, name):
                recorder.read.add(name)
                return object.__getattribute__(self, name)

        self.config = Recording(**{f.name: getattr(config, f.name)
                                   for f in dataclasses.fields(config)})


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_field_of_a_models_config_is_read_when_it_is_built(name):
    recorder = _ReadRecorder(make_config(name, tiny_config(name)))
    registry.model_class(name)(recorder.config, name=name)
    fields = {f.name for f in dataclasses.fields(recorder.config)}
    assert fields - recorder.read == set(), f"{name} never reads {fields - recorder.read}"


def test_the_read_check_sees_a_planted_field_nobody_reads():
    @dataclasses.dataclass
    class Padded(registry.registration("dnn").config_class):
        never_read: int = 0

    recorder = _ReadRecorder(Padded(**dataclasses.asdict(tiny_config("dnn"))))
    registry.model_class("dnn")(recorder.config, name="dnn")
    assert "never_read" not in recorder.read and "deep_hidden" in recorder.read


def test_each_name_is_registered_once_and_compare_defaults_leave_out_the_match_variants():
    assert len(set(MODEL_NAMES)) == len(MODEL_NAMES) == 14
    assert set(MODEL_NAMES) - set(registry.comparison_names()) == {"mdaf_match", "dnn_match"}
    assert make_config("mdaf_ta", {}).target_in_sequence
    assert make_config("mdaf_ta", {"target_in_sequence": False}).target_in_sequence  # fixed


def test_a_field_the_model_does_not_read_is_an_error_naming_it_and_the_model():
    with pytest.raises(ConfigError, match=r"hidden_dim not read by model 'dnn' \(DNNConfig"):
        make_config("dnn", {"hidden_dim": 16})
    assert not hasattr(make_config("dnn", {"hidden_dim": 16}, strict=False), "hidden_dim")
    with pytest.raises(ConfigError, match="unknown model 'nope'.*one of: autoint"):
        make_config("nope", {})
    with pytest.raises(ConfigError, match="cannot import module 'no_such_module'"):
        make_config("no_such_module:wide", {})


def test_another_models_config_gives_the_fields_both_read():
    mdaf = tiny_config("mdaf", dropout=0.05)
    dnn = make_config("dnn", mdaf)
    assert (dnn.vocab_sizes, dnn.embedding_dims, dnn.dropout) == (
        mdaf.vocab_sizes, mdaf.embedding_dims, 0.05)


def test_a_name_taken_by_another_class_cannot_be_registered_again():
    @dataclasses.dataclass
    class OtherConfig(ModelConfig):
        pass

    class Other(keras.Model):
        config_class = OtherConfig

    with pytest.raises(ValueError, match="'dnn' is already registered by mdaf_tf.models.dnn"):
        register_model("dnn")(Other)
    with pytest.raises(TypeError, match="has no field"):
        register_model("other_variant", fixed={"hidden_dim": 3})(Other)


def test_a_legacy_section_maps_the_own_fields_and_drops_what_the_model_never_read():
    legacy = {"user_vocab_size": 30, "item_vocab_size": 40, "cate_vocab_size": 8,
              "vocab_sizes": {"hour": 26}, "user_embedding_dim": 16, "item_embedding_dim": None,
              "cate_embedding_dim": None, "embedding_dims": {"hour": 8}, "hidden_dim": 64,
              "bst_heads": 4, "dropout": 0.2}
    dnn = make_config("dnn", legacy)
    assert dnn.vocab_sizes == {"hour": 26, "user": 30, "item": 40, "cate": 8}
    assert dnn.embedding_dims == {"hour": 8, "user": 16} and dnn.dropout == 0.2
    assert make_config("mdaf", legacy).hidden_dim == 64
    current = {"hidden_dim": 64}
    assert legacy_config.convert(current, {"dropout"}) is current  # not legacy: unchanged


def _committed_config_files():
    listed = subprocess.run(["git", "ls-files", "*.json"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.split()
    return [p for p in listed if p.endswith(("/config.json", "best_config.json"))
            or "/configs/" in p]


def test_every_committed_config_file_loads_as_its_models_config():
    from mdaf_tf.training import config_file

    files = _committed_config_files()
    assert len(files) > 100  # the studies' run files, tuned configs and presets
    kinds = set()
    for path in files:
        model_config, train_config = config_file.resolve(REPO / path, {})
        assert type(model_config) is registry.registration(train_config.model).config_class
        values = json.loads((REPO / path).read_text())
        section = values.get("model") if isinstance(values.get("model"), dict) else values
        for vocab in ("user", "item", "cate"):
            size = section.get(f"{vocab}_vocab_size")
            if size:
                assert model_config.vocab_sizes[vocab] == size, path
        kinds.add(train_config.model)
    assert len(kinds) >= 8
