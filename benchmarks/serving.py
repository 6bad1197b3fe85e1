"""Serving latency of an exported MDAF SavedModel, loaded in a fresh process.

    python benchmarks/serving.py [--size default|tiny] [--length 50] [--batches 1 32 2048]
        [--calls 200] [--large-calls 10] [--vocab 10000 50000 5000]
        [--intra-op-threads N [N ...]] [--serving-precisions float32 [mixed_bfloat16 ...]]
        [--output benchmarks/results/serving.json]

An MDAF model (untrained weights: latency does not depend on them) at the seed config
(``--size default``) or a small one (``--size tiny``) is exported with
``mdaf_tf.export.export_model`` (raw-id vocabulary lookups in the graph, the portable
"stepwise" scan) into a temporary directory, together with a minimal data directory
(``metadata.json`` + ``vocab/*.txt``) that the export reads. For each ``--intra-op-threads``
setting a fresh Python process that does not import ``mdaf_tf`` loads it with
``tf.saved_model.load`` and calls the ``serving_default`` signature on raw int64 ids: one
warm-up call per batch size, then ``--calls`` timed calls (``--large-calls`` for batches above
32), each wall-clock timed from the call to the outputs as numpy arrays. Reported per setting:
p50 and p99 latency per batch size and examples/s (batch / median latency). For comparison the
same model is then timed in the exporting process through the evaluation predict function on
dense ids (no lookups; the scan and ``jit_compile`` the training command would use), unless
``--no-keras``.

``--serving-precisions`` exports the same weights once per precision
(``export_model(serving_precision=...)``: the graph's per-token layers compute in bfloat16 or
float16, the signature stays raw ids in and float32 out) and times each export the same way.

``--intra-op-threads`` is the loading process's TensorFlow intra-op thread count, TF Serving's
``--tensorflow_intra_op_parallelism``; 0 keeps TensorFlow's own (one per core). The default
measures two deployments: 1, the latency setting (the batch-1 target is read there), and 0,
TensorFlow's default. At batch 1 the graph's ops are small, and handing pieces of them to a
second thread costs more than it saves: on the 2-core machine the same export answered in
3.3-3.4 ms with 1 thread against 4.1-5.4 ms with the default.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import common  # noqa: E402
from mdaf_tf.precision import PRECISIONS  # noqa: E402

OUTPUT = common.RESULTS_DIR / "serving.json"
TINY = dict(hidden_dim=32, embedding_dims={"user": 16, "item": 16, "cate": 16},
            num_mamba_layers=1, d_state=4, gate_hidden=16, output_hidden=(8,))
RAW_BASE = {"user": 10**6, "item": 2 * 10**6, "cate": 3 * 10**6}

# The timing child: plain TensorFlow, no mdaf_tf import (as a serving process would be).
CHILD = r"""
import json, sys, time
import numpy as np
import tensorflow as tf

export, spec = sys.argv[1], json.loads(sys.argv[2])
if spec["intra_op_threads"]:
    tf.config.threading.set_intra_op_parallelism_threads(spec["intra_op_threads"])
start = time.perf_counter()
loaded = tf.saved_model.load(export)
serve = loaded.signatures["serving_default"]
load_s = time.perf_counter() - start
rng = np.random.default_rng(0)
length = spec["length"]

def raw_ids(kind, shape):
    return spec["raw_base"][kind] + rng.integers(0, spec["vocab_lines"][kind], shape)

rows = []
for batch in spec["batches"]:
    hist_len = rng.integers(1, length + 1, batch)
    valid = np.arange(length)[None, :] >= (length - hist_len[:, None])
    inputs = {
        "user_id": raw_ids("user", batch), "item_id": raw_ids("item", batch),
        "cate_id": raw_ids("cate", batch),
        "hist_item_id": np.where(valid, raw_ids("item", (batch, length)), -1),
        "hist_cate_id": np.where(valid, raw_ids("cate", (batch, length)), -1),
        "hist_len": hist_len,
    }
    inputs = {k: tf.constant(v, dtype=tf.int64) for k, v in inputs.items()}

    def call():
        return {k: v.numpy() for k, v in serve(**inputs).items()}

    start = time.perf_counter()
    out = call()
    first = time.perf_counter() - start
    assert out["probability"].shape == (batch,) and np.isfinite(out["probability"]).all()
    calls = spec["calls"] if batch <= 32 else spec["large_calls"]
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    rows.append({"batch": batch, "calls": calls, "first_call_s": first,
                 "p50_ms": 1000 * float(np.percentile(times, 50)),
                 "p99_ms": 1000 * float(np.percentile(times, 99)),
                 "mean_ms": 1000 * float(np.mean(times)),
                 "examples_per_s": batch / float(np.percentile(times, 50))})
