"""Issue 20's last acceptance item on B and C: `mdaf` against its branches and `mdaf_match`.

    python studies/mdaf_branches_B_C/summarise.py > studies/mdaf_branches_B_C/results/summary.txt

Reads this study's ``results/*/runs.csv`` (mdaf, mdaf_seq, dcnv3) and those of
``studies/match_three_settings/results/`` (mdaf_match, dcnv3, din, dnn), pairs the test AUCs by
seed, and prints mean +- std and paired t-tests (mdaf_tf.comparison.stats, the test compare's
tables use).
"""

import csv
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mdaf_tf.comparison.stats import paired_t_test  # noqa: E402

STUDIES = Path(__file__).resolve().parents[1]
SETTINGS = {"B": "B_long_logs", "C": "C_many_items"}
SEEDS = ("42", "123", "7")


def test_aucs(path: Path, model: str) -> list[float]:
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["model"] == model]
    by_seed = {r["seed"]: float(r["test_auc"]) for r in rows}
    return [by_seed[s] for s in SEEDS]


def describe(name: str, aucs: list[float]) -> str:
    return f"{name} {statistics.mean(aucs):.4f} +- {statistics.stdev(aucs):.4f}"


def main() -> None:
    for key, folder in SETTINGS.items():
        new = STUDIES / "mdaf_branches_B_C" / "results" / folder / "runs.csv"
        old = STUDIES / "match_three_settings" / "results" / folder / "runs.csv"
        mdaf, seq, dcn = (test_aucs(new, m) for m in ("mdaf", "mdaf_seq", "dcnv3"))
        match, dcn_before = test_aucs(old, "mdaf_match"), test_aucs(old, "dcnv3")
        din, dnn = test_aucs(old, "din"), test_aucs(old, "dnn")
        rerun_gap = max(abs(a - b) for a, b in zip(dcn, dcn_before, strict=True))
        print(f"{key} ({folder}), test AUC over seeds {', '.join(SEEDS)}:")
        named = (("mdaf", mdaf), ("mdaf_seq", seq), ("dcnv3", dcn), ("mdaf_match", match))
        print("  " + "; ".join(describe(n, a) for n, a in named))
        print(f"  dcnv3 here against match_three_settings': largest per-seed gap {rerun_gap:.1e}")
        pairs = (("mdaf - dcnv3", mdaf, dcn), ("mdaf - mdaf_seq", mdaf, seq),
                 ("mdaf - mdaf_match", mdaf, match), ("mdaf_seq - mdaf_match", seq, match),
                 ("mdaf - din", mdaf, din), ("mdaf - dnn", mdaf, dnn))
        for label, a, b in pairs:
            t = paired_t_test(a, b)
            print(f"  {label}: {1e4 * t['mean_diff']:+.1f} bp, paired t p {t['p']:.2g}")


if __name__ == "__main__":
    main()
