import json

from mdaf_tf import config as config_lib
from mdaf_tf.comparison import runs
from mdaf_tf.config import TrainConfig
from mdaf_tf.models import make_config

FIGURES = {"test_auc": 0.7, "test_gauc": 0.6, "test_log_loss": 0.5}


def write_result(directory, request):
    directory.mkdir(parents=True)
    (directory / runs.RESULT_FILE).write_text(json.dumps({"request": request, **FIGURES}))


def test_a_run_recorded_before_a_config_field_existed_is_reused_at_its_default(tmp_path):
    wanted = runs.request(make_config("mdaf", {"vocab_sizes": {"item": 9}}),
                          TrainConfig(epochs=3), "sha")
    old = json.loads(json.dumps(wanted))
    del old["model"]["target_match"]  # a field added after this run was recorded
    write_result(tmp_path / "old", old)
    assert runs.finished_result(tmp_path / "old", wanted)["test_auc"] == 0.7
    # ...but not for a request that sets the new field away from its default
    changed = runs.request(make_config("mdaf", {"vocab_sizes": {"item": 9}, "target_match": True}),
                           TrainConfig(epochs=3), "sha")
    assert runs.finished_result(tmp_path / "old", changed) is None


def test_a_different_or_unreadable_request_is_not_reused(tmp_path):
    wanted = runs.request(make_config("mdaf"), TrainConfig(epochs=3), "sha")
    other = runs.request(make_config("mdaf"), TrainConfig(epochs=4), "sha")
    write_result(tmp_path / "other", other)
    assert runs.finished_result(tmp_path / "other", wanted) is None
    unknown = {**wanted, "model": {**config_lib.to_dict(make_config("mdaf")), "no_such_field": 1}}
    write_result(tmp_path / "unknown", unknown)
    assert runs.finished_result(tmp_path / "unknown", wanted) is None
    write_result(tmp_path / "other_data", {**wanted, "data_metadata_sha256": "other"})
    assert runs.finished_result(tmp_path / "other_data", wanted) is None
