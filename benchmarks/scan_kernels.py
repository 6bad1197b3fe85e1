"""The fast scan op's two kernels alone, on one thread, in ms per 1,024 rows.

    python benchmarks/scan_kernels.py [--rows 512] [--length 50] [--d-inner 256]
        [--d-state 16] [--repeats 7] [--output benchmarks/results/scan_kernels.json]

``scan.py`` times what a training step pays: the scan and its loss's gradient, on TensorFlow's
threads. This calls the op's forward kernel (``MdafSelectiveScan``) and its gradient kernel
(``MdafSelectiveScanGrad``) directly, with one intra-op and one inter-op thread, on ``--rows``
rows, and scales the best of ``--repeats`` calls (after one warm-up call) to 1,024 rows: one
thread's share of a batch of 2048 on two cores, the per-thread figures quoted in
``benchmarks/RESULTS.md`` and in the op's source. Inputs are ``scan.py``'s (``make_inputs``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import common, scan  # noqa: E402

OUTPUT = common.RESULTS_DIR / "scan_kernels.json"
SCALE_ROWS = 1024


def make_inputs(rows: int, length: int, d_inner: int, d_state: int, seed: int = 0):
    """The op's six inputs and an upstream gradient dy, as float32 tensors (``scan.py``'s)."""
    import tensorflow as tf

    inputs, dy = scan.make_inputs(rows, length, d_inner, d_state, seed)
    return [tf.constant(x) for x in inputs], tf.constant(dy)


def kernel_functions():
    """``forward(*inputs)`` and ``backward(*inputs, dy)``: the op's two kernels, nothing else."""
    import tensorflow as tf

    from mdaf_tf.ops.fast_scan import fast_scan, fast_scan_grad

    return tf.function(fast_scan), tf.function(fast_scan_grad)


def best_ms(fn, args, repeats: int) -> float:
    fn(*args)
    return 1000 * min(common.time_calls(lambda: fn(*args), repeats))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--d-inner", type=int, default=256)
    parser.add_argument("--d-state", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    if min(args.rows, args.length, args.d_inner, args.d_state, args.repeats) < 1:
        parser.exit(2, "error: sizes and --repeats must be at least 1\n")

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    inputs, dy = make_inputs(args.rows, args.length, args.d_inner, args.d_state)
    forward, backward = kernel_functions()
    scale = SCALE_ROWS / args.rows
    result = {
        "benchmark": "scan_kernels",
        "rows": args.rows, "length": args.length, "d_inner": args.d_inner,
        "d_state": args.d_state, "repeats": args.repeats, "threads": 1,
        "forward_ms_per_1024_rows": scale * best_ms(forward, inputs, args.repeats),
        "backward_ms_per_1024_rows": scale * best_ms(backward, [*inputs, dy], args.repeats),
        "machine": common.machine(),
    }
    print(f"rows {args.rows}, L {args.length}, d_inner {args.d_inner}, d_state {args.d_state}, "
          f"one thread; ms per {SCALE_ROWS} rows: forward "
          f"{result['forward_ms_per_1024_rows']:.1f}, backward "
          f"{result['backward_ms_per_1024_rows']:.1f}")
    common.write_json(args.output, result)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
