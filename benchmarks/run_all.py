"""Run every benchmark and write ``benchmarks/RESULTS.md`` with the machine description.

    python benchmarks/run_all.py [--quick] [--only scan pipeline train seq serving]
                                 [--results benchmarks/RESULTS.md]

Runs, one after another, each in its own process (commands are listed in RESULTS.md):
``scan.py`` (batch 2048, d_inner 256, d_state 16; all implementations at L=50, the fast scan
at L=200), ``pipeline.py`` (the shared 110k-row slice and a generated 1M-row file),
``train_throughput.py``, ``seq_scaling.py`` and ``serving.py`` at their defaults. Each
writes its JSON under ``benchmarks/results/`` and its output to ``results/logs/NAME.log``;
RESULTS.md gets the machine (CPU model, cores, memory, TensorFlow version, load average at
the start and end of the whole run and of each benchmark), every table and the targets of
the performance issue as ratios. ``--quick`` runs tiny sizes (a smoke test of the suite,
minutes; its figures mean nothing) and writes ``results/quick/`` and ``RESULTS.quick.md``.
The FFN sub-layer's op-by-op timing, which earlier runs included, is a study now
(``studies/ffn_parts/``) and is not run here.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import common, seq_scaling, serving, train_throughput  # noqa: E402

HERE = Path(__file__).resolve().parent
NAMES = ("scan", "pipeline", "train", "seq", "serving")


def commands(results: Path, quick: bool) -> dict[str, list[list[str]]]:
    """Each benchmark's command lines (paths relative to the repository root)."""
    py = "python"
    r = results.relative_to(common.REPO)
    if quick:
        return {
            "scan": [[py, "benchmarks/scan.py", "--lengths", "8", "--batch", "16",
                      "--d-inner", "8", "--d-state", "4", "--repeats", "1",
                      "--output", f"{r}/scan.json"]],
            "pipeline": [[py, "-m", "benchmarks.pipeline", "--rows", "2000",
                          "--json", f"{r}/pipeline.json"]],
            "train": [[py, "benchmarks/train_throughput.py", "--batch", "32", "--length", "8",
                       "--steps", "2", "--matmul-size", "256", "--matmul-repeats", "3",
                       "--vocab", "100", "200", "20", "--output", f"{r}/train_throughput.json"]],
            "seq": [[py, "benchmarks/seq_scaling.py", "--lengths", "8", "16", "--batch", "8",
                     "--repeats", "1", "--d-model", "48", "--vocab", "100", "200", "20",
                     "--output", f"{r}/seq_scaling.json"]],
            "serving": [[py, "benchmarks/serving.py", "--size", "tiny", "--length", "8",
                         "--batches", "1", "32", "--calls", "5", "--large-calls", "2",
                         "--vocab", "100", "200", "20", "--output", f"{r}/serving.json"]],
        }
    return {
        "scan": [
            [py, "benchmarks/scan.py", "--lengths", "50", "--repeats", "3",
             "--output", f"{r}/scan_run_all.json"],
            [py, "benchmarks/scan.py", "--lengths", "200", "--impls", "fast", "--repeats", "1",
             "--append", "--output", f"{r}/scan_run_all.json"],
        ],
        "pipeline": [[py, "-m", "benchmarks.pipeline", "--rows", "1000000",
                      "--json", f"{r}/pipeline_run_all.json"]],
        "train": [[py, "benchmarks/train_throughput.py",
                   "--output", f"{r}/train_throughput.json"]],
        "seq": [[py, "benchmarks/seq_scaling.py", "--output", f"{r}/seq_scaling.json"]],
        "serving": [[py, "benchmarks/serving.py", "--output", f"{r}/serving.json"]],
    }


def json_path(cmd: list[str]) -> Path:
    flag = "--json" if "--json" in cmd else "--output"
    return common.REPO / cmd[cmd.index(flag) + 1]


