"""A model of the user's own, docs/model.md's "Adding a model" module and nothing else, trains,
compares, tunes and exports through the commands (``--model MODULE:NAME``)."""

import json
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent / "training"))

from tiny_run import write_dataset  # noqa: E402

from mdaf_tf import compare, export, train, tune  # noqa: E402
from mdaf_tf.training import config_file  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def readme_module() -> str:
    """The model module docs/model.md's "Adding a model" shows."""
    text = (REPO / "docs" / "model.md").read_text()
    block = text.split("<!-- own-model:start -->")[1].split("<!-- own-model:end -->")[0]
    return block.split("```python")[1].split("```")[0]


CONFIG = {"model": {"wide_units": 3, "deep_hidden": [8], "embedding_dims": {
    "user": 4, "item": 4, "cate": 4}}, "train": {"learning_rate": 0.01, "batch_size": 64}}


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    root = tmp_path_factory.mktemp("own-model")
    (root / "my_models.py").write_text(readme_module())
    (root / "config.json").write_text(json.dumps(CONFIG))
    data_dir = write_dataset(root / "data", n_train=256, n_val=128, n_test=128)
    sys.path.insert(0, str(root))
    yield root, data_dir
    sys.path.remove(str(root))


def test_it_trains_and_its_export_runs_in_tf_servings_loader(setting):
    root, data_dir = setting
    code = train.main(["--data", str(data_dir), "--model", "my_models:wide", "--epochs", "2",
                       "--config", str(root / "config.json"), "--output", str(root / "run"),
                       "--export", str(root / "saved"), "--quiet"])
    assert code == 0
    recorded = json.loads((root / "run" / "config.json").read_text())
    assert recorded["train"]["model"] == "my_models:wide"
    assert recorded["model"]["wide_units"] == 3 and recorded["model"]["deep_hidden"] == [8]
    model_config, _ = config_file.resolve(root / "run" / "config.json", {})
    assert type(model_config).__name__ == "WideConfig"
    (version,) = (root / "saved").iterdir()
    info = json.loads((version / export.INFO_FILE).read_text())
    assert info["model"] == "my_models:wide" and info["model_config"]["wide_units"] == 3
    # train.main checked the export in TF Serving's session loader (a process that imports
    # neither mdaf_tf nor my_models) against the Keras model, or it would not return 0
    assert (version / "saved_model.pb").is_file()


def test_it_compares_beside_a_built_in_model(setting):
    root, data_dir = setting
    output = root / "compare"
    assert compare.main(["--data", str(data_dir), "--models", "my_models:wide,dnn", "--seeds",
                         "1", "--output", str(output), "--epochs", "1", "--reference", "dnn",
                         "--config", str(root / "config.json"), "--timing-repeats", "1",
                         "--inference-batch-size", "64", "--quiet"]) == 0
    table = (output / "table3.md").read_text()
    assert "| my_models:wide |" in table and "| dnn |" in table
    result = json.loads((output / "runs" / "my_models:wide" / "seed-1" / "result.json")
                        .read_text())
    assert result["request"]["model"]["wide_units"] == 3 and 0 <= result["test_auc"] <= 1


def test_it_tunes_and_its_best_config_loads_as_its_config(setting):
    root, data_dir = setting
    output = root / "tune"
    assert tune.main(["--data", str(data_dir), "--model", "my_models:wide", "--tuner",
                      "random", "--max-trials", "1", "--epochs-per-trial", "1", "--output",
                      str(output), "--config", str(root / "config.json"), "--quiet"]) == 0
    model_config, train_config = config_file.resolve(output / "best_config.json", {})
    assert train_config.model == "my_models:wide"
    assert type(model_config).__name__ == "WideConfig" and model_config.wide_units == 3
    assert 0.1 <= model_config.dropout <= 0.4  # the searched field
