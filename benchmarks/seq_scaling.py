"""Inference throughput of MDAF and BST as the behaviour sequence grows.

    python benchmarks/seq_scaling.py [--lengths 50 100 200 400 800] [--models mdaf bst]
        [--batch 128] [--repeats 3] [--rounds 3] [--d-model 128] [--vocab 10000 50000 5000]
        [--jit-compile auto] [--output benchmarks/results/seq_scaling.json]

Both models get the same token width ``d_model``: the item embedding is ``d_model - 32``
wide and the category embedding 32, so a history token is ``d_model`` wide, BST's
transformer runs at that width (8 heads) and MDAF's sequence branch (``hidden_dim =
d_model``) needs no input projection. Every (model, length) case runs in its own
subprocess (its memory is its own): the model's inference ``tf.function`` (the one
evaluation uses, with ``jit_compile`` resolved as the training command does) is called once
to trace and compile, then ``--repeats`` times on a batch of in-memory random ids. Cost =
seconds per example (the median call's time / batch); each model's cost is also given
relative to its own cost at the shortest length, and the forward FLOPs per example counted
from the built model's graph (``benchmarks/flops.py``, after the timed calls) with the GFLOP/s
they imply. At each length the
models run ``--rounds`` times in alternating order (MDAF, BST, BST, MDAF, ...), each round in
fresh subprocesses, and a case's time is the median of its rounds' medians: the VM's speed
drifts by about 10% over minutes, and interleaving puts both models of a ratio under the same
drift. ``--batch`` is
kept small by default because BST's attention scores take ``batch x 8 x (L+1)^2`` floats
(5 GB at 256 x 801).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import common, flops  # noqa: E402

OUTPUT = common.RESULTS_DIR / "seq_scaling.json"
CATE_DIM = 32


def case_config(length: int, d_model: int, vocab):
    return common.model_config(
        length, vocab, hidden_dim=d_model,
        embedding_dims={"item": d_model - CATE_DIM, "cate": CATE_DIM},
    )


def run_case(model_name: str, length: int, args) -> dict:
    """Time one case in this process (the child)."""
    import keras

    from mdaf_tf import models
    from mdaf_tf.evaluation import predictions
    from mdaf_tf.training import runner

    config = case_config(length, args.d_model, tuple(args.vocab))
    jit = runner.resolve_jit_compile(args.jit_compile, config)
    keras.utils.set_random_seed(0)
    model = models.build_model(model_name, config)
    predict = predictions.make_predict_fn(model, jit)
    features = common.random_features(args.batch, length, tuple(args.vocab))

    def call():
        probability, _ = predict(features)
        probability.numpy()

    start = time.perf_counter()
    call()
    first_s = time.perf_counter() - start
    times = common.time_calls(call, args.repeats)
    row = {
        "model": model_name,
        "length": length,
        "batch": args.batch,
        "jit_compile": jit,
        "first_call_s": first_s,
        "call_s": times,
        "peak_rss_gib": common.peak_rss_gib(),
    }
    row["forward_mflop_per_example"] = flops.flops_per_example(model)["total"] / 1e6
    row.update(speed(row, statistics.median(times)))
    return row


def speed(row: dict, median_s: float) -> dict:
    """The speed fields of ``row`` (its batch and FLOP count) for a median call of median_s."""
    fields = {
        "ms_per_batch": 1000 * median_s,
        "examples_per_s": row["batch"] / median_s,
        "us_per_example": 1e6 * median_s / row["batch"],
    }
    if "forward_mflop_per_example" in row:
        mflop = row["forward_mflop_per_example"]
        fields["achieved_gflops"] = mflop * fields["examples_per_s"] / 1e3
    return fields


def merge_rounds(rounds: list[dict]) -> dict:
    """One row per case from its rounds: the median of the rounds' median call times."""
    timed = [r for r in rounds if "ms_per_batch" in r]
    if not timed:
        return rounds[-1]
    row = dict(timed[0])
    row.update(
        rounds_ms=[r["ms_per_batch"] for r in timed],
        call_s=[t for r in timed for t in r["call_s"]],
        first_call_s=min(r["first_call_s"] for r in timed),
        peak_rss_gib=max(r["peak_rss_gib"] for r in timed),
    )
    row.update(speed(row, statistics.median(r["ms_per_batch"] for r in timed) / 1000))
    if len(timed) < len(rounds):
        row["note"] = f"{len(rounds) - len(timed)} of {len(rounds)} rounds failed"
    return row