def run_benchmark(name: str, cmds: list[list[str]], logs: Path) -> dict:
    logs.mkdir(parents=True, exist_ok=True)
    record = {"name": name, "commands": [" ".join(c) for c in cmds],
              "load_average_start": common.load_average()}
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(common.REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(logs / f"{name}.log", "w") as log:
        for cmd in cmds:
            log.write(f"$ {' '.join(cmd)}\n")
            log.flush()
            done = subprocess.run([sys.executable, *cmd[1:]], stdout=log,
                                  stderr=subprocess.STDOUT, cwd=common.REPO, env=env)
            if done.returncode != 0:
                record["error"] = f"exit {done.returncode}: see {logs.name}/{name}.log"
                break
    record["seconds"] = time.perf_counter() - start
    record["load_average_end"] = common.load_average()
    print(f"{name}: {record['seconds']:.0f} s" + (f" -- {record['error']}"
                                                   if "error" in record else ""), flush=True)
    return record


# ----------------------------------------------------------------------------------------
# Markdown for the benchmarks whose modules do not render themselves.


def scan_markdown(result: dict) -> str:
    rows = []
    for r in result["rows"]:
        if "ms" not in r:
            rows.append([r["impl"], r["mode"], r["length"], "-", "-", "-", "-",
                         r.get("note", "")])
            continue
        ratio = r.get("speedup_vs_reference")
        rows.append([r["impl"], r["mode"], r["length"], f"{r['ms']:.0f}",
                     f"{r['first_call_s']:.1f}", f"{r['peak_rss_growth_gb']:.2f}",
                     f"{ratio:.1f}" if ratio else "-", ""])
    shape = result["rows"][0] if result["rows"] else {}
    head = (f"batch {shape.get('batch')}, d_inner {shape.get('d_inner')}, "
            f"d_state {shape.get('d_state')}; memory: {result.get('memory_method', '')}")
    return head + "\n\n" + common.markdown_table(
        ["impl", "mode", "L", "ms/batch", "first call s", "peak GB", "x reference", "note"],
        rows)


def pipeline_markdown(result: dict) -> str:
    rows = []
    for name, r in result.items():
        if isinstance(r, dict) and "input_rows" in r:
            rows.append([name, r["input_rows"], r["examples"], r["seconds"],
                         r["input_rows_per_s"], r["examples_per_s"], r["cpu_seconds"],
                         r["input_rows_per_cpu_s"], r["load_average"]])
    text = common.markdown_table(
        ["input", "rows", "examples", "seconds", "rows/s", "examples/s", "cpu s",
         "rows/cpu-s", "load"], rows)
    w = result.get("writers")
    if w:
        text += (f"\n\nWriters on {w['examples']} examples: pipeline encoder + zlib "
                 f"{w['numpy_encoder_zlib_per_s']}/s, tf.train.Example + TFRecordWriter "
                 f"{w['tf_example_writer_per_s']}/s.")
    return text


RENDER = {
    "scan": scan_markdown,
    "pipeline": pipeline_markdown,
    "train": train_throughput.markdown,
    "seq": seq_scaling.markdown,
    "serving": serving.markdown,
}
TITLES = {
    "scan": "Selective scan (`benchmarks/scan.py`)",
    "pipeline": "Data pipeline (`benchmarks/pipeline.py`)",
    "train": "MDAF training throughput (`benchmarks/train_throughput.py`)",
    "seq": "Sequence-length scaling, inference (`benchmarks/seq_scaling.py`)",
    "serving": "Serving (`benchmarks/serving.py`)",
}


def targets(results: dict) -> list[list[str]]:
    """The issue's targets as (target, measured, met) rows from whatever results exist."""
    rows = []

    def add(target, value, text, met):
        rows.append([target, text if value is not None else "not measured",
                     ("yes" if met else "**no**") if value is not None else "-"])

    scan = results.get("scan")
    if scan:
        fast = next((r for r in scan["rows"] if r["impl"] == "fast" and r["mode"] == "fwd+bwd"
                     and r["length"] == 50 and "speedup_vs_reference" in r), None)
        value = fast["speedup_vs_reference"] if fast else None
        add("fast scan fwd+bwd >= 10x reference (L=50)", value,
            f"{value:.1f}x" if value else "", value is not None and value >= 10)
    train = results.get("train")
    if train:
        f = train["fraction_of_matmul"]
        add("MDAF training >= 40% of matmul GFLOP/s", f,
            f"{100 * f:.1f}% ({train['achieved_gflops']:.1f} of {train['matmul_gflops']:.1f})",
            f >= 0.4)
        rss = train["peak_rss_gib"]
        add(f"peak RSS < 8 GiB at batch {train['batch']}", rss, f"{rss:.2f} GiB", rss < 8)
        ratio = train.get("fit_over_custom_loop")
        add("model.fit examples/s within 5% of the custom loop's", ratio,
            f"{ratio:.3f}x" if ratio else "", ratio is not None and ratio >= 0.95)
        speedup = train.get("speedup_over_float32", {}).get("mixed_bfloat16")
        add("MDAF training under mixed_bfloat16 >= 1.6x float32 (same run)", speedup,
            f"{speedup:.2f}x" if speedup else "", speedup is not None and speedup >= 1.6)
    seq = results.get("seq")
    if seq:
        s = seq["summary"]
        cost = next((v for k, v in s.items() if k.startswith("mdaf_cost_")), None)
        key = next((k for k in s if k.startswith("mdaf_cost_")), "")
        add("MDAF cost at L=800 <= 20x its L=50 cost", cost,
            f"{cost:.1f}x ({key})" if cost else "", cost is not None and cost <= 20)
        ratio = s.get("mdaf_over_bst_at_800")
        add("MDAF inference >= 3x BST's at L=800", ratio,
            f"{ratio:.2f}x" if ratio else "", ratio is not None and ratio >= 3)
    serving_result = results.get("serving")
    if serving_result:
        process = serving.latency_process(serving_result)

        def batch_one(p):
            return next((r["p50_ms"] for r in p["rows"] if r["batch"] == 1), None) if p else None

        value = batch_one(process)
        text = ""
        if value is not None:
            text = (f"{value:.2f} ms (intra-op threads: "
                    f"{serving.threads_label(process['intra_op_threads'])})")
            others = [f"{v:.2f} ms with {serving.threads_label(p['intra_op_threads'])}"
                      for p in serving_result["processes"] if p is not process
                      and (v := batch_one(p)) is not None]
            text += "; " + ", ".join(others) if others else ""
        add("serving batch-1 p50 < 5 ms", value, text, value is not None and value < 5)
    return rows


def write_results(path: Path, machine: dict, records: list[dict], results: dict,
                  quick: bool, started: str) -> None:
    lines = ["# Benchmark results", ""]
    if quick:
        lines += ["**Quick run (tiny sizes): a smoke test of the suite; the figures mean "
                  "nothing.**", ""]
    lines += [
        f"Produced by `python benchmarks/run_all.py{' --quick' if quick else ''}` "
        f"(started {started} UTC, {machine['total_seconds'] / 60:.1f} min).", "",
        "## Machine", "",
        common.markdown_table(["", ""], [
            ["CPU", machine["cpu"]], ["cores", machine["cores"]],
            ["memory", f"{machine['memory_gib']} GiB"], ["platform", machine["platform"]],
            ["Python", machine["python"]], ["TensorFlow", machine["tensorflow"]],
            ["Keras", machine["keras"]],
            ["load average (1/5/15 min) at start", machine["load_average_start"]],
            ["load average at end", machine["load_average_end"]],
            ["git commit", machine["commit"]],
        ]), "",
        "The load average counts every process on the machine; figures measured under load "
        "from other jobs are lower than the machine can do. Ratios measured in one process "
        "(training vs matmul) are less affected than absolute figures.", "",
        "## Targets (performance issue)", "",
        common.markdown_table(["target", "measured", "met"], targets(results)), "",
    ]
    for record in records:
        name = record["name"]
        lines += [f"## {TITLES[name]}", ""]
        lines += [f"`{c}`" + "  " for c in record["commands"]]
        lines += ["", f"{record['seconds']:.0f} s; load average {record['load_average_start']}"
                      f" -> {record['load_average_end']}", ""]
        if "error" in record:
            lines += [f"**Failed**: {record['error']}", ""]
        if name in results:
            lines += [RENDER[name](results[name]), ""]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text("\n".join(lines))
    tmp.replace(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--only", nargs="+", choices=NAMES, default=list(NAMES))
    parser.add_argument("--results", type=Path, default=None,
                        help="markdown output (default benchmarks/RESULTS.md, "
                             "RESULTS.quick.md with --quick)")
    args = parser.parse_args(argv)
    results_dir = common.RESULTS_DIR / "quick" if args.quick else common.RESULTS_DIR
    out = args.results or HERE / ("RESULTS.quick.md" if args.quick else "RESULTS.md")

    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    machine = common.machine()
    machine["load_average_start"] = machine.pop("load_average")
    machine["tensorflow"] = importlib.metadata.version("tensorflow")
    machine["keras"] = importlib.metadata.version("keras")
    print(f"{machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, "
          f"load {machine['load_average_start']}", flush=True)
    start = time.perf_counter()
    cmds = commands(results_dir, args.quick)
    records, results = [], {}
    for name in args.only:
        record = run_benchmark(name, cmds[name], results_dir / "logs")
        records.append(record)
        path = json_path(cmds[name][-1])
        if "error" not in record and path.exists():
            results[name] = json.loads(path.read_text())
    machine["load_average_end"] = common.load_average()
    machine["total_seconds"] = time.perf_counter() - start
    write_results(out, machine, records, results, args.quick, started)
    print(f"wrote {out}")
    for row in targets(results):
        print(" | ".join(row))
    return 0 if all("error" not in r for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
