"""``train``: the one training entry point used by the CLI, the tuner and the comparisons.

A custom loop (rather than ``Model.fit``) so that every piece of state a resumed run needs is
explicit: the data order is a function of (seed, epoch), the dropout seed generators are model
variables, the schedule reads the optimizer's step counter, and all of it is checkpointed after
every epoch together with the early-stopping state and the metric history.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mdaf_tf import config as config_lib
from mdaf_tf import data, schema
from mdaf_tf.config import ConfigError, ModelConfig, TrainConfig
from mdaf_tf.data import DataError
from mdaf_tf.training import checkpoint, evaluation
from mdaf_tf.training.early_stopping import EarlyStopping
from mdaf_tf.training.optimizer import build_optimizer
from mdaf_tf.training.progress import ProgressBar
from mdaf_tf.training.tensorboard import SummaryWriter

METRICS_COLUMNS = (
    "epoch",
    "train_loss",
    "train_auc",
    "val_auc",
    "val_log_loss",
    "learning_rate",
    "examples_per_second",
    "epoch_seconds",
)


@dataclasses.dataclass
class TrainResult:
    output_dir: Path
    data_dir: Path
    model: keras.Model  # with the best epoch's weights restored
    model_config: ModelConfig  # vocabulary sizes filled in from the data
    train_config: TrainConfig
    history: list[dict]  # one row per epoch, METRICS_COLUMNS
    best_epoch: int
    best: dict  # Predictions.summary() of the best epoch on validation
    final: dict  # {"auc", "log_loss"} of the last epoch on validation
    stopped_early: bool
    parameters: dict[str, int]
    metadata: dict
    val_predictions: evaluation.Predictions  # of the restored (best) model
    jit_compile: bool
    export_path: Path | None = None


# ----------------------------------------------------------------------------------------
# Data helpers.


def load_metadata(data_dir) -> dict:
    """The data directory's metadata, checked for the schema version this code reads."""
    path = Path(data_dir)
    if not (path / "metadata.json").is_file():
        raise DataError(f"{path}: not a dataset directory (no metadata.json)")
    meta = data.load_metadata(path)
    version = meta.get("schema_version")
    if version != schema.SCHEMA_VERSION:
        raise DataError(
            f"{path / 'metadata.json'}: schema_version {version!r} is not the one this code "
            f"reads ({schema.SCHEMA_VERSION})"
        )
    return meta


def metadata_sha256(data_dir) -> str:
    return hashlib.sha256((Path(data_dir) / "metadata.json").read_bytes()).hexdigest()


def split_size(data_dir, meta: dict, split: str) -> int:
    """Examples in ``split``: from the metadata when it says, else counted from the shards."""
    splits = meta.get("splits") or {}
    entry = splits.get(split)
    if isinstance(entry, int):
        return entry
    if isinstance(entry, dict):
        for key in ("examples", "num_examples", "count"):
            if isinstance(entry.get(key), int):
                return entry[key]
    files = sorted(str(p) for p in Path(data_dir).glob(f"{split}-*.tfrecord*"))
    if not files:
        raise DataError(f"{data_dir}: no {split}-*.tfrecord shards")
    compression = "GZIP" if files[0].endswith(".gz") else None
    ds = tf.data.TFRecordDataset(files, compression_type=compression)
    return int(ds.reduce(np.int64(0), lambda n, _: n + 1).numpy())


def fill_model_config(model_config: ModelConfig, meta: dict) -> ModelConfig:
    vocab = meta.get("vocab_sizes") or {}
    values = {
        "max_seq_len": int(meta.get("max_seq_len", model_config.max_seq_len)),
        "user_vocab_size": int(vocab.get(schema.USER_VOCAB, model_config.user_vocab_size)),
        "item_vocab_size": int(vocab.get(schema.ITEM_VOCAB, model_config.item_vocab_size)),
        "cate_vocab_size": int(vocab.get(schema.CATE_VOCAB, model_config.cate_vocab_size)),
    }
    return dataclasses.replace(model_config, **values)


def epoch_seed(seed: int, epoch: int) -> int:
    """The training data order of ``epoch`` (1-based) depends only on the seed and the epoch."""
    return (seed * 1_000_003 + epoch) % (2**31 - 1)


