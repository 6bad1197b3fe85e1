"""Throughput of ``pipelines.taobao``: input rows/s and examples written/s, end to end.

``python -m benchmarks.pipeline [--rows 10000000] [--taobao-ad-rows N] [--json FILE]``

``--taobao-ad-rows N`` also runs ``pipelines.taobao_ad`` (time protocol, impressions
history, its defaults) on generated files of N impressions (``benchmarks/taobao_ad_data.py``:
the real files' proportions) in a child process, reporting raw_sample rows/s and the child's
own peak resident memory (``run_module_peak``); ``--taobao-ad-log-rows M`` adds a generated
behaviour log of M events and runs with ``--history behavior-log`` (``all_rows_per_s``:
impressions and log rows).

Runs the pipeline (default arguments: all four behaviours positive, 1.5 negatives per
positive, history 50, gzip level 1) on the shared 110k-row Tianchi slice and on a
generated file in the same format (users with time-sorted histories of about 100 rows,
as in the full file), once with ``--gzip-library zlib`` (keys ``..._zlib``) and once with
``--gzip-library isal`` (``..._isal``, the pipelines' default) when the isal package is
installed; both flags are passed explicitly and each result records its ``gzip_library``.
Then it compares the example writers on the same examples: the pipelines' encoder
(compiled, or numpy without a C compiler) + zlib against one ``tf.train.Example`` per row
written with ``tf.io.TFRecordWriter``. Prints a table and writes JSON. Besides wall seconds
it reports the process's CPU seconds and the load average: on a shared machine rows per
CPU-second is the steadier figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from mdaf_tf.data import schema
from pipelines import native, taobao
from pipelines.tfrecord import encode_examples

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                      "taobao_user_behavior", "timeslice_110k_rows.csv")


def generate(path: str, rows: int, seed: int = 0, chunk: int = 2_000_000):
    """Tianchi-format CSV: users in id order, each with a time-sorted history."""
    rng = np.random.default_rng(seed)
    behaviors = pa.array(["pv", "cart", "fav", "buy"])
    user = 1
    with pacsv.CSVWriter(path, pa.schema([(c, pa.int64()) for c in ("u", "i", "c")] + [
            ("b", pa.dictionary(pa.int8(), pa.string())), ("t", pa.int64())]),
            write_options=pacsv.WriteOptions(include_header=False)) as w:
        done = 0
        while done < rows:
            n = min(chunk, rows - done)
            lengths = np.maximum(1, rng.geometric(1 / 100, size=n // 50 + 10))
            lengths = lengths[np.cumsum(lengths) <= n]
            lengths = np.append(lengths, n - lengths.sum()) if lengths.sum() < n else lengths
            users = np.repeat(np.arange(user, user + len(lengths)), lengths)
            user += len(lengths)
            item = (rng.zipf(1.3, n) * 7919 + rng.integers(0, 7919, n)) % 5_000_000
            cate = item % 9439 * 517 % 5_000_000
            ts = taobao.WINDOW_START + rng.integers(0, taobao.WINDOW_END - taobao.WINDOW_START, n)
            ts = ts[np.lexsort((ts, users))]
            beh = rng.choice(4, n, p=[0.895, 0.055, 0.028, 0.022]).astype(np.int8)
            w.write_table(pa.table({
                "u": users, "i": item, "c": cate,
                "b": pa.DictionaryArray.from_arrays(pa.array(beh), behaviors), "t": ts}))
            done += n


def variants() -> list[tuple[str, tuple[str, ...]]]:
    """(result-key suffix, pipeline flags) of each deflate library measured. Each passes
    ``--gzip-library`` explicitly: the pipelines' default is isal, so no flag is not zlib."""
    out = [("_zlib", ("--gzip-library", "zlib"))]
    if importlib.util.find_spec("isal") is not None:
        out.append(("_isal", ("--gzip-library", "isal")))
    return out


def run_pipeline(path: str, out: str, extra: tuple = ()) -> dict:
    args = taobao.parse_args(["--input", path, "--output", out, *extra])
    load_before = os.getloadavg()[0]
    start, cpu_start = time.perf_counter(), time.process_time()
    meta = taobao.build(args)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    examples = sum(s["examples"] for s in meta["splits"].values())
    size = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out)
               if n.endswith(".tfrecord.gz"))
    rows = meta["counts"]["rows_read"]
    return {"args": list(extra), "gzip_library": args.gzip_library, "input_rows": rows,
            "examples": examples,
            "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
            "input_rows_per_s": round(rows / seconds),
            "examples_per_s": round(examples / seconds),
            "input_rows_per_cpu_s": round(rows / cpu),
            "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
            "input_bytes": os.path.getsize(path), "output_gz_bytes": size}


_PEAK_WRAPPER = """
import os, runpy, sys
module, out = sys.argv[1], os.environ["BENCHMARK_PEAK_FILE"]
sys.argv = [module, *sys.argv[2:]]
try:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
finally:
    with open("/proc/self/status") as f, open(out, "w") as o:
        o.write(next(line for line in f if line.startswith("VmHWM")).split()[1])
"""


def run_module_peak(module: str, args: list, tmp: str) -> float:
    """Run ``python -m module args`` in a child process; return the child's own peak resident
    memory in GiB: the VmHWM of its address space (Linux). Its ``ru_maxrss`` would not do: the
    kernel carries the parent's peak into the child at the spawn, so a parent that generated
    big inputs would be measured instead."""
    peak_file = os.path.join(tmp, "peak_kib")
    subprocess.run([sys.executable, "-c", _PEAK_WRAPPER, module, *map(str, args)], check=True,
                   env={**os.environ, "BENCHMARK_PEAK_FILE": peak_file})
    with open(peak_file) as f:
        return int(f.read()) / 2**20


