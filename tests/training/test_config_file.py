import json

import pytest

from mdaf_tf.config import ConfigError, ModelConfig, TrainConfig
from mdaf_tf.training import config_file


def test_nested_round_trip(tmp_path):
    model = ModelConfig(dropout=0.1, output_hidden=(32, 16))
    train = TrainConfig(weight_decay=1e-5, model="mdaf_concat")
    config_file.save(tmp_path / "c.json", model, train)
    assert config_file.load(tmp_path / "c.json") == (model, train)


def test_flat_form_routes_fields(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"dropout": 0.3, "label_smoothing": 0.0, "model": "mdaf"}))
    model, train = config_file.load(path)
    assert model.dropout == 0.3 and train.label_smoothing == 0.0 and train.model == "mdaf"


def test_run_config_json_is_accepted():
    values = {"model": {"dropout": 0.2}, "train": {"epochs": 3}, "seed": 42, "versions": {}}
    model, train = config_file.parse(values)
    assert model.dropout == 0.2 and train.epochs == 3


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
        config_file.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_invalid_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        config_file.load(path)