# ----------------------------------------------------------------------------------------
# Model helpers.


def default_build_model(name: str, config: ModelConfig) -> keras.Model:
    from mdaf_tf import models

    return models.build_model(name, config)


def count_parameters(model: keras.Model) -> dict[str, int]:
    try:
        from mdaf_tf import models

        return dict(models.count_parameters(model))
    except (ImportError, AttributeError):
        return {"total": int(sum(np.prod(v.shape) for v in model.trainable_variables))}


def resolve_jit_compile(setting: str, model_config: ModelConfig) -> bool:
    """"true"/"false" as given; "auto" = XLA unless the model's scan cannot run under it."""
    setting = str(setting).lower()
    if setting in ("true", "false"):
        return setting == "true"
    if setting != "auto":
        raise ConfigError(
            f"config field 'jit_compile' must be auto, true or false, got {setting!r}"
        )
    from mdaf_tf.ops import selective_scan

    resolve_impl = getattr(selective_scan, "resolve_impl", None)
    if resolve_impl is None:
        return True
    # The CPU custom op ("fast") has no XLA kernel; every other scan compiles under XLA.
    return resolve_impl(model_config.scan, jit_compile=False) != "fast"


def library_versions() -> dict:
    import matplotlib

    versions = {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "matplotlib": matplotlib.__version__,
    }
    try:
        import keras_rs

        versions["keras_rs"] = keras_rs.__version__
    except (ImportError, AttributeError):
        pass
    import mdaf_tf

    versions["mdaf_tf"] = mdaf_tf.__version__
    return versions


def write_json_atomic(path: Path, value) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_metrics_csv(path: Path, history: list[dict]) -> None:
    lines = [",".join(METRICS_COLUMNS)]
    for row in history:
        lines.append(",".join(_csv_value(row.get(c)) for c in METRICS_COLUMNS))
    write_text_atomic(path, "\n".join(lines) + "\n")


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def configs_dict(model_config: ModelConfig, train_config: TrainConfig) -> dict:
    """The ``{"model": {...}, "train": {...}}`` form that ``--config`` reads."""
    return {
        "model": config_lib.to_dict(model_config),
        "train": config_lib.to_dict(train_config),
    }


# Fields that may differ between a checkpoint and a resumed run without changing its result.
_RESUME_FREE_FIELDS = {"strategy"}


def _check_resume_configs(state: dict, model_config: ModelConfig, train_config: TrainConfig):
    saved = state.get("configs", {})
    current = configs_dict(model_config, train_config)
    for section in ("model", "train"):
        for key, value in current[section].items():
            if key in _RESUME_FREE_FIELDS:
                continue
            old = saved.get(section, {}).get(key)
            if old != value:
                raise checkpoint.CheckpointError(
                    f"cannot resume: {section} field '{key}' is {value!r} now but "
                    f"{old!r} in the checkpoint"
                )


# ----------------------------------------------------------------------------------------
# The training loop.


def _make_train_step(model, optimizer, loss_fn, jit_compile: bool):
    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def train_step(features, labels):
        with tf.GradientTape() as tape:
            outputs = model(features, training=True)
            probability = outputs["probability"]
            loss = loss_fn(tf.reshape(labels, (-1, 1)), probability)
            if model.losses:
                loss = loss + tf.add_n(model.losses)
        variables = model.trainable_variables
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return loss, probability

    return train_step


def _current_learning_rate(optimizer) -> float:
    lr = optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(lr))


