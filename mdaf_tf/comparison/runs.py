"""Train every (model, seed) pair once; a finished run leaves ``result.json`` behind.

``result.json`` is written atomically as the last step of a run, so its presence (with the
same request: configs and dataset, and the test figures) marks the run finished and a rerun
skips it; one written before runs reported test figures is run again (it resumes from its
finished checkpoint, so only the evaluation is repeated). A run that was interrupted
resumes from its last checkpoint when it can. A run that raises is recorded in
``error.txt`` and the others go on.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from mdaf_tf import config as config_lib
from mdaf_tf.comparison import efficiency
from mdaf_tf.config import TrainConfig
from mdaf_tf.data import metadata_sha256
from mdaf_tf.files import write_json_atomic, write_text_atomic
from mdaf_tf.models.config import ModelConfig
from mdaf_tf.training.request import TrainRequest

RESULT_FILE = "result.json"
ERROR_FILE = "error.txt"
# What a finished run reports: the selected (best validation AUC) weights on the test split.
TEST_KEYS = ("test_auc", "test_gauc", "test_log_loss")


@dataclasses.dataclass
class RunOutcome:
    model: str
    seed: int
    status: str  # "trained", "skipped" (finished before) or "failed"
    result: dict | None = None
    error: str | None = None


def run_dir(output: Path, model: str, seed: int) -> Path:
    return Path(output) / "runs" / model / f"seed-{seed}"


def request(model_config: ModelConfig, train_config: TrainConfig, data_sha: str) -> dict:
    """What a finished run must match to be reused."""
    return {
        "model": config_lib.to_dict(model_config),
        "train": config_lib.to_dict(train_config),
        "data_metadata_sha256": data_sha,
    }


def _with_defaults(recorded: dict) -> dict | None:
    """``recorded`` (a ``request``) with the config fields added since it was written set
    to their defaults, which is what its run used; None if it is not a valid request."""
    from mdaf_tf.models import make_config

    try:
        train = config_lib.from_dict(TrainConfig, recorded["train"])
        return {**recorded,
                "model": config_lib.to_dict(make_config(train.model, recorded["model"])),
                "train": config_lib.to_dict(train)}
    except (KeyError, TypeError, config_lib.ConfigError):
        return None


def finished_result(directory: Path, wanted: dict) -> dict | None:
    path = directory / RESULT_FILE
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    recorded = result.get("request")
    if not isinstance(recorded, dict) or _with_defaults(recorded) != wanted:
        return None
    if not all(k in result for k in TEST_KEYS):
        return None
    return result


def _median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return float("nan")
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else 0.5 * (values[mid - 1] + values[mid])


def train_one(model_config, train_config, data_dir, directory, *, progress, log,
              timing_repeats, inference_batch_size, train_fn) -> dict:
    """One run: train (resuming if a checkpoint is there), then measure inference."""
    from mdaf_tf.training import checkpoint

    efficiency.reset_peak_rss()
    started = time.perf_counter()
    resume = checkpoint.latest(directory / "checkpoints") is not None
    request = TrainRequest(model_config, train_config, data_dir, directory, resume=resume,
                           progress=progress, write_reports=False, log=log)
    try:
        result = train_fn(request)
    except checkpoint.CheckpointError as e:
        if not resume:
            raise
        log(f"  cannot resume ({e}); training from scratch")
        result = train_fn(dataclasses.replace(request, resume=False))
    batch = efficiency.inference_batch(data_dir, inference_batch_size)
    timing = efficiency.time_inference(result.model, result.jit_compile, batch,
                                       repeats=timing_repeats)
    summary = {
        "model": train_config.model,
        "seed": train_config.seed,
        "val_auc": float(result.best["auc"]),
        "val_log_loss": float(result.best["log_loss"]),
        "val_gauc": float(result.best["gauc"]),
        "test_auc": float(result.test["auc"]),
        "test_gauc": float(result.test["gauc"]),
        "test_log_loss": float(result.test["log_loss"]),
        "best_epoch": int(result.best_epoch),
        "epochs_run": len(result.history),
        "parameters": int(result.parameters["total"]),
        "parameter_components": {k: int(v) for k, v in result.parameters.items()},
        "train_examples_per_second": _median(
            [row.get("examples_per_second") for row in result.history]
        ),
        **timing,
        "peak_rss_mib": efficiency.peak_rss_mib(),
        "wall_seconds": time.perf_counter() - started,
        "jit_compile": bool(result.jit_compile),
        "oracle_auc": (result.metadata.get("oracle") or {}).get("auc"),
    }
    del result
    return summary


def run_all(models, seeds, data_dir, output, model_configs: dict[str, ModelConfig],
            train_config: TrainConfig, *, progress: bool = True, log=print,
            timing_repeats: int = 10, inference_batch_size: int = 2048,
            train_fn: Callable | None = None) -> list[RunOutcome]:
    """Train each model with each seed (``model_configs[model]``, the model's own config)
    into ``output/runs/MODEL/seed-SEED``."""
    import keras

    from mdaf_tf.training import runner

    train_fn = train_fn or runner.train
    data_sha = metadata_sha256(data_dir)
    outcomes = []
    total = len(models) * len(seeds)
    for i, (model, seed) in enumerate(((m, s) for m in models for s in seeds), start=1):
        tc = dataclasses.replace(train_config, model=model, seed=seed)
        wanted = request(model_configs[model], tc, data_sha)
        directory = run_dir(output, model, seed)
        tag = f"[{i}/{total}] {model} seed {seed}"
        done = finished_result(directory, wanted)
        if done is not None:
            log(f"{tag}: finished before (test AUC {done['test_auc']:.4f}), skipped")
            outcomes.append(RunOutcome(model, seed, "skipped", result=done))
            continue
        directory.mkdir(parents=True, exist_ok=True)
        for stale in (RESULT_FILE, ERROR_FILE):
            (directory / stale).unlink(missing_ok=True)
        log(f"{tag}: training in {directory}")
        try:
            summary = train_one(
                model_configs[model], tc, data_dir, directory, progress=progress, log=log,
                timing_repeats=timing_repeats, inference_batch_size=inference_batch_size,
                train_fn=train_fn,
            )
            summary["request"] = wanted
            write_json_atomic(directory / RESULT_FILE, summary)
            log(
                f"{tag}: test AUC {summary['test_auc']:.4f} gAUC {summary['test_gauc']:.4f} "
                f"log loss {summary['test_log_loss']:.4f} (epoch {summary['best_epoch']}, "
                f"selected on val AUC {summary['val_auc']:.4f}; {summary['wall_seconds']:.0f} s)"
            )
            outcomes.append(RunOutcome(model, seed, "trained", result=summary))
        except Exception as e:  # noqa: BLE001 -- one failing run must not stop the others
            message = " ".join(f"{type(e).__name__}: {e}".split())
            write_text_atomic(directory / ERROR_FILE, traceback.format_exc())
            log(f"{tag}: FAILED: {message} (traceback in {directory / ERROR_FILE})")
            outcomes.append(RunOutcome(model, seed, "failed", error=message))
        finally:
            keras.backend.clear_session()
            gc.collect()
    return outcomes
