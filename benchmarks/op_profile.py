"""Where a training step's CPU time goes, by TensorFlow op type, from the TF profiler.

``op_seconds(fn, calls)`` runs ``fn`` ``calls`` times under ``tf.profiler.experimental`` and
reads the trace (the XSpace protobuf the profiler writes) back: the seconds each op type ran
on TensorFlow's compute threads, summed over threads and divided by ``calls``. With two
threads the total is up to twice the wall time. Matmuls (``MatMul``, ``BatchMatMul`` and
their oneDNN forms) are summed apart from the rest, because the matmul rate is what mixed
precision speeds up and the rest bounds what it can gain (Amdahl).
"""

from __future__ import annotations

import collections
import tempfile
from pathlib import Path

MATMUL_OPS = ("MatMul", "_MklMatMul", "BatchMatMulV2", "_MklBatchMatMulV2", "BatchMatMulV3",
              "_MklBatchMatMulV3", "_MklNativeMatMul", "_MklNativeBatchMatMulV2")


def _events(logdir: Path):
    """(thread line name, event name, seconds) of every event in the profiler's trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    for path in logdir.rglob("*.xplane.pb"):
        space = xplane_pb2.XSpace()
        space.ParseFromString(path.read_bytes())
        for plane in space.planes:
            names = {k: v.name for k, v in plane.event_metadata.items()}
            for line in plane.lines:
                for event in line.events:
                    yield line.name, names.get(event.metadata_id, ""), event.duration_ps / 1e12


def op_seconds(fn, calls: int = 2, top: int = 12) -> dict:
    """CPU seconds per call of ``fn`` by op type: ``matmul_s``, ``other_s``, ``total_s`` and
    the ``top`` op types (dropout's random-number, compare and select ops under
    ``dropout/``, as the op's node name says)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        tf.profiler.experimental.start(tmp)
        try:
            for _ in range(calls):
                fn()
        finally:
            tf.profiler.experimental.stop()
        by_type = collections.Counter()
        for line, name, seconds in _events(Path(tmp)):
            # Kernel events are "node name:op type"; ExecutorState::Process and the like
            # enclose them and would count twice.
            if line.startswith("tf_Compute") and ":" in name and "::" not in name:
                node, op = name.rsplit(":", 1)
                key = f"dropout/{op}" if "dropout" in node and op not in MATMUL_OPS else op
                by_type[key] += seconds / calls
    matmul = sum(v for k, v in by_type.items() if k in MATMUL_OPS)
    total = sum(by_type.values())
    return {
        "matmul_s": matmul,
        "other_s": total - matmul,
        "total_s": total,
        "top": [[op, seconds] for op, seconds in by_type.most_common(top)],
    }