def summarize(rows: list[dict]) -> dict:
    """Cost relative to each model's shortest length, and the MDAF/BST throughput ratios."""
    timed = [r for r in rows if "us_per_example" in r]
    summary = {}
    for r in timed:
        own = [x for x in timed if x["model"] == r["model"]]
        base = min(own, key=lambda x: x["length"])
        r["cost_vs_shortest"] = r["us_per_example"] / base["us_per_example"]
        r["shortest_length"] = base["length"]
    by = {(r["model"], r["length"]): r for r in timed}
    for (model, length), r in by.items():
        if model == "mdaf" and ("bst", length) in by:
            r["mdaf_over_bst_throughput"] = r["examples_per_s"] / by[("bst", length)][
                "examples_per_s"]
            summary[f"mdaf_over_bst_at_{length}"] = r["mdaf_over_bst_throughput"]
    for model in sorted({r["model"] for r in timed}):
        own = sorted((r for r in timed if r["model"] == model), key=lambda x: x["length"])
        summary[f"{model}_cost_{own[-1]['length']}_vs_{own[0]['length']}"] = own[-1][
            "cost_vs_shortest"]
    return summary


def table_rows(rows: list[dict]) -> list[list]:
    out = []
    for r in rows:
        if "us_per_example" not in r:
            out.append([r["model"], r["length"], "-", "-", "-", "-", "-", "-", "-",
                        r.get("note", "")])
            continue
        ratio = r.get("mdaf_over_bst_throughput")
        out.append([
            r["model"], r["length"], f"{r['ms_per_batch']:.0f}", f"{r['examples_per_s']:.0f}",
            f"{r['us_per_example']:.0f}", f"{r['cost_vs_shortest']:.2f}",
            f"{r.get('forward_mflop_per_example', 0):.0f}", f"{r.get('achieved_gflops', 0):.1f}",
            f"{r['peak_rss_gib']:.2f}", f"{ratio:.2f}" if ratio else "",
        ])
    return out


HEADER = ["model", "L", "ms/batch", "examples/s", "us/example", "cost vs own shortest L",
          "MFLOP/example", "GFLOP/s", "peak RSS GiB", "MDAF/BST throughput"]


def markdown(result: dict) -> str:
    lines = [common.markdown_table(HEADER, table_rows(result["rows"])), ""]
    for key, value in result["summary"].items():
        lines.append(f"- {key}: {value:.2f}")
    return "\n".join(lines)


def run_subprocess(model: str, length: int, passthrough: list[str], batch: int) -> dict:
    cmd = [sys.executable, __file__, "--case", model, str(length), *passthrough]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode == 0:
        return json.loads(done.stdout.strip().splitlines()[-1])
    tail = (done.stderr.strip().splitlines() or ["?"])[-1][:200]
    return {"model": model, "length": length, "batch": batch,
            "note": f"failed (exit {done.returncode}): {tail}"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[50, 100, 200, 400, 800])
    parser.add_argument("--models", nargs="+", default=["mdaf", "bst"])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds per length (default 3)")
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--vocab", type=int, nargs=3, default=list(common.DEFAULT_VOCAB),
                        metavar=("USERS", "ITEMS", "CATES"))
    parser.add_argument("--jit-compile", default="auto", choices=["auto", "true", "false"])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--case", nargs=2, metavar=("MODEL", "LENGTH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.lengths + [args.batch, args.repeats, args.rounds]) < 1 or args.d_model <= CATE_DIM:
        parser.exit(2, f"error: lengths, batch, repeats and rounds must be >= 1 and --d-model > "
                       f"{CATE_DIM}\n")
    if args.case:
        print(json.dumps(run_case(args.case[0], int(args.case[1]), args)))
        return 0

    load_start = common.load_average()
    rows = []
    passthrough = ["--batch", str(args.batch), "--repeats", str(args.repeats),
                   "--d-model", str(args.d_model), "--jit-compile", args.jit_compile,
                   "--vocab", *map(str, args.vocab)]
    for length in sorted(args.lengths):
        by_model = {model: [] for model in args.models}
        for round_index in range(args.rounds):
            order = args.models if round_index % 2 == 0 else args.models[::-1]
            for model in order:
                by_model[model].append(run_subprocess(model, length, passthrough, args.batch))
        for model in args.models:
            row = merge_rounds(by_model[model])
            rows.append(row)
            print(f"{model:<6}L={length:<5}" + (
                f"{row['examples_per_s']:.0f} examples/s (rounds: "
                + ", ".join(f"{ms:.0f}" for ms in row["rounds_ms"]) + " ms)"
                if "examples_per_s" in row else row["note"]), flush=True)
    summary = summarize(rows)
    result = {
        "benchmark": "seq_scaling",
        "d_model": args.d_model,
        "batch": args.batch,
        "repeats": args.repeats,
        "rounds": args.rounds,
        "vocab": args.vocab,
        "rows": rows,
        "summary": summary,
        "machine": common.machine(),
        "load_average_start": load_start,
        "load_average_end": common.load_average(),
    }
    print()
    print(common.text_table(HEADER, table_rows(rows)))
    for key, value in summary.items():
        print(f"{key}: {value:.2f}")
    common.write_json(args.output, result)
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
