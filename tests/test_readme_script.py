"""README's "From Python" script runs as written, on a small dataset in the pipelines' format."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "training"))
from tiny_run import write_dataset  # noqa: E402

from mdaf_tf import data  # noqa: E402
from mdaf_tf.metrics import exact_auc  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_script() -> str:
    text = README.read_text()
    match = re.search(r"<!-- user-script:start -->\n```python\n(.*?)```\n<!-- user-script:end -->",
                      text, re.S)
    assert match, "README has no user-script block"
    return match.group(1)


def test_the_script_is_about_twenty_lines_of_fit_with_the_projects_and_a_users_callbacks():
    code = readme_script()
    lines = [line for line in code.splitlines() if line.strip()]
    assert len(lines) <= 26
    for needed in ("trainer.fit(", "keras.callbacks.Callback", "ExactEvaluation",
                   "EarlyStopping(monitor=\"val_auc\", mode=\"max\"", "export.export_model("):
        assert needed in code


def test_readme_script_trains_calls_the_users_callback_and_exports(tmp_path, monkeypatch,
                                                                   capsys):
    (tmp_path / "data").mkdir()
    data_dir = write_dataset(tmp_path / "data" / "synthetic", n_train=768, n_val=200)
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "readme"}
    exec(compile(readme_script(), str(README), "exec"), namespace)
    printed = [line for line in capsys.readouterr().out.splitlines() if "val AUC" in line]
    # The user's callback saw the validation AUC and the gate mean every epoch.
    assert [line.split(":")[0] for line in printed] == ["epoch 1", "epoch 2", "epoch 3"]
    aucs = [float(re.search(r"val AUC ([0-9.]+)", line).group(1)) for line in printed]
    gates = [float(re.search(r"gate ([0-9.]+)", line).group(1)) for line in printed]
    assert all(0.0 < g < 1.0 for g in gates)
    # EarlyStopping restored the best epoch: the exported model's exact validation AUC,
    # recomputed here from its predictions, is the best one the callback printed.
    labels, probabilities = [], []
    for features, y in data.make_dataset(str(data_dir), "val", 64):
        labels.append(y.numpy())
        probabilities.append(namespace["mdaf"](features)["probability"].numpy().reshape(-1))
    best = exact_auc(np.concatenate(labels), np.concatenate(probabilities))
    assert best == pytest.approx(max(aucs), abs=6e-5)
    versions = list((tmp_path / "saved_models" / "mdaf").iterdir())
    assert len(versions) == 1 and (versions[0] / "saved_model.pb").is_file()
