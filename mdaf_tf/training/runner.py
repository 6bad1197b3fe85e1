"""``train``: the one training entry point used by the CLI, the tuner and the comparisons.

A custom loop (rather than ``Model.fit``) so that every piece of state a resumed run needs is
explicit: the data order is a function of (seed, epoch), the dropout seed generators are model
variables, the schedule reads the optimizer's step counter, and all of it is checkpointed after
every epoch together with the early-stopping state and the metric history.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mdaf_tf import config as config_lib
from mdaf_tf import data, distribute, schema
from mdaf_tf.config import ConfigError, ModelConfig, TrainConfig
from mdaf_tf.data import DataError
from mdaf_tf.files import write_json_atomic, write_text_atomic
from mdaf_tf.training import checkpoint, evaluation
from mdaf_tf.training.early_stopping import EarlyStopping
from mdaf_tf.training.optimizer import build_optimizer
from mdaf_tf.training.progress import ProgressBar
from mdaf_tf.training.report import SPLIT_LABELS
from mdaf_tf.training.tensorboard import SummaryWriter

METRICS_COLUMNS = (
    "epoch",
    "train_loss",
    "train_auc",
    "val_auc",
    "val_log_loss",
    "val_gauc",
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
    best: dict  # Predictions.summary() of the best epoch on validation (what selects it)
    final: dict  # {"auc", "log_loss"} of the last epoch on validation
    stopped_early: bool
    parameters: dict[str, int]
    metadata: dict
    val_predictions: evaluation.Predictions  # of the restored (best) model
    jit_compile: bool
    export_path: Path | None = None
    skipped_shards: dict | None = None  # {path: reason} left out by skip_corrupt_shards
    # Predictions.summary() of the restored (best-validation) weights on the test split,
    # computed once after training; None with evaluate_test=False
    test: dict | None = None
    test_predictions: evaluation.Predictions | None = None


# ----------------------------------------------------------------------------------------
# Data helpers.


def split_size(data_dir, meta: dict, split: str) -> int:
    """Examples in ``split``: from the metadata when it says, else counted from the shards.
    (With corrupt shards skipped the runner counts the good shards instead.)"""
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
    from mdaf_tf.ops.selective_scan import resolve_impl

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


def check_data_shards(data_dir, meta: dict, skip_corrupt: bool, log,
                      splits=schema.SPLITS) -> tuple[dict, dict]:
    """Read every shard of ``splits`` once (``--skip-corrupt-shards``). Returns
    ({split: examples}, {path: reason} of the skipped shards).

    A corrupt or truncated shard is a DataError naming it unless ``skip_corrupt``; a split
    whose shards hold fewer records than the metadata says (a shard cut at a record
    boundary) is reported the same way."""
    sizes, skipped = {}, {}
    for split in splits:
        good, bad = data.check_shards(str(data_dir), split)
        if bad and not skip_corrupt:
            raise DataError(_corrupt_message(bad))
        skipped.update(bad)
        if not good:
            raise DataError(f"{data_dir}: every {split} shard is corrupt")
        sizes[split] = sum(good.values())
        expected = _metadata_count(meta, split)
        if not bad and expected is not None and sizes[split] != expected:
            message = (f"{data_dir}: the {split} shards hold {sizes[split]} records but "
                       f"metadata.json says {expected} (a truncated or replaced shard?)")
            if not skip_corrupt:
                raise DataError(message)
            log(f"warning: {message}")
    for path, reason in skipped.items():
        log(f"skipped corrupt shard {path}: {reason}")
    if skipped:
        counts = ", ".join(f"{n} {split}" for split, n in sizes.items())
        log(f"--skip-corrupt-shards: left out {len(skipped)} shard(s); using {counts} examples")
    return sizes, skipped


def split_sizes(data_dir, meta: dict, splits, skip_corrupt_shards: bool, log):
    """({split: examples}, {path: reason} of skipped shards) for ``splits``; DataError
    naming the directory when one of them is empty. Only the splits named are opened."""
    if skip_corrupt_shards:
        sizes, skipped = check_data_shards(data_dir, meta, True, log, splits)
    else:
        skipped = {}
        for split in splits:
            data.shard_paths(str(data_dir), split)  # a split without shards fails now
        try:
            sizes = {split: split_size(data_dir, meta, split) for split in splits}
        except tf.errors.DataLossError as e:
            raise _find_corrupt_shards(data_dir, e, splits) from None
    if not all(sizes.values()):
        counts = ", ".join(f"{split} {n}" for split, n in sizes.items())
        raise DataError(f"{data_dir}: empty split ({counts} examples)")
    return sizes, skipped


def _metadata_count(meta: dict, split: str) -> int | None:
    entry = (meta.get("splits") or {}).get(split)
    if isinstance(entry, int):
        return entry
    if isinstance(entry, dict):
        for key in ("examples", "num_examples", "count"):
            if isinstance(entry.get(key), int):
                return entry[key]
    return None


def _corrupt_message(bad: dict) -> str:
    listed = "; ".join(f"{path}: {reason}" for path, reason in bad.items())
    return (f"corrupt or truncated TFRecord shard(s): {listed} (rebuild the dataset, or pass "
            "--skip-corrupt-shards to train without them)")


def _find_corrupt_shards(data_dir, error, splits=schema.SPLITS) -> DataError:
    """Turn a DataLossError raised while iterating into a DataError naming the shards."""
    bad = {}
    for split in splits:
        bad.update(data.check_shards(str(data_dir), split)[1])
    if bad:
        return DataError(_corrupt_message(bad))
    return DataError(f"{data_dir}: reading the data failed: {str(error).splitlines()[0][:200]}")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C: the run stopped after writing ``checkpoint`` (resume with ``--resume``)."""

    def __init__(self, checkpoint_path: Path | None):
        super().__init__(str(checkpoint_path))
        self.checkpoint = checkpoint_path