def train(
    model_config: ModelConfig,
    train_config: TrainConfig,
    data_dir,
    output_dir,
    *,
    resume: bool = False,
    export_dir=None,
    progress: bool = True,
    write_reports: bool = True,
    on_epoch_end: Callable[[int, dict], None] | None = None,
    build_model: Callable[[str, ModelConfig], keras.Model] | None = None,
    log=print,
) -> TrainResult:
    """Train ``train_config.model`` on ``data_dir`` with the recipe in ``train_config``.

    Writes into ``output_dir``: ``checkpoints/``, ``metrics.csv``, ``tensorboard/``,
    ``config.json`` and (with ``write_reports``) ``report.md`` and the PNG plots. With
    ``resume`` it continues from the latest checkpoint in ``output_dir`` (CheckpointError when
    there is none). With ``export_dir`` the best model is exported there for TF Serving.
    ``on_epoch_end(epoch, row)`` sees each epoch's metrics row (the tuner reports from it).
    """
    data_dir = Path(data_dir)
    output_dir = Path(output_dir)
    build_model = build_model or default_build_model
    meta = load_metadata(data_dir)
    model_config = fill_model_config(model_config, meta)
    if train_config.epochs < 1:
        raise ConfigError(f"config field 'epochs' must be >= 1, got {train_config.epochs}")
    if train_config.batch_size < 1:
        raise ConfigError(f"config field 'batch_size' must be >= 1, got {train_config.batch_size}")
    jit_compile = resolve_jit_compile(train_config.jit_compile, model_config)

    checkpoint_dir = output_dir / "checkpoints"
    resume_from = None
    if resume:
        resume_from = checkpoint.latest(checkpoint_dir)
        if resume_from is None:
            raise checkpoint.CheckpointError(f"--resume: no checkpoint in {checkpoint_dir}")
        _check_resume_configs(checkpoint.read_state(resume_from), model_config, train_config)

    if train_config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(train_config.seed)

    n_train = split_size(data_dir, meta, "train")
    n_val = split_size(data_dir, meta, "val")
    if n_train == 0 or n_val == 0:
        raise DataError(f"{data_dir}: empty split (train {n_train}, val {n_val} examples)")
    batch_size = train_config.batch_size
    if n_train < batch_size:
        log(f"note: {n_train} training examples < batch size {batch_size}; using one batch")
        batch_size = n_train
    steps_per_epoch = n_train // batch_size
    if train_config.max_steps_per_epoch > 0:
        steps_per_epoch = min(steps_per_epoch, train_config.max_steps_per_epoch)

    model = build_model(train_config.model, model_config)
    optimizer = build_optimizer(train_config, model, steps_per_epoch)
    loss_fn = keras.losses.BinaryCrossentropy(label_smoothing=train_config.label_smoothing)
    train_step = _make_train_step(model, optimizer, loss_fn, jit_compile)
    predict_fn = evaluation.make_predict_fn(model, jit_compile)
    parameters = count_parameters(model)

    output_dir.mkdir(parents=True, exist_ok=True)
    stopper = EarlyStopping(patience=train_config.early_stopping_patience)
    history: list[dict] = []
    start_epoch = 0
    if resume_from is not None:
        state = checkpoint.restore(resume_from, model, optimizer)
        start_epoch = state["epoch"]
        stopper = EarlyStopping.from_state(state["early_stopping"])
        history = state["history"]
        log(f"resumed from {resume_from} (epoch {start_epoch} done)")
    else:
        for stale in ("checkpoints", "tensorboard"):
            shutil.rmtree(output_dir / stale, ignore_errors=True)

    write_json_atomic(
        output_dir / "config.json",
        {
            **configs_dict(model_config, train_config),
            "seed": train_config.seed,
            "jit_compile": jit_compile,
            "data_dir": str(data_dir.resolve()),
            "data_metadata_sha256": metadata_sha256(data_dir),
            "train_examples": n_train,
            "val_examples": n_val,
            "effective_batch_size": batch_size,
            "steps_per_epoch": steps_per_epoch,
            "versions": library_versions(),
        },
    )
    writer = SummaryWriter(output_dir / "tensorboard")
    val_steps = math.ceil(n_val / batch_size)
    best_predictions = None
    summary = None

    epoch = start_epoch
    done = stopper.stopped or start_epoch >= train_config.epochs
    while not done:
        epoch += 1
        dataset = data.make_dataset(
            data_dir,
            "train",
            batch_size,
            training=True,
            seed=epoch_seed(train_config.seed, epoch),
            drop_remainder=True,
        ).take(steps_per_epoch)
        bar = ProgressBar(
            f"epoch {epoch}/{train_config.epochs}", steps_per_epoch, enabled=progress
        )
        losses, train_labels, train_probs = [], [], []
        for features, labels in dataset:
            loss, probability = train_step(features, labels)
            losses.append(float(loss))
            train_labels.append(labels.numpy().reshape(-1))
            train_probs.append(probability.numpy().reshape(-1))
            bar.update(int(labels.shape[0]), loss=losses[-1])
        bar.close(loss=float(np.mean(losses)) if losses else float("nan"))
        train_seconds = bar.elapsed
        examples_per_second = bar.examples_per_second

        val_dataset = data.make_dataset(data_dir, "val", batch_size, training=False)
        predictions = evaluation.predict_dataset(
            predict_fn, val_dataset, batch_size, val_steps, progress, label="  validation"
        )
        summary = predictions.summary()
        row = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "train_auc": _exact_auc(train_labels, train_probs),
            "val_auc": summary["auc"],
            "val_log_loss": summary["log_loss"],
            "learning_rate": _current_learning_rate(optimizer),
            "examples_per_second": examples_per_second,
            "epoch_seconds": train_seconds,
        }
        history.append(row)
        if stopper.update(epoch, summary["auc"]):
            best_predictions = predictions
        log(
            f"epoch {epoch}: train_loss {row['train_loss']:.4f} train_auc {row['train_auc']:.4f}"
            f" val_auc {row['val_auc']:.4f} val_log_loss {row['val_log_loss']:.4f}"
            f" lr {row['learning_rate']:.3g} {examples_per_second:.0f} examples/s"
        )
        writer.scalars(epoch, {k: row[k] for k in METRICS_COLUMNS[1:]})
        if predictions.gates is not None:
            writer.histogram(epoch, "val_gate", predictions.gates)
        write_metrics_csv(output_dir / "metrics.csv", history)
        checkpoint.save(
            checkpoint_dir,
            epoch,
            model,
            optimizer,
            {
                "epoch": epoch,
                "early_stopping": stopper.state(),
                "history": history,
                "configs": configs_dict(model_config, train_config),
            },
            keep={stopper.best_epoch},
        )
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
        done = stopper.stopped or epoch >= train_config.epochs
        if stopper.stopped:
            log(
                f"early stopping: no val_auc improvement for {stopper.wait} epochs; "
                f"restoring epoch {stopper.best_epoch}"
            )
    writer.close()
    write_metrics_csv(output_dir / "metrics.csv", history)

    best_dir = checkpoint.epoch_dirs(checkpoint_dir).get(stopper.best_epoch)
    if best_dir is None:
        raise checkpoint.CheckpointError(f"best epoch {stopper.best_epoch} checkpoint is missing")
    checkpoint.load_model_weights(best_dir, model)
    if best_predictions is None:
        val_dataset = data.make_dataset(data_dir, "val", batch_size, training=False)
        best_predictions = evaluation.predict_dataset(
            predict_fn, val_dataset, batch_size, val_steps, progress, label="  validation"
        )
    best = best_predictions.summary()
    last = history[-1]
    result = TrainResult(
        output_dir=output_dir,
        data_dir=data_dir,
        model=model,
        model_config=model_config,
        train_config=train_config,
        history=history,
        best_epoch=stopper.best_epoch,
        best=best,
        final={"auc": last["val_auc"], "log_loss": last["val_log_loss"]},
        stopped_early=stopper.stopped,
        parameters=parameters,
        metadata=meta,
        val_predictions=best_predictions,
        jit_compile=jit_compile,
    )
    if write_reports:
        from mdaf_tf.training import plots, report

        write_text_atomic(output_dir / "report.md", report.training_report(result))
        plots.learning_curves(history, stopper.best_epoch, output_dir / "learning_curves.png")
        if best_predictions.gates is not None:
            plots.gate_histogram(best_predictions.gates, output_dir / "gate_histogram.png")
    if export_dir is not None:
        from mdaf_tf import export

        started = time.perf_counter()
        result.export_path = export.export_model(
            model, model_config, train_config.model, data_dir, export_dir,
            parameters=parameters,
        )
        log(f"exported to {result.export_path} ({time.perf_counter() - started:.0f}s)")
    return result


def _exact_auc(label_parts, prob_parts) -> float:
    from mdaf_tf.training.metrics import exact_auc

    if not label_parts:
        return float("nan")
    return exact_auc(np.concatenate(label_parts), np.concatenate(prob_parts))
