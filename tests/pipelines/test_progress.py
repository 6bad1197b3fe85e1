"""Progress lines on stderr while a pipeline command runs, and --quiet."""

import json
import re
import time
from pathlib import Path

import pytest
from pipeline_helpers import WINDOW_START, write_rows

from pipelines import impressions, progress, synthetic, taobao, taobao_ad

FILES = Path(__file__).parent / "taobao_ad_files"
LINE = r"{name}: {phase}: ([\d,]+) {unit} \([\d,]+ {unit}/s\), \d+ (min \d\d )?s elapsed"


def _taobao(tmp_path):
    rows = [[user, 1000 + (user * k) % 17, 500 + k % 3, "pv", WINDOW_START + 3600 + 60 * k]
            for user in range(1, 7) for k in range(30)]
    return (["--input", write_rows(tmp_path / "UserBehavior.csv", rows), "--neg-ratio", 0],
            "UserBehavior.csv", len(rows))


def _impressions(tmp_path):
    rows = [[f"u{user}", f"i{(user * k) % 11}", f"c{k % 3}", 1_600_000_000 + k, (user + k) % 2]
            for user in range(6) for k in range(40)]
    header = ["user_id", "item_id", "cate_id", "timestamp", "label"]
    return (["--input", write_rows(tmp_path / "log.csv", rows, header=header)], "log.csv",
            len(rows))


def _taobao_ad(tmp_path):
    rows = (FILES / "raw_sample.csv").read_text().splitlines()[1:]
    return (["--raw-sample", FILES / "raw_sample.csv", "--ad-feature", FILES / "ad_feature.csv",
             "--user-profile", FILES / "user_profile.csv"], "raw_sample.csv", len(rows))


def _synthetic(tmp_path):
    return (["--users", 6, "--items", 30, "--categories", 5, "--impressions-per-user", 40],
            synthetic.CSV_NAME, 6 * 40)


PIPELINES = {"taobao": (taobao, _taobao), "impressions": (impressions, _impressions),
             "taobao_ad": (taobao_ad, _taobao_ad), "synthetic": (synthetic, _synthetic)}


def _counts(err: str, name: str, phase: str, unit: str) -> list[int]:
    """The counts of the progress lines of ``phase``, in order."""
    pattern = re.compile(LINE.format(name=re.escape(name), phase=re.escape(phase), unit=unit))
    return [int(m.group(1).replace(",", "")) for m in map(pattern.fullmatch, err.splitlines())
            if m]


@pytest.mark.parametrize("name", PIPELINES)
def test_progress_lines_count_rows_read_and_examples_written(tmp_path, cli, monkeypatch, name):
    monkeypatch.setattr(progress, "REPORT_INTERVAL_S", 0.0)  # a line whenever one may come
    module, setup = PIPELINES[name]
    args, source, rows = setup(tmp_path)
    code, err = cli(module, *args, "--output", tmp_path / "ds")
    assert code == 0, err
    read = _counts(err, name, f"reading {source}", "rows")
    assert read and read == sorted(read) and read[-1] == rows, err
    meta = json.loads((tmp_path / "ds" / "metadata.json").read_text())
    written = _counts(err, name, "writing examples", "examples")
    assert written[-1] == sum(split["examples"] for split in meta["splits"].values()), err
    assert err.splitlines()[-1].startswith(f"{name}") and "read" in err.splitlines()[-1]


@pytest.mark.parametrize("name", PIPELINES)
def test_quiet_prints_nothing_but_errors(tmp_path, cli, monkeypatch, name):
    monkeypatch.setattr(progress, "REPORT_INTERVAL_S", 0.0)
    module, setup = PIPELINES[name]
    args, _, _ = setup(tmp_path)
    code, err = cli(module, *args, "--output", tmp_path / "ds", "--quiet")
    assert code == 0 and err == ""
    assert (tmp_path / "ds" / "metadata.json").is_file()
    code, err = cli(module, *args, "--output", tmp_path / "ds", "--quiet", "--max-seq-len", 0)
    assert code == 2 and err == "error: --max-seq-len must be at least 1\n"


def test_quiet_still_prints_a_bad_row_error_in_one_line(tmp_path, cli):
    src = tmp_path / "log.csv"
    src.write_bytes(b"1,2,3,pv,%d\n1,\xff,3,pv,%d\n" % (WINDOW_START, WINDOW_START))
    code, err = cli(taobao, "--input", src, "--output", tmp_path / "ds", "--quiet", "--strict")
    assert code == 2 and err.startswith(f"error: {src}:2: malformed row (invalid_utf8")
    assert err.count("\n") == 1


def test_a_phase_without_a_count_still_gets_a_line_each_interval(capsys, monkeypatch):
    monkeypatch.setattr(progress, "REPORT_INTERVAL_S", 0.05)
    with progress.report("demo"):
        progress.phase("building the vocabularies")
        time.sleep(0.4)
    lines = capsys.readouterr().err.splitlines()
    assert 3 <= len(lines) <= 9, lines  # about one per 0.05 s, not a flood
    assert set(lines) == {"demo: building the vocabularies, 0 s elapsed"}
    time.sleep(0.1)
    assert capsys.readouterr().err == ""  # the reporter stopped with its block
    with progress.report("demo", quiet=True):
        progress.phase("reading", "rows")
        progress.add(5)
        time.sleep(0.1)
    assert capsys.readouterr().err == ""


def test_durations_read_in_seconds_then_minutes():
    assert [progress.duration(s) for s in (0.4, 59.9, 60, 661.2)] == [
        "0 s", "59 s", "1 min 00 s", "11 min 01 s"]