def run_taobao_ad(tmp: str, rows: int, log_rows: int = 0) -> dict:
    """Generate the three files (and a behaviour log of ``log_rows`` events, then run with
    ``--history behavior-log``) and run pipelines.taobao_ad on them in a child process."""
    from benchmarks import taobao_ad_data

    start = time.perf_counter()
    files = taobao_ad_data.generate(tmp, rows)
    if log_rows:
        files["behavior_log"] = taobao_ad_data.generate_behavior_log(tmp, log_rows, rows)
    generate_s = time.perf_counter() - start
    out = os.path.join(tmp, "taobao_ad")
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    peak = run_module_peak("pipelines.taobao_ad", taobao_ad_data.pipeline_args(files, out), tmp)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(os.path.join(out, "metadata.json")) as f:
        meta = json.load(f)
    read = meta["counts"]["rows_read"]
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    examples = sum(s["examples"] for s in meta["splits"].values())
    log_read = meta["counts"].get("log_rows_read", 0)
    return {"pipeline": "taobao_ad", "protocol": "time",
            "history": "behavior-log" if log_rows else "impressions",
            "input_rows": read, "examples": examples, "log_rows": log_read,
            "all_rows_per_s": round((read + log_read) / seconds),
            "generate_seconds": round(generate_s, 2), "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu, 2), "input_rows_per_s": round(read / seconds),
            "examples_per_s": round(examples / seconds), "input_rows_per_cpu_s": round(read / cpu),
            "peak_rss_gib": round(peak, 2), "peak_rss_method": "the child's VmHWM",
            "leak_report": meta.get("leak_report"),
            "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
            "input_bytes": {k: os.path.getsize(v) for k, v in files.items()}}


def compare_writers(data_dir: str, n: int = 20_000) -> dict:
    import tensorflow as tf

    from mdaf_tf.data import read_split_numpy

    cols = {k: v[:n] for k, v in read_split_numpy(data_dir, "train").items()}
    n = len(cols[schema.LABEL])
    seq = cols[schema.HIST_ITEM_ID].shape[1]
    start = time.perf_counter()
    encoded = zlib.compress(encode_examples(cols, seq), 1)
    numpy_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        options = tf.io.TFRecordOptions(compression_type="GZIP", compression_level=1)
        with tf.io.TFRecordWriter(os.path.join(tmp, "x.gz"), options) as w:
            for i in range(n):
                ex = tf.train.Example()
                for f in schema.FEATURES:
                    ex.features.feature[f.name].int64_list.value.extend(
                        np.atleast_1d(cols[f.name][i]).tolist())
                w.write(ex.SerializeToString())
        tf_s = time.perf_counter() - start
    return {"examples": n, "numpy_encoder_zlib_per_s": round(n / numpy_s),
            "tf_example_writer_per_s": round(n / tf_s), "gz_bytes_numpy": len(encoded)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=10_000_000, help="rows of the generated file")
    p.add_argument("--shared-file", default=SHARED)
    p.add_argument("--json", default="pipeline_benchmark.json")
    p.add_argument("--workdir", default=None, help="temporary space (default: system temp)")
    p.add_argument("--taobao-ad-rows", type=int, default=0,
                   help="also run pipelines.taobao_ad on generated files of this many rows")
    p.add_argument("--taobao-ad-log-rows", type=int, default=0,
                   help="with --taobao-ad-rows: a generated behaviour log of this many events "
                        "(--history behavior-log)")
    args = p.parse_args(argv)
    results = {"cpu_count": os.cpu_count(), "native_encoder": native.library() is not None}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        if os.path.exists(args.shared_file):
            out = os.path.join(tmp, "shared")
            for suffix, extra in variants():
                results[f"shared_110k{suffix}"] = run_pipeline(args.shared_file,
                                                               out + suffix, extra)
            results["writers"] = compare_writers(out + "_zlib")
        if args.rows > 0:
            path = os.path.join(tmp, "generated.csv")
            start = time.perf_counter()
            generate(path, args.rows)
            results["generate_seconds"] = round(time.perf_counter() - start, 2)
            for suffix, extra in variants():
                results[f"generated_{args.rows}{suffix}"] = run_pipeline(
                    path, os.path.join(tmp, "gen" + suffix), extra)
        if args.taobao_ad_rows > 0:
            log = f"_log_{args.taobao_ad_log_rows}" if args.taobao_ad_log_rows else ""
            results[f"taobao_ad_generated_{args.taobao_ad_rows}{log}"] = run_taobao_ad(
                tmp, args.taobao_ad_rows, args.taobao_ad_log_rows)
    print(f"{'input':<26}{'rows':>10}{'examples':>11}{'seconds':>9}{'rows/s':>9}"
          f"{'examples/s':>11}{'cpu s':>8}{'rows/cpu-s':>11}{'load':>11}")
    for name, r in results.items():
        if isinstance(r, dict) and "input_rows" in r:
            load = "-".join(str(x) for x in r["load_average"])
            print(f"{name:<26}{r['input_rows']:>10}{r['examples']:>11}{r['seconds']:>9}"
                  f"{r['input_rows_per_s']:>9}{r['examples_per_s']:>11}{r['cpu_seconds']:>8}"
                  f"{r['input_rows_per_cpu_s']:>11}{load:>11}")
    if "writers" in results:
        w = results["writers"]
        print(f"writers on {w['examples']} examples: pipeline encoder + zlib "
              f"{w['numpy_encoder_zlib_per_s']}/s, tf.train.Example + TFRecordWriter "
              f"{w['tf_example_writer_per_s']}/s")
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
