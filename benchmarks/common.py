"""Helpers shared by the model benchmarks: machine facts, inputs, timing, memory, JSON."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import time
from pathlib import Path

import mdaf_tf  # noqa: F401 -- importing it switches on the BFC CPU allocator (mdaf_tf/runtime.py)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
# Vocabulary sizes (rows, including PAD and OOV) the benchmarks build models with. The cost
# per example does not depend on them, except the optimizer's update of the embedding tables
# (which train_throughput.py includes, as training does).
DEFAULT_VOCAB = (10_000, 50_000, 5_000)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def git_commit() -> str:
    """The checkout's short commit, with "+changes" when tracked files differ from it."""
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO).stdout

    commit = git("rev-parse", "--short", "HEAD").strip() or "?"
    return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine() -> dict:
    """What the figures were measured on (TensorFlow only if it is already imported)."""
    import sys

    facts = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory_gib(), 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": load_average(),
        "commit": git_commit(),
    }
    if "tensorflow" in sys.modules:
        facts["tensorflow"] = sys.modules["tensorflow"].__version__
    return facts


def peak_rss_gib() -> float:
    """This process's peak resident set size so far (``ru_maxrss``, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# Extra static fields and their vocabulary sizes (ids plus PAD and OOV) per benchmark schema:
# "default" is user, item and category; "thesis" adds the thesis code's hour and day of week.
SCHEMAS = {"default": {}, "thesis": {"hour": 24 + 2, "day_of_week": 7 + 2}}


def feature_declaration(schema_name: str) -> dict | None:
    """A model config's ``features`` for a benchmark schema (None: the default)."""
    from mdaf_tf.data import feature_schema

    extra = SCHEMAS[schema_name]
    if not extra:
        return None
    declared = feature_schema.DEFAULT.to_dict()
    declared["static"] += [{"name": n, "kind": "categorical", "vocabulary": n} for n in extra]
    return declared


def model_config(length: int, vocab=DEFAULT_VOCAB, schema_name: str = "default",
                 model: str = "mdaf", **overrides):
    """``model``'s config over the benchmark schema (``overrides``: fields it reads)."""
    from mdaf_tf.models import make_config

    users, items, cates = vocab
    return make_config(model, {
        "max_seq_len": length, "features": feature_declaration(schema_name),
        "vocab_sizes": {"user": users, "item": items, "cate": cates, **SCHEMAS[schema_name]},
        **overrides})


def random_features(batch: int, length: int, vocab=DEFAULT_VOCAB, seed: int = 0,
                    schema_name: str = "default") -> dict:
    """Dense-id model inputs: left-padded histories with uniformly drawn lengths 1..L, and
    the schema's extra static fields."""
    import numpy as np
    import tensorflow as tf

    from mdaf_tf.data import schema

    rng = np.random.default_rng(seed)
    users, items, cates = vocab
    hist_len = rng.integers(1, length + 1, batch)
    valid = np.arange(length)[None, :] >= (length - hist_len[:, None])

    def ids(size, shape):
        return rng.integers(schema.FIRST_ID, size, shape)

    values = {
        schema.USER_ID: ids(users, batch),
        schema.ITEM_ID: ids(items, batch),
        schema.CATE_ID: ids(cates, batch),
        schema.HIST_ITEM_ID: np.where(valid, ids(items, (batch, length)), schema.PAD_ID),
        schema.HIST_CATE_ID: np.where(valid, ids(cates, (batch, length)), schema.PAD_ID),
        schema.HIST_LEN: hist_len,
        **{name: ids(size, batch) for name, size in SCHEMAS[schema_name].items()},
    }
    return {k: tf.constant(v, dtype=tf.int64) for k, v in values.items()}


def time_calls(fn, repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn()``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def percentile(values, q: float) -> float:
    """Linearly interpolated percentile ``q`` (0-100) of ``values``."""
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))


def matmul_gflops(size: int = 2048, repeats: int = 10, dtype: str = "float32") -> dict:
    """``tf.matmul`` of two ``size`` x ``size`` matrices of ``dtype``: best and median GFLOP/s
    (2 size^3 FLOPs per product, counted from its graph by ``benchmarks/flops.py``) over
    ``repeats`` timed calls after one warm-up call."""
    import tensorflow as tf

    from benchmarks import flops

    a = tf.cast(tf.random.normal((size, size), seed=1), dtype)
    b = tf.cast(tf.random.normal((size, size), seed=2), dtype)

    @tf.function(jit_compile=False)
    def product():
        return tf.reduce_sum(tf.matmul(a, b))

    product().numpy()
    times = time_calls(lambda: product().numpy(), repeats)
    flop = flops.count_graph(product.get_concrete_function().graph)["matmul"]
    return {
        "size": size,
        "dtype": dtype,
        "repeats": repeats,
        "best_gflops": flop / min(times) / 1e9,
        "median_gflops": flop / statistics.median(times) / 1e9,
    }


def write_json(path: Path, value: dict) -> None:
    """Write ``value`` to ``path`` through a temporary file renamed when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    tmp.replace(path)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header: list[str], rows: list[list]) -> str:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        padded = [c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths,
                                                                                strict=True))]
        lines.append("  ".join(padded))
    return "\n".join(lines)
