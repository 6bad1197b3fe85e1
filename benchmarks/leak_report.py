"""The leak report of the Taobao pipeline on the shared real rows, written to a results file.

    python benchmarks/leak_report.py [--shared ../shared/data/taobao_user_behavior]

Builds each shared file with ``python -m pipelines.taobao`` at its default arguments, and the
synthetic default with ``python -m pipelines.synthetic`` (real labels: its report is a
baseline, not a leak check), each into a temporary directory, and writes the ``leak_report``
and split sizes of each ``metadata.json`` to ``benchmarks/results/leak_report.json``, the file
README quotes. Files that are
absent are reported as such. Not a speed benchmark: a check of the sampling scheme on real
data (``pipelines/leak_report.py`` says what the rules are).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, RESULTS_DIR, write_json  # noqa: E402

FILES = ("users_43_complete_histories.csv", "timeslice_110k_rows.csv")
DEFAULT_SHARED = REPO.parent / "shared" / "data" / "taobao_user_behavior"


def report_for(path: Path | None) -> dict:
    """Build ``path`` with the Taobao pipeline's defaults (the synthetic default when None);
    its leak report and split sizes."""
    from pipelines import synthetic, taobao

    with tempfile.TemporaryDirectory() as tmp:
        out = ["--output", str(Path(tmp) / "ds")]
        if path is None:
            meta = synthetic.build(synthetic.parse_args(out))
        else:
            meta = taobao.build(taobao.parse_args(["--input", str(path), *out]))
    return {"leak_report": meta["leak_report"],
            "splits": {s: {"examples": v["examples"], "positives": v["positives"]}
                       for s, v in meta["splits"].items()},
            "split_boundaries": meta["split_boundaries"],
            "source_sha256": meta["source"]["sha256"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED,
                        help="folder of the shared Taobao samples (default %(default)s)")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "leak_report.json")
    args = parser.parse_args(argv)
    result = {"command": "python benchmarks/leak_report.py", "files": {}}
    for name in FILES:
        path = args.shared / name
        result["files"][name] = report_for(path) if path.is_file() else {"absent": str(path)}
        entry = result["files"][name]
        if "leak_report" in entry:
            rules = {s: {r: round(v, 3) for r, v in entry["leak_report"][s].items()}
                     for s in ("val", "test")}
            print(f"{name}: {rules}; flagged {entry['leak_report']['flagged']}")
        else:
            print(f"{name}: absent ({path})")
    result["files"]["synthetic default"] = report_for(None)
    print(f"synthetic default: {result['files']['synthetic default']['leak_report']}")
    write_json(args.output, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
