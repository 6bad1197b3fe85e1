"""Inference speed and memory of a trained model on this machine."""

from __future__ import annotations

import os
import platform
import resource
import time

import numpy as np
import tensorflow as tf

from mdaf_tf import data
from mdaf_tf.evaluation.predictions import make_predict_fn


def reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark (Linux: ``5`` into /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """The process's RSS high-water mark (VmHWM; ru_maxrss where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def inference_batch(data_dir, batch_size: int) -> dict:
    """``batch_size`` validation rows (repeated from the start when the split is smaller)."""
    features, _ = next(iter(data.make_dataset(data_dir, "val", batch_size, training=False)))
    rows = int(next(iter(features.values())).shape[0])
    index = tf.constant(np.arange(batch_size) % rows, dtype=tf.int32)
    return {k: tf.gather(v, index) for k, v in features.items()}


def time_inference(model, jit_compile: bool, batch: dict, repeats: int = 10,
                   warmup: int = 2) -> dict:
    """Median wall time of the compiled prediction function on one batch."""
    predict = make_predict_fn(model, jit_compile)
    for _ in range(warmup):
        np.asarray(predict(batch)[0])
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        np.asarray(predict(batch)[0])  # waits for the result
        times.append(time.perf_counter() - start)
    size = int(next(iter(batch.values())).shape[0])
    ms = 1000.0 * float(np.median(times))
    return {
        "inference_batch_size": size,
        "inference_ms_per_batch": ms,
        "inference_examples_per_second": size / (ms / 1000.0),
    }


def hardware() -> str:
    """CPU model and core count (from /proc/cpuinfo where present), OS and TF device."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpus = tf.config.list_physical_devices("GPU")
    device = f"{len(gpus)} GPU(s)" if gpus else "CPU only"
    return (
        f"{model}, {cores} cores available, {device}; {platform.system()} "
        f"{platform.release()}, TensorFlow {tf.__version__}"
    )
