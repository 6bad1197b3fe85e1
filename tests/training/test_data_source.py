"""``--data FILE`` builds the dataset with a pipeline command in a child process: its error
reaches the user as one line, with no traceback."""

import pytest

from mdaf_tf.cli_errors import DataError
from mdaf_tf.data import source as data_source


def test_a_failing_pipeline_is_one_line_naming_its_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MDAF_TF_DATA_CACHE", str(tmp_path / "cache"))
    raw = tmp_path / "UserBehavior.csv"
    raw.write_bytes(b"1,2,3,pv,1511544070\n\xff\xfe not text\n")  # no row survives
    with pytest.raises(DataError) as failed:
        data_source.resolve(str(raw), log=lambda line: None)
    message = str(failed.value)
    assert message.startswith("python -m pipelines.taobao failed: error: no training rows")
    assert "\n" not in message and "Traceback" not in capsys.readouterr().err
