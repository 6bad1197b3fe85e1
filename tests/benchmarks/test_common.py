"""Machine facts every benchmark records: the commit its figures were measured at."""

from __future__ import annotations

import subprocess

from benchmarks import common


def _git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                          text=True).stdout.strip()


def test_the_commit_is_head_and_says_when_tracked_files_changed(tmp_path, monkeypatch):
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("one\n")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    monkeypatch.setattr(common, "REPO", tmp_path)
    head = _git(tmp_path, "rev-parse", "--short", "HEAD")
    (tmp_path / "untracked.txt").write_text("not part of the checkout\n")
    assert common.git_commit() == head == common.machine()["commit"]
    (tmp_path / "a.txt").write_text("two\n")
    assert common.git_commit() == f"{head}+changes"


def test_outside_a_repository_the_commit_is_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "REPO", tmp_path)
    assert common.git_commit() == "?"