class _InterruptFlag:
    """While active, the first SIGINT only sets ``requested`` (the loop finishes its step and
    writes a checkpoint); a second SIGINT interrupts at once. Only in the main thread."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupt: finishing the current step and writing a checkpoint "
              "(Ctrl-C again to stop at once)", flush=True)

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


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


def _make_distributed_train_step(strategy, model, optimizer, loss_fn, clipnorm: float,
                                 global_batch_size: int, jit_compile: bool, element_spec):
    """One step of ``strategy.run`` over a distributed batch; returns (mean loss over the
    global batch, this worker's per-replica probabilities and labels).

    Keras 3 clips gradients per replica before it sums them across replicas, which would
    make the global clip-norm depend on the replica count. So the gradients are summed
    here, clipped by their global norm, and divided by the replica count before the
    optimizer (whose own clipping is off) sums the replicas' identical copies again."""
    replicas = strategy.num_replicas_in_sync

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def gradients(features, labels):
        with tf.GradientTape() as tape:
            outputs = model(features, training=True)
            probability = outputs["probability"]
            per_example = loss_fn(tf.reshape(labels, (-1, 1)), probability)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)
            if model.losses:
                loss = loss + tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        return loss, probability, tape.gradient(loss, model.trainable_variables)

    def replica_step(features, labels):
        loss, probability, grads = gradients(features, labels)
        # Embedding gradients arrive as IndexedSlices, whose all-reduce concatenates the
        # replicas' rows; the optimizer's update is dense anyway, so densify first.
        grads = [tf.convert_to_tensor(g) for g in grads]
        grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
        if clipnorm > 0:
            grads, _ = tf.clip_by_global_norm(grads, clipnorm)
        grads = [g / replicas for g in grads]
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss, probability

    # A fixed signature: each epoch's new distributed dataset would otherwise retrace.
    @tf.function(input_signature=list(element_spec))
    def train_step(features, labels):
        loss, probability = strategy.run(replica_step, args=(features, labels))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None), probability

    return train_step


def _local_values(strategy, value) -> np.ndarray:
    parts = strategy.experimental_local_results(value)
    return np.concatenate([np.asarray(p).reshape(-1) for p in parts])


def _current_learning_rate(optimizer) -> float:
    lr = optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(lr))


def predict_split(predict_fn, data_dir, split: str, batch_size: int, *, progress: bool = False,
                  exclude=(), examples: int | None = None) -> evaluation.Predictions:
    """One in-order pass of ``predict_fn`` over ``split``, with the user keys (for gAUC)
    read beside the model inputs; ``examples`` only sizes the progress bar."""
    dataset = data.make_dataset(data_dir, split, batch_size, training=False, exclude=exclude,
                                extra_features=(schema.USER_KEY,))
    steps = math.ceil(examples / batch_size) if examples else None
    return evaluation.predict_dataset(predict_fn, dataset, batch_size, steps, progress,
                                      label=f"  {SPLIT_LABELS[split]}")


