"""The serving benchmark's arguments and report header."""

import pytest

from benchmarks import serving


def _result(threads):
    return {"size": "default", "length": 50, "load_s": 1.0, "export_s": 2.0,
            "intra_op_threads": threads, "load_average_start": [0.1], "load_average_end": [0.2],
            "rows": [{"batch": 1, "calls": 3, "p50_ms": 3.0, "p99_ms": 4.0,
                      "examples_per_s": 333.0}]}


def test_report_names_the_intra_op_thread_setting_of_the_loading_process():
    assert "intra-op threads in that process: 1;" in serving.markdown(_result(1))
    assert "intra-op threads in that process: TensorFlow's default;" in serving.markdown(
        _result(0))


def test_negative_intra_op_threads_are_refused(capsys):
    with pytest.raises(SystemExit) as err:
        serving.main(["--intra-op-threads", "-1"])
    assert err.value.code == 2
    assert "--intra-op-threads must be at least 0" in capsys.readouterr().err
