import json
import sys
from pathlib import Path

import pytest

from mdaf_tf.config import ConfigError, TrainConfig
from mdaf_tf.models import make_config
from mdaf_tf.training import config_file


def test_nested_round_trip(tmp_path):
    model = make_config("mdaf_concat", {"dropout": 0.1, "output_hidden": (32, 16)})
    train = TrainConfig(weight_decay=1e-5, model="mdaf_concat")
    config_file.save(tmp_path / "c.json", model, train)
    assert config_file.resolve(tmp_path / "c.json", {}) == (model, train)


def test_flat_form_routes_fields(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"dropout": 0.3, "label_smoothing": 0.0, "model": "dnn"}))
    model, train = config_file.resolve(path, {})
    assert model.dropout == 0.3 and train.label_smoothing == 0.0 and train.model == "dnn"
    assert type(model).__name__ == "DNNConfig"


def test_run_config_json_is_accepted():
    values = {"model": {"dropout": 0.2}, "train": {"epochs": 3}, "seed": 42, "versions": {}}
    model, train = config_file.parse(values)
    assert model == {"dropout": 0.2} and train.epochs == 3


def test_a_field_the_model_does_not_read_names_the_file_the_field_and_the_model(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"model": {"hidden_dim": 16}, "train": {"model": "dnn"}}))
    with pytest.raises(ConfigError, match=f"{path}: config field.*hidden_dim not read by "
                       "model 'dnn'"):
        config_file.resolve(path, {})
    # a flag (--precision) the model does not read is left out, not an error
    model, _ = config_file.resolve(path, {"model": "mdaf"}, model_overrides={"precision": None})
    assert model.hidden_dim == 16
    dnn = config_file.model_config("dnn", {}, flags={"precision": "mixed_bfloat16"})
    assert not hasattr(dnn, "precision")


@pytest.mark.parametrize(
    "values, message",
    [
        ({"dropuot": 0.1}, "dropuot"),
        ({"dropout": "high"}, "dropout"),
        ({"model": {"dropout": 0.1}, "extra": 1}, "extra"),
        ({"train": {"epochs": 2.5}}, "epochs"),
    ],
)
def test_bad_fields_name_file_and_field(tmp_path, values, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(values))
    with pytest.raises(ConfigError, match=message) as info:
        config_file.resolve(path, {})
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_invalid_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        config_file.load(path)


def test_preset_sits_between_defaults_and_the_file(tmp_path):
    preset = {"batch_size": 256, "learning_rate": 3e-3}
    _, train = config_file.resolve(None, {"epochs": None}, train_preset=preset)
    assert (train.batch_size, train.learning_rate) == (256, 3e-3)
    assert train.weight_decay == TrainConfig().weight_decay

    path = tmp_path / "c.json"
    path.write_text(json.dumps({"train": {"learning_rate": 1e-3}}))
    _, train = config_file.resolve(path, {"batch_size": 64}, train_preset=preset)
    assert train.learning_rate == 1e-3  # the file beats the preset
    assert train.batch_size == 64  # a flag beats both


def test_only_an_omitted_data_flag_brings_the_synthetic_preset():
    from mdaf_tf.data import source as data_source

    assert data_source.train_preset(None) == data_source.SYNTHETIC_DEFAULT_TRAIN
    assert data_source.train_preset("data/taobao") == {}


def test_cached_datasets_are_keyed_by_the_pipelines_source(tmp_path, monkeypatch):
    import importlib.util
    import shutil

    from mdaf_tf.data import source as data_source

    key = data_source.pipelines_key()
    assert key == data_source.pipelines_key()
    copy = tmp_path / "pipelines"
    shutil.copytree(Path(importlib.util.find_spec("pipelines").origin).parent, copy,
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "pipelines", raising=False)
    assert data_source.pipelines_key() == key  # the same source elsewhere
    synthetic = copy / "synthetic.py"
    synthetic.write_text(synthetic.read_text().replace('"--users", type=int, default=100',
                                                       '"--users", type=int, default=101'))
    assert data_source.pipelines_key() != key  # another default


def test_help_text_of_the_synthetic_preset_is_derived_from_it(monkeypatch):
    from mdaf_tf.data import source as data_source

    monkeypatch.setattr(data_source, "SYNTHETIC_DEFAULT_TRAIN",
                        {"epochs": 7, "learning_rate": 0.01})
    assert data_source.describe_preset() == (
        "7 epochs, learning rate 0.01, batch size and warmup from the size rule")
    assert data_source.describe_preset(with_epochs=False) == (
        "learning rate 0.01, batch size and warmup from the size rule")


@pytest.mark.parametrize("text, expected", [("500", (500, 0.0)), ("0", (0, 0.0)),
                                            ("30s", (0, 30.0)), ("10m", (0, 600.0)),
                                            ("1.5h", (0, 5400.0))])
def test_backup_every_is_steps_or_a_duration(text, expected):
    from mdaf_tf.config import backup_interval

    assert backup_interval(text) == expected


@pytest.mark.parametrize("text", ["ten", "-5", "5d", "", "m"])
def test_backup_every_rejects_anything_else_naming_the_field(text):
    from mdaf_tf.config import ConfigError, backup_interval

    with pytest.raises(ConfigError, match="backup_every"):
        backup_interval(text)
