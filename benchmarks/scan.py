"""Selective-scan benchmark: forward and forward+backward, reference vs chunked vs fast.

    python benchmarks/scan.py [--lengths 50 200 800] [--impls reference chunked fast]
                              [--batch 2048] [--d-inner 256] [--d-state 16] [--repeats 2]

Each (impl, mode, length) case runs in its own subprocess so that its memory figure is its own.
Time: the best of ``--repeats`` calls after one warm-up call (which traces, compiles and builds
the op), in ms per batch, wall clock. ``fwd+bwd`` returns the loss beside the gradients: the
gradient kernels do not read the scan's output, so without it TensorFlow prunes the forward pass
of the custom op (only the reference, whose gradient reuses its forward's steps, kept it). A call
is timed until the function returns: on CPU, TensorFlow runs a function synchronously, and the
outputs are not copied into numpy arrays (that copy cost both implementations some 35 ms per
call at the default shape, work that no training step does). ``chunked`` runs under XLA
(``jit_compile=True``, the path used on GPU/TPU); ``fast`` and ``reference`` run in a plain
``tf.function``.
Memory: the growth of the process's peak resident set (``ru_maxrss``) from after the inputs
are created to the end of the timed calls, in GB; it includes the one-off tracing/compilation
memory and the outputs and gradients (on CPU, TF's allocator statistics are not available).
The ``reference`` cases that would take minutes or exceed this machine's memory (autodiff
through ``tf.scan`` keeps every step's (batch, d_inner, d_state) tensors) are skipped with a note.
Writes ``benchmarks/results/scan.json`` and prints a table with speed-ups relative to reference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "scan.json"
# reference cases not run at the default shape, with the reason.
REFERENCE_SKIPS = {
    ("fwd", 800): "skipped: tf.scan reference forward takes minutes at L=800",
    ("fwd+bwd", 200): "skipped: autodiff through tf.scan keeps ~4 x 200 x 33 MB of step tensors",
    ("fwd+bwd", 800): "skipped: autodiff through tf.scan would need tens of GB",
}


def make_case_function(impl: str, mode: str, weights):
    """The timed function: the scan (``fwd``), or the loss sum(scan * weights) and its gradients
    with respect to the scan's six inputs (``fwd+bwd``)."""
    import tensorflow as tf

    from mdaf_tf.ops.selective_scan import selective_scan

    jit = impl == "chunked"

    @tf.function(jit_compile=jit)
    def forward(*xs):
        return selective_scan(*xs, impl=impl)

    @tf.function(jit_compile=jit)
    def forward_backward(*xs):
        with tf.GradientTape() as tape:
            tape.watch(xs)
            loss = tf.reduce_sum(selective_scan(*xs, impl=impl) * weights)
        return loss, tape.gradient(loss, xs)

    return forward if mode == "fwd" else forward_backward