import resource
print(json.dumps({"load_s": load_s, "rows": rows,
                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def write_data_dir(path: Path, length: int, vocab) -> dict:
    """The metadata and vocabularies ``export_model`` reads; returns the lines per vocab."""
    from mdaf_tf.data import feature_schema, schema

    (path / "vocab").mkdir(parents=True)
    lines = {}
    for name, size in zip(("user", "item", "cate"), vocab, strict=True):
        lines[name] = size - schema.FIRST_ID
        text = "".join(f"{RAW_BASE[name] + i}\n" for i in range(lines[name]))
        (path / "vocab" / f"{name}.txt").write_text(text)
    meta = {
        "schema_version": schema.SCHEMA_VERSION,
        "schema": feature_schema.DEFAULT.to_dict(),
        "max_seq_len": length,
        "vocab_sizes": dict(zip(("user", "item", "cate"), vocab, strict=True)),
        "raw_id_dtypes": {"user": "int64", "item": "int64", "cate": "int64"},
    }
    (path / "metadata.json").write_text(json.dumps(meta))
    return lines


def keras_latency(model, config, args) -> list[dict]:
    """The same model in this process through evaluation's predict function (dense ids,
    ``jit_compile`` and scan as the training command resolves them), for comparison."""
    import numpy as np

    from mdaf_tf.evaluation.predictions import make_predict_fn
    from mdaf_tf.training import runner

    predict = make_predict_fn(model, runner.resolve_jit_compile("auto", config))
    out = []
    for batch in args.batches:
        features = common.random_features(batch, args.length, tuple(args.vocab))
        predict(features)[0].numpy()
        calls = args.calls if batch <= 32 else args.large_calls
        times = common.time_calls(lambda f=features: predict(f)[0].numpy(), calls)
        out.append({"batch": batch, "calls": calls,
                    "p50_ms": 1000 * float(np.percentile(times, 50)),
                    "p99_ms": 1000 * float(np.percentile(times, 99)),
                    "examples_per_s": batch / float(np.percentile(times, 50))})
    return out


def build(args, tmp: Path):
    """(model, config, data directory, vocabulary lines): the float32 MDAF every export is
    made from, and the minimal data directory the exports read."""
    import keras

    from mdaf_tf import models

    data_dir = tmp / "data"
    lines = write_data_dir(data_dir, args.length, args.vocab)
    overrides = TINY if args.size == "tiny" else {}
    config = common.model_config(args.length, tuple(args.vocab), **overrides)
    keras.utils.set_random_seed(0)
    model = models.build_model("mdaf", config)
    model(common.random_features(2, args.length, tuple(args.vocab)), training=False)
    return model, config, data_dir, lines


def export(model, config, data_dir, tmp: Path, serving_precision: str) -> tuple[Path, float]:
    """(export path, seconds): ``model`` exported with its graph in ``serving_precision``."""
    from mdaf_tf.export import export_model

    start = time.perf_counter()
    path = export_model(model, config, "mdaf", data_dir, tmp / f"export-{serving_precision}",
                        serving_precision=serving_precision)
    return path, time.perf_counter() - start


def measure_exports(args, tmp: Path) -> tuple[list[dict], object, object]:
    """Every ``--serving-precisions`` export of one model timed in a fresh process per
    ``--intra-op-threads`` setting; (their results, the float32 model, its config). A failing
    loading process raises RuntimeError with its last error line."""
    model, config, data_dir, lines = build(args, tmp)
    processes = []
    for precision in args.serving_precisions:
        path, export_s = export(model, config, data_dir, tmp, precision)
        for threads in args.intra_op_threads:
            spec = {"length": args.length, "batches": args.batches, "calls": args.calls,
                    "large_calls": args.large_calls, "raw_base": RAW_BASE, "vocab_lines": lines,
                    "intra_op_threads": threads}
            env = {**os.environ, "PYTHONPATH": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
            done = subprocess.run([sys.executable, "-c", CHILD, str(path), json.dumps(spec)],
                                  capture_output=True, text=True, env=env, cwd=tmp)
            if done.returncode != 0:
                raise RuntimeError((done.stderr.strip().splitlines() or ["?"])[-1])
            child = json.loads(done.stdout.strip().splitlines()[-1])
            processes.append({"serving_precision": precision, "export_s": export_s,
                              "intra_op_threads": threads, **child})
    return processes, model, config


# The setting whose batch-1 p50 the latency target is read from (TF Serving's latency setting).
LATENCY_THREADS = 1


def threads_label(threads: int) -> str:
    return "TensorFlow's default" if not threads else str(threads)


def latency_process(result: dict) -> dict | None:
    """The float32 export's loading process measured with LATENCY_THREADS, else the first one
    measured."""
    processes = [p for p in result.get("processes", [])
                 if p.get("serving_precision", "float32") == "float32"] or result.get(
                     "processes", [])
    return next((p for p in processes if p["intra_op_threads"] == LATENCY_THREADS),
                processes[0] if processes else None)


def rows(result: dict) -> list[list]:
    out = []
    target = latency_process(result)
    for process in result.get("processes", []):
        threads = threads_label(process["intra_op_threads"])
        precision = process.get("serving_precision", "float32")
        path = f"SavedModel (raw ids, {precision} graph), intra-op threads: {threads}"
        for r in process["rows"]:
            mark = " (target < 5 ms)" if r["batch"] == 1 and process is target else ""
            out.append([path, r["batch"], r["calls"], f"{r['p50_ms']:.2f}{mark}",
                        f"{r['p99_ms']:.2f}", f"{r['examples_per_s']:.0f}"])
    for r in result.get("keras_in_process", []):
        out.append(["Keras, same process (dense ids)", r["batch"], r["calls"],
                    f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['examples_per_s']:.0f}"])
    return out


HEADER = ["path", "batch", "calls", "p50 ms", "p99 ms", "examples/s"]


def markdown(result: dict) -> str:
    loads = ", ".join(f"{p['load_s']:.1f} s ({p.get('serving_precision', 'float32')}, "
                      f"intra-op threads: {threads_label(p['intra_op_threads'])})"
                      for p in result["processes"])
    head = (f"MDAF ({result['size']} config, L={result['length']}), SavedModel exported in "
            f"{result['export_s']:.1f} s and loaded in a fresh process per intra-op thread "
            f"setting in {loads}; load average {result['load_average_start']} -> "
            f"{result['load_average_end']}")
    note = ("Intra-op threads: TF Serving's `--tensorflow_intra_op_parallelism`; 1 is the "
            "latency setting the batch-1 target is read from. p99 is interpolated over the timed "
            "calls; with few calls (batch 2048) it is close to the slowest call.")
    return head + "\n\n" + common.markdown_table(HEADER, rows(result)) + "\n\n" + note


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["default", "tiny"], default="default")
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32, 2048])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--large-calls", type=int, default=10)
    parser.add_argument("--vocab", type=int, nargs=3, default=list(common.DEFAULT_VOCAB),
                        metavar=("USERS", "ITEMS", "CATES"))
    parser.add_argument("--no-keras", dest="compare_keras", action="store_false",
                        help="skip timing the same model in-process with Keras")
    parser.add_argument("--intra-op-threads", type=int, nargs="+", default=[LATENCY_THREADS, 0],
                        metavar="N", help="intra-op thread settings of the loading process, each "
                        "measured in its own process (0: TensorFlow's default; default: 1 0)")
    parser.add_argument("--serving-precisions", nargs="+", default=["float32"],
                        choices=PRECISIONS, metavar="PRECISION",
                        help="precisions the exported graph computes in, each exported and "
                        "measured (export_model's serving_precision; default: float32)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    if min(args.intra_op_threads) < 0:
        parser.exit(2, "error: --intra-op-threads must be at least 0 (0: TensorFlow's default)\n")
    if min(args.batches + [args.length, args.calls, args.large_calls]) < 1:
        parser.exit(2, "error: length, batches and call counts must be at least 1\n")
    if min(args.vocab) < 3:
        parser.exit(2, "error: --vocab sizes must be at least 3 (PAD, OOV and one id)\n")

    load_start = common.load_average()
    with tempfile.TemporaryDirectory(prefix="mdaf-serving-") as tmp:
        try:
            processes, model, config = measure_exports(args, Path(tmp))
        except RuntimeError as error:
            print(f"serving benchmark: the loading process failed: {error}", file=sys.stderr)
            return 1
    in_process = keras_latency(model, config, args) if args.compare_keras else []
    result = {
        "benchmark": "serving",
        "size": args.size,
        "length": args.length,
        "vocab": args.vocab,
        "export_s": processes[0]["export_s"],
        "processes": processes,
        "keras_in_process": in_process,
        "machine": common.machine(),
        "load_average_start": load_start,
        "load_average_end": common.load_average(),
    }
    print(markdown(result).split("\n\n")[0])
    print(common.text_table(HEADER, rows(result)))
    common.write_json(args.output, result)
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