def _restored_predictions(read_split, val_predictions, evaluate_test: bool, data_dir, splits):
    """(validation, test) predictions of the restored weights. Validation is reused from
    the best epoch when this process ran it (a resumed run recomputes it); test is read
    here for the first and only time, or not at all without ``evaluate_test``."""
    try:
        if val_predictions is None:
            val_predictions = read_split("val")
        return val_predictions, read_split("test") if evaluate_test else None
    except tf.errors.DataLossError as e:
        raise _find_corrupt_shards(data_dir, e, splits) from None


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
    skip_corrupt_shards: bool = False,
    evaluate_test: bool = True,
) -> TrainResult:
    """Train ``train_config.model`` on ``data_dir`` with the recipe in ``train_config``.

    Writes into ``output_dir``: ``checkpoints/``, ``metrics.csv``, ``tensorboard/``,
    ``config.json`` and (with ``write_reports``) ``report.md`` and the PNG plots. With
    ``resume`` it continues from the latest checkpoint in ``output_dir`` (CheckpointError when
    there is none). With ``export_dir`` the best model is exported there for TF Serving.
    ``on_epoch_end(epoch, row)`` sees each epoch's metrics row (the tuner reports from it).

    Early stopping and the restored epoch follow validation AUC only. Once the best weights
    are restored, the test split is evaluated once (``TrainResult.test``); with
    ``evaluate_test=False`` (the tuner's trials) the test split is never opened.

    ``train_config.strategy`` picks the ``tf.distribute`` strategy (see mdaf_tf.distribute);
    the global batch is ``batch_size`` whatever the replica count. Under
    ``multiworker`` only the chief writes into ``output_dir`` and ``export_dir``; the other
    workers write into a temporary directory (deleted at the end) and, with ``resume``,
    read the chief's checkpoints from ``output_dir`` (a shared file system).

    A corrupt or truncated shard met while reading is a DataError naming it (the shards are
    then checked one by one to find it). With ``skip_corrupt_shards`` every shard is read
    once up front and the corrupt ones are left out and reported. Ctrl-C finishes the
    current step, writes ``checkpoints/interrupted`` and raises TrainingInterrupted; a
    resumed run continues from that step with the same data order.
    """
    data_dir = Path(data_dir)
    output_dir = Path(output_dir)
    build_model = build_model or default_build_model
    meta = data.load_metadata(data_dir)
    model_config = fill_model_config(model_config, meta)
    if train_config.epochs < 1:
        raise ConfigError(f"config field 'epochs' must be >= 1, got {train_config.epochs}")
    if train_config.batch_size < 1:
        raise ConfigError(f"config field 'batch_size' must be >= 1, got {train_config.batch_size}")
    jit_compile = resolve_jit_compile(train_config.jit_compile, model_config)
    strategy = distribute.make_strategy(train_config.strategy)
    distributed = train_config.strategy != "default"
    chief = distribute.is_chief(strategy)
    write_dir = output_dir if chief else Path(tempfile.mkdtemp(prefix="mdaf-worker-"))

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

    splits = schema.SPLITS if evaluate_test else ("train", "val")
    sizes, skipped = split_sizes(data_dir, meta, splits, skip_corrupt_shards, log)
    n_train, n_val = sizes["train"], sizes["val"]
    exclude = tuple(skipped)
    batch_size = train_config.batch_size
    if n_train < batch_size:
        log(f"note: {n_train} training examples < batch size {batch_size}; using one batch")
        batch_size = n_train
    if distributed:
        replicas = strategy.num_replicas_in_sync
        if n_train < train_config.batch_size:
            batch_size = max(replicas, batch_size - batch_size % replicas)
        per_replica = distribute.per_replica_batch_size(batch_size, strategy)
        log(f"strategy {train_config.strategy}: {replicas} replicas, global batch {batch_size}"
            f" ({per_replica} per replica){'' if chief else '; not the chief: writing to '}"
            f"{'' if chief else str(write_dir)}")
    steps_per_epoch = n_train // batch_size
    if train_config.max_steps_per_epoch > 0:
        steps_per_epoch = min(steps_per_epoch, train_config.max_steps_per_epoch)

    with strategy.scope():
        model = build_model(train_config.model, model_config)
        optimizer = build_optimizer(train_config, model, steps_per_epoch)
    if distributed:
        optimizer.global_clipnorm = None  # clipped after the cross-replica sum instead
        loss_fn = keras.losses.BinaryCrossentropy(
            label_smoothing=train_config.label_smoothing, reduction=None
        )
        train_step = None  # made with the first distributed dataset's element spec
    else:
        loss_fn = keras.losses.BinaryCrossentropy(label_smoothing=train_config.label_smoothing)
        train_step = _make_train_step(model, optimizer, loss_fn, jit_compile)
    predict_fn = evaluation.make_predict_fn(model, jit_compile)
    parameters = count_parameters(model)

    output_dir = write_dir
    checkpoint_dir = output_dir / "checkpoints"
    output_dir.mkdir(parents=True, exist_ok=True)
    stopper = EarlyStopping(patience=train_config.early_stopping_patience)
    history: list[dict] = []
    start_epoch = 0
    start_step = 0
    partial: dict = {}
    if resume_from is not None:
        state = checkpoint.restore(resume_from, model, optimizer)
        start_epoch = state["epoch"]
        start_step = int(state.get("step", 0))
        partial = checkpoint.read_partial(resume_from)
        stopper = EarlyStopping.from_state(state["early_stopping"])
        history = state["history"]
        where = f", {start_step} steps of epoch {start_epoch + 1}" if start_step else ""
        log(f"resumed from {resume_from} (epoch {start_epoch} done{where})")
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
            "data_metadata_sha256": data.metadata_sha256(data_dir),
            "train_examples": n_train,
            "val_examples": n_val,
            "test_examples": sizes.get("test"),
            "effective_batch_size": batch_size,
            "steps_per_epoch": steps_per_epoch,
            "strategy": train_config.strategy,
            "replicas": strategy.num_replicas_in_sync,
            "skipped_shards": skipped,
            "versions": library_versions(),
        },
    )
    writer = SummaryWriter(output_dir / "tensorboard")
    best_predictions = None
    summary = None

    def state_dict(epochs_done: int, step: int = 0) -> dict:
        state = {
            "epoch": epochs_done,
            "early_stopping": stopper.state(),
            "history": history,
            "configs": configs_dict(model_config, train_config),
        }
        if step:
            state["step"] = step
        return state

    def read_split(split: str) -> evaluation.Predictions:
        return predict_split(predict_fn, data_dir, split, batch_size, progress=progress,
                             exclude=exclude, examples=sizes.get(split))

    def train_batches(epoch: int, skip_steps: int):
        seed = epoch_seed(train_config.seed, epoch)
        if not distributed:
            dataset = data.make_dataset(
                data_dir, "train", batch_size, training=True, seed=seed,
                drop_remainder=True, exclude=exclude,
            ).take(steps_per_epoch)
            return iter(dataset.skip(skip_steps) if skip_steps else dataset)

        def dataset_fn(context):
            # Each input pipeline feeds num_replicas / num_pipelines replicas one batch each
            # per step; repeat() keeps every worker's step count equal with uneven shards.
            local = context.num_replicas_in_sync // context.num_input_pipelines
            per_replica = context.get_per_replica_batch_size(batch_size)
            dataset = data.make_dataset(
                data_dir, "train", per_replica, training=True, seed=seed, repeat=True,
                drop_remainder=True, input_context=context, exclude=exclude,
            )
            return dataset.take(steps_per_epoch * local).skip(skip_steps * local)

        nonlocal train_step
        dataset = strategy.distribute_datasets_from_function(dataset_fn)
        if train_step is None:
            train_step = _make_distributed_train_step(
                strategy, model, optimizer, loss_fn, train_config.clipnorm, batch_size,
                jit_compile, dataset.element_spec,
            )
        return iter(dataset)

    epoch = start_epoch
    done = stopper.stopped or start_epoch >= train_config.epochs
    interrupt = _InterruptFlag()
    try:
        with interrupt:
            while not done:
                epoch += 1
                bar = ProgressBar(
                    f"epoch {epoch}/{train_config.epochs}", steps_per_epoch, enabled=progress
                )
                losses = list(partial.get("losses", np.zeros(0)).tolist())
                train_labels = [partial["labels"]] if "labels" in partial else []
                train_probs = [partial["probabilities"]] if "probabilities" in partial else []
                step = start_step
                batches = train_batches(epoch, start_step)
                start_step, partial = 0, {}
                while step < steps_per_epoch:
                    try:
                        features, labels = next(batches)
                    except StopIteration:
                        bad = data.check_shards(str(data_dir), "train")[1]
                        if bad:
                            raise DataError(_corrupt_message(bad)) from None
                        raise DataError(
                            f"{data_dir}: the train split ran out after {step} of "
                            f"{steps_per_epoch} steps of {batch_size}: its shards hold fewer "
                            "examples than metadata.json says (a truncated or replaced shard?)"
                        ) from None
                    loss, probability = train_step(features, labels)
                    step += 1
                    losses.append(float(loss))
                    if distributed:
                        train_labels.append(_local_values(strategy, labels))
                        train_probs.append(_local_values(strategy, probability))
                    else:
                        train_labels.append(labels.numpy().reshape(-1))
                        train_probs.append(probability.numpy().reshape(-1))
                    bar.update(int(train_labels[-1].shape[0]), loss=losses[-1])
                    if interrupt.requested and step < steps_per_epoch:
                        bar.close(loss=float(np.mean(losses)))
                        saved = checkpoint.save_interrupted(
                            checkpoint_dir, model, optimizer, state_dict(epoch - 1, step),
                            {"losses": np.asarray(losses, np.float64),
                             "labels": np.concatenate(train_labels),
                             "probabilities": np.concatenate(train_probs)},
                        )
                        raise TrainingInterrupted(saved)
                bar.close(loss=float(np.mean(losses)) if losses else float("nan"))
                train_seconds = bar.elapsed
                examples_per_second = bar.examples_per_second

                predictions = read_split("val")
                summary = predictions.summary()
                row = {
                    "epoch": epoch,
                    "train_loss": float(np.mean(losses)),
                    "train_auc": _exact_auc(train_labels, train_probs),
                    "val_auc": summary["auc"],
                    "val_log_loss": summary["log_loss"],
                    "val_gauc": summary["gauc"],
                    "learning_rate": _current_learning_rate(optimizer),
                    "examples_per_second": examples_per_second,
                    "epoch_seconds": train_seconds,
                }
                history.append(row)
                if stopper.update(epoch, summary["auc"]):
                    best_predictions = predictions
                log(
                    f"epoch {epoch}: train_loss {row['train_loss']:.4f} "
                    f"train_auc {row['train_auc']:.4f} val_auc {row['val_auc']:.4f} "
                    f"val_log_loss {row['val_log_loss']:.4f} val_gauc {row['val_gauc']:.4f} "
                    f"lr {row['learning_rate']:.3g} "
                    f"{examples_per_second:.0f} examples/s"
                )
                writer.scalars(epoch, {k: row[k] for k in METRICS_COLUMNS[1:]})
                if predictions.gates is not None:
                    writer.histogram(epoch, "val_gate", predictions.gates)
                write_metrics_csv(output_dir / "metrics.csv", history)
                saved = checkpoint.save(
                    checkpoint_dir, epoch, model, optimizer, state_dict(epoch),
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
                if interrupt.requested and not done:
                    raise TrainingInterrupted(saved)
    except tf.errors.DataLossError as e:
        raise _find_corrupt_shards(data_dir, e, splits) from None
    writer.close()
    write_metrics_csv(output_dir / "metrics.csv", history)

    best_dir = checkpoint.epoch_dirs(checkpoint_dir).get(stopper.best_epoch)
    if best_dir is None:
        raise checkpoint.CheckpointError(f"best epoch {stopper.best_epoch} checkpoint is missing")
    checkpoint.load_model_weights(best_dir, model)
    best_predictions, test_predictions = _restored_predictions(
        read_split, best_predictions, evaluate_test, data_dir, splits)
    test = test_predictions.summary() if test_predictions is not None else None
    if test is not None:
        log(f"test (best epoch {stopper.best_epoch}, selected on validation AUC): auc "
            f"{test['auc']:.4f} gauc {test['gauc']:.4f} log_loss {test['log_loss']:.4f}")
    last = history[-1]
    result = TrainResult(
        output_dir=output_dir,
        skipped_shards=skipped,
        data_dir=data_dir,
        model=model,
        model_config=model_config,
        train_config=train_config,
        history=history,
        best_epoch=stopper.best_epoch,
        best=best_predictions.summary(),
        final={"auc": last["val_auc"], "log_loss": last["val_log_loss"]},
        stopped_early=stopper.stopped,
        parameters=parameters,
        metadata=meta,
        val_predictions=best_predictions,
        jit_compile=jit_compile,
        test=test,
        test_predictions=test_predictions,
    )
    if write_reports:
        from mdaf_tf.training import plots, report

        write_text_atomic(output_dir / "report.md", report.training_report(result))
        plots.learning_curves(history, stopper.best_epoch, output_dir / "learning_curves.png")
        if best_predictions.gates is not None:
            plots.gate_histogram(best_predictions.gates, output_dir / "gate_histogram.png")
    if export_dir is not None:
        from mdaf_tf import export

        if not chief:
            export_dir = write_dir / "export"
        started = time.perf_counter()
        result.export_path = export.export_model(
            model, model_config, train_config.model, data_dir, export_dir,
            parameters=parameters,
        )
        log(f"exported to {result.export_path} ({time.perf_counter() - started:.0f}s)")
    if not chief:
        shutil.rmtree(write_dir, ignore_errors=True)
        result.export_path = None
    return result


def _exact_auc(label_parts, prob_parts) -> float:
    from mdaf_tf.training.metrics import exact_auc

    if not label_parts:
        return float("nan")
    return exact_auc(np.concatenate(label_parts), np.concatenate(prob_parts))
