"""The serving benchmark's arguments and report header."""

import pytest

from benchmarks import serving


def _result(*threads):
    return {"size": "default", "length": 50, "export_s": 2.0,
            "load_average_start": [0.1], "load_average_end": [0.2],
            "processes": [{"intra_op_threads": t, "load_s": 1.0,
                           "rows": [{"batch": 1, "calls": 3, "p50_ms": 3.0 + t, "p99_ms": 4.0,
                                     "examples_per_s": 333.0}]} for t in threads]}


def test_report_names_each_intra_op_thread_setting_and_marks_the_latency_one():
    text = serving.markdown(_result(0, 1))
    assert ("1.0 s (float32, intra-op threads: TensorFlow's default), "
            "1.0 s (float32, intra-op threads: 1)") in text
    lines = [line for line in text.splitlines() if line.startswith("| SavedModel")]
    assert len(lines) == 2
    assert "intra-op threads: TensorFlow's default | 1 | 3 | 3.00 |" in lines[0]
    assert "intra-op threads: 1 | 1 | 3 | 4.00 (target < 5 ms) |" in lines[1]
    # without a one-thread process the first one carries the target
    assert "3.00 (target < 5 ms)" in serving.markdown(_result(0))


def test_the_latency_target_is_read_from_the_float32_export():
    # A bfloat16 export measured first (and faster here) must not carry the target.
    result = _result(1, 1)
    result["processes"][0]["serving_precision"] = "mixed_bfloat16"
    result["processes"][0]["rows"][0]["p50_ms"] = 2.5
    assert serving.latency_process(result) is result["processes"][1]
    lines = [line for line in serving.markdown(result).splitlines()
             if line.startswith("| SavedModel")]
    assert "mixed_bfloat16 graph" in lines[0] and "target" not in lines[0]
    assert "float32 graph" in lines[1] and "4.00 (target < 5 ms)" in lines[1]


def test_negative_intra_op_threads_are_refused(capsys):
    with pytest.raises(SystemExit) as err:
        serving.main(["--intra-op-threads", "1", "-1"])
    assert err.value.code == 2
    assert "--intra-op-threads must be at least 0" in capsys.readouterr().err
