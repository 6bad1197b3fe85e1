"""benchmarks/leak_report.py: the results file holds each shared file's leak report."""

from __future__ import annotations

import json

import pytest

from benchmarks import leak_report


def test_results_file_reports_every_shared_file(tmp_path):
    if not all((leak_report.DEFAULT_SHARED / name).is_file() for name in leak_report.FILES):
        pytest.skip(f"shared samples absent: {leak_report.DEFAULT_SHARED}")
    out = tmp_path / "leak.json"
    assert leak_report.main(["--output", str(out)]) == 0
    result = json.loads(out.read_text())
    for name in leak_report.FILES:
        entry = result["files"][name]
        assert entry["leak_report"]["flagged"] == []
        for split in ("val", "test"):
            assert set(entry["leak_report"][split]) == {"item_unknown", "cate_unknown",
                                                         "item_train_count"}
            assert all(0.45 <= v <= 0.55 for v in entry["leak_report"][split].values())
        assert sum(s["examples"] for s in entry["splits"].values()) > 0


def test_absent_files_are_reported_not_fatal(tmp_path):
    out = tmp_path / "leak.json"
    assert leak_report.main(["--shared", str(tmp_path / "none"), "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert all("absent" in result["files"][name] for name in leak_report.FILES)