def make_inputs(batch: int, length: int, d_inner: int, d_state: int, seed: int = 0):
    """The scan's six inputs as float32 arrays (u, B, C normal, delta uniform on [1e-3, 0.1],
    A = -(1..d_state) in every channel, D = 1) and one more normal (batch, length, d_inner) array
    drawn after them: the loss weights here, the upstream gradient in ``scan_kernels.py``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    f32 = np.float32
    inputs = (
        rng.normal(size=(batch, length, d_inner)).astype(f32),
        rng.uniform(1e-3, 1e-1, size=(batch, length, d_inner)).astype(f32),
        -np.tile(np.arange(1, d_state + 1, dtype=f32), (d_inner, 1)),
        rng.normal(size=(batch, length, d_state)).astype(f32),
        rng.normal(size=(batch, length, d_state)).astype(f32),
        np.ones(d_inner, f32),
    )
    return inputs, rng.normal(size=(batch, length, d_inner)).astype(f32)


def run_case(impl: str, mode: str, length: int, batch: int, d_inner: int, d_state: int,
             repeats: int) -> dict:
    """Time one case in this process (called in the child)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    import mdaf_tf  # noqa: F401  (before any tensor: it selects TensorFlow's CPU allocator)

    inputs, weights = make_inputs(batch, length, d_inner, d_state)
    inputs = tuple(tf.constant(x) for x in inputs)
    weights = tf.constant(weights)

    fn = make_case_function(impl, mode, weights)
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    fn(*inputs)
    first_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*inputs)
        times.append(time.perf_counter() - start)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "ms": 1000 * min(times),
        "first_call_s": first_s,
        "peak_rss_growth_gb": (peak_kb - base_kb) / 2**20,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[50, 200, 800])
    parser.add_argument("--impls", nargs="+", default=["reference", "chunked", "fast"])
    parser.add_argument("--modes", nargs="+", default=["fwd", "fwd+bwd"])
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--d-inner", type=int, default=256)
    parser.add_argument("--d-state", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--append", action="store_true",
        help="keep the rows already in --output, replacing those of the cases run now",
    )
    parser.add_argument(
        "--skip", nargs="+", default=[], metavar="IMPL:MODE:LENGTH=NOTE",
        help="record these cases as not run, with the note",
    )
    parser.add_argument(
        "--case", nargs=3, metavar=("IMPL", "MODE", "LENGTH"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    shape = dict(batch=args.batch, d_inner=args.d_inner, d_state=args.d_state)

    if args.case:
        impl, mode, length = args.case
        print(json.dumps(run_case(impl, mode, int(length), repeats=args.repeats, **shape)))
        return 0

    default_shape = shape == dict(batch=2048, d_inner=256, d_state=16)
    skips = {}
    for item in args.skip:
        case, _, note = item.partition("=")
        impl, mode, length = case.split(":")
        skips[(impl, mode, int(length))] = f"skipped: {note}"
    rows = []
    if args.append and args.output.exists():
        rows = json.loads(args.output.read_text())["rows"]
    for length in args.lengths:
        for mode in args.modes:
            for impl in args.impls:
                row = {"impl": impl, "mode": mode, "length": length, **shape}
                skip = REFERENCE_SKIPS.get((mode, length)) if impl == "reference" else None
                skip = skips.get((impl, mode, length), skip if default_shape else None)
                if skip:
                    row["note"] = skip
                else:
                    cmd = [sys.executable, __file__, "--case", impl, mode, str(length),
                           "--batch", str(args.batch), "--d-inner", str(args.d_inner),
                           "--d-state", str(args.d_state), "--repeats", str(args.repeats)]
                    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
                    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
                    if done.returncode == 0:
                        row.update(json.loads(done.stdout.strip().splitlines()[-1]))
                    else:
                        row["note"] = f"failed (exit {done.returncode}): " + (
                            done.stderr.strip().splitlines() or ["?"])[-1][:200]
                rows = [r for r in rows if (r["impl"], r["mode"], r["length"])
                        != (impl, mode, length)] + [row]
                print(format_row(row), flush=True)
                write_json(args.output, rows)
    for row in rows:
        ref = next((r for r in rows if r["impl"] == "reference" and r["mode"] == row["mode"]
                    and r["length"] == row["length"] and "ms" in r), None)
        row.pop("speedup_vs_reference", None)
        if ref and "ms" in row:
            row["speedup_vs_reference"] = ref["ms"] / row["ms"]

    print()
    print(f"{'impl':<10}{'mode':<9}{'L':>5}{'ms/batch':>11}{'first s':>9}{'peak GB':>9}", end="")
    print(f"{'x ref':>8}")
    for row in rows:
        print(format_row(row))
    write_json(args.output, rows)
    print(f"\nwrote {args.output}")
    return 0


def write_json(path: Path, rows: list) -> None:
    result = {
        "benchmark": "selective_scan",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "processor": platform.processor()},
        "memory_method": "growth of ru_maxrss in a fresh subprocess per case, "
                         "from after input creation to after the timed calls",
        "rows": rows,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)


def format_row(row: dict) -> str:
    head = f"{row['impl']:<10}{row['mode']:<9}{row['length']:>5}"
    if "ms" not in row:
        return f"{head}  {row.get('note', '')}"
    ratio = row.get("speedup_vs_reference")
    return (f"{head}{row['ms']:>11.0f}{row['first_call_s']:>9.1f}"
            f"{row['peak_rss_growth_gb']:>9.2f}{(f'{ratio:.1f}' if ratio else '-'):>8}")


if __name__ == "__main__":
    sys.exit(main())
