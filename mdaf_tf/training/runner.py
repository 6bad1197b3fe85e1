"""``train``: the one training entry point of the CLI, the tuner and the comparisons.

It sizes the data, builds the model and a ``ClickTrainer`` around it, compiles it with the
recipe (AdamW + warmup-cosine, loss from logits with label smoothing, Keras's AUC as the
train AUC) and calls ``fit`` with the project's callbacks::

    EpochProgress -> ExactEvaluation (val_auc, val_log_loss, val_gauc) -> GateStatistics
    -> EarlyStopping(val_auc, mode="max", restore_best_weights) -> MetricsLogger
    -> RunReport -> the caller's callbacks -> TrainingBackup -> [the on_epoch_end hook]

``RunReport`` ends the run when ``fit`` does: it evaluates the restored (best-validation)
weights once on test and writes the report and plots. Then the runner exports.

The training data is one dataset holding every remaining epoch in turn, epoch e shuffled with
``epoch_seed(seed, e)``, so the order is a function of the seed and the epoch whether or not
the run was resumed.
"""

from __future__ import annotations

import dataclasses
import functools
import platform
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mdaf_tf import config as config_lib
from mdaf_tf import data, distribute
from mdaf_tf.config import ConfigError, TrainConfig
from mdaf_tf.data import DataError, schema, splits
from mdaf_tf.data.splits import epoch_seed
from mdaf_tf.evaluation.exact import ExactEvaluation, predict_split
from mdaf_tf.files import write_json_atomic
from mdaf_tf.models import embedding_sizes
from mdaf_tf.models.config import ModelConfig, fill_model_config
from mdaf_tf.precision import needs_loss_scaling
from mdaf_tf.training import checkpoint, recipe
from mdaf_tf.training.backup import TrainingBackup, TrainingInterrupted
from mdaf_tf.training.epoch_progress import EpochProgress
from mdaf_tf.training.gate_statistics import GateStatistics
from mdaf_tf.training.metrics_logger import METRICS_COLUMNS, MetricsLogger
from mdaf_tf.training.optimizer import build_optimizer
from mdaf_tf.training.request import TrainRequest
from mdaf_tf.training.result import TrainResult
from mdaf_tf.training.run_report import RunReport
from mdaf_tf.training.tensorboard import SummaryWriter
from mdaf_tf.training.trainer import ClickTrainer

__all__ = ["METRICS_COLUMNS", "TrainRequest", "TrainResult", "TrainingInterrupted",
           "epoch_seed", "fill_model_config", "predict_split", "train"]


@dataclasses.dataclass
class _Plan:
    """What the data and the configs decide before anything is built."""

    data_dir: Path
    output_dir: Path  # where this process writes (a temporary directory on non-chiefs)
    meta: dict
    model_config: ModelConfig
    sizes: dict
    skipped: dict
    batch_size: int
    steps_per_epoch: int
    jit_compile: bool
    strategy: object
    chief: bool
    resume_state: dict | None  # state.json of the checkpoint a resumed run continues from
    train_config: TrainConfig  # with the size rule's choices filled in
    size_rule: dict  # what the rule chose (recipe.resolve), recorded in config.json


# ----------------------------------------------------------------------------------------
# Helpers used by other modules too.


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
    return resolve_impl(getattr(model_config, "scan", "auto"), jit_compile=False) != "fast"


def library_versions() -> dict:
    import matplotlib

    import mdaf_tf

    versions = {"python": platform.python_version(), "tensorflow": tf.__version__,
                "keras": keras.__version__, "numpy": np.__version__,
                "matplotlib": matplotlib.__version__, "mdaf_tf": mdaf_tf.__version__}
    try:
        import keras_rs

        versions["keras_rs"] = keras_rs.__version__
    except (ImportError, AttributeError):
        pass
    return versions


def configs_dict(model_config: ModelConfig, train_config: TrainConfig) -> dict:
    """The ``{"model": {...}, "train": {...}}`` form that ``--config`` reads."""
    return {
        "model": config_lib.to_dict(model_config),
        "train": config_lib.to_dict(train_config),
    }


# Fields that may differ between a checkpoint and a resumed run without changing its result.
_RESUME_FREE_FIELDS = {"strategy", "backup_every"}


def check_resume_configs(state: dict, model_config: ModelConfig, train_config: TrainConfig):
    from mdaf_tf.models import legacy_config

    saved = dict(state.get("configs", {}))
    current = configs_dict(model_config, train_config)
    saved["model"] = legacy_config.convert(saved.get("model", {}), set(current["model"]))
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


class _InterruptFlag:
    """While active, the first SIGINT only sets ``requested`` (training finishes its step and
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
# Planning: data sizes, batch, steps, strategy, resume.


def _resume_state(checkpoint_dir: Path, resume: bool, log) -> dict | None:
    if not resume:
        return None
    latest = checkpoint.latest(checkpoint_dir)
    if latest is None:
        log(f"--resume: nothing to resume in {checkpoint_dir}; starting fresh")
        return None
    state = checkpoint.read_state(latest)
    checkpoint.check_format(latest, state)
    return state


def _batch_and_steps(train_config: TrainConfig, n_train: int, strategy, log) -> tuple[int, int]:
    batch_size = train_config.batch_size
    if n_train < batch_size:
        log(f"note: {n_train} training examples < batch size {batch_size}; using one batch")
        batch_size = n_train
        if train_config.strategy != "default":
            replicas = strategy.num_replicas_in_sync
            batch_size = max(replicas, batch_size - batch_size % replicas)
    steps = n_train // batch_size
    if train_config.max_steps_per_epoch > 0:
        steps = min(steps, train_config.max_steps_per_epoch)
    return batch_size, steps


def _plan(model_config, train_config, data_dir, output_dir, resume, skip_corrupt_shards,
          evaluate_test, log) -> _Plan:
    meta = data.load_metadata(data_dir)
    model_config = fill_model_config(model_config, meta)
    config_lib.backup_interval(train_config.backup_every)
    jit_compile = resolve_jit_compile(train_config.jit_compile, model_config)
    strategy = distribute.make_strategy(train_config.strategy)
    chief = distribute.is_chief(strategy)
    wanted = schema.SPLITS if evaluate_test else ("train", "val")
    sizes, skipped = splits.split_sizes(data_dir, meta, wanted, skip_corrupt_shards, log)
    train_config, size_rule = recipe.resolve(train_config, sizes["train"])
    model_config, widths = embedding_sizes.with_width_rule(model_config, sizes["train"])
    size_rule["embedding_widths"] = {"rule": embedding_sizes.WIDTH_RULE, "chose": widths}
    config_lib.check_positive(train_config, ("epochs", "batch_size"))
    chosen = {**size_rule["chose"], **{f"{v} width": w for v, w in widths.items()}}
    if chosen:
        log("size rule (" + ", ".join(f"{k} {v:g}" for k, v in chosen.items())
            + f") for {sizes['train']} training examples")
    resume_state = _resume_state(output_dir / "checkpoints", resume, log)
    if resume_state is not None:
        check_resume_configs(resume_state, model_config, train_config)
    batch_size, steps = _batch_and_steps(train_config, sizes["train"], strategy, log)
    distributed = train_config.strategy != "default"
    # checks that the global batch splits evenly over the replicas
    per_replica = distribute.per_replica_batch_size(batch_size, strategy) if distributed else None
    write_dir = output_dir if chief else Path(tempfile.mkdtemp(prefix="mdaf-worker-"))
    if distributed:
        log(f"strategy {train_config.strategy}: {strategy.num_replicas_in_sync} replicas, "
            f"global batch {batch_size} ({per_replica} per replica)"
            + ("" if chief else f"; not the chief: writing to {write_dir}"))
    return _Plan(data_dir, write_dir, meta, model_config, sizes, skipped, batch_size, steps,
                 jit_compile, strategy, chief, resume_state, train_config, size_rule)


def _write_config_json(plan: _Plan, train_config: TrainConfig) -> None:
    write_json_atomic(plan.output_dir / "config.json", {
        **configs_dict(plan.model_config, train_config),
        "seed": train_config.seed,
        "jit_compile": plan.jit_compile,
        "data_dir": str(plan.data_dir.resolve()),
        "data_metadata_sha256": data.metadata_sha256(plan.data_dir),
        "train_examples": plan.sizes["train"],
        "val_examples": plan.sizes["val"],
        "test_examples": plan.sizes.get("test"),
        "effective_batch_size": plan.batch_size,
        "size_rule": plan.size_rule,
        "steps_per_epoch": plan.steps_per_epoch,
        "strategy": train_config.strategy,
        "replicas": plan.strategy.num_replicas_in_sync,
        "skipped_shards": plan.skipped,
        "versions": library_versions(),
    })


# ----------------------------------------------------------------------------------------
# The model, the data and the callbacks.


def compile_trainer(click_model, train_config: TrainConfig, steps_per_epoch: int,
                    jit_compile: bool, strategy=None) -> ClickTrainer:
    """A ``ClickTrainer`` around ``click_model`` compiled with the recipe: AdamW with the
    warmup-cosine schedule and weight decay, clip-norm (after the cross-replica sum under a
    multi-replica ``strategy``), label-smoothed cross-entropy from logits, Keras's AUC
    named ``auc``; a float16 model's optimizer is wrapped in ``LossScaleOptimizer``. Call
    ``fit`` inside ``strategy.scope()``.

    The trainer itself is created outside the strategy's scope (the optimizer and metrics
    inside it): Keras 3.15's ``fit`` then builds it at the first traced step instead of in
    ``_maybe_symbolic_build``, whose ``strategy.reduce`` over a dict of per-replica
    features fails under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585)."""
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    trainer = ClickTrainer(click_model,
                           cross_replica_clipnorm=train_config.clipnorm if replicas > 1 else 0.0)
    with strategy.scope():
        optimizer = build_optimizer(train_config, click_model, steps_per_epoch)
        if replicas > 1:
            optimizer.global_clipnorm = None  # clipped after the cross-replica sum instead
        if needs_loss_scaling(click_model):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        trainer.compile(
            optimizer=optimizer,
            loss=keras.losses.BinaryCrossentropy(from_logits=True,
                                                 label_smoothing=train_config.label_smoothing),
            metrics=[keras.metrics.AUC(from_logits=True, num_thresholds=1000, name="auc")],
            jit_compile=jit_compile,
        )
    return trainer


def _epoch_data(plan: _Plan, seed: int, epoch: int, batch_size: int, **kwargs):
    """Epoch ``epoch``'s (1-based) shuffled batches."""
    return data.make_dataset(plan.data_dir, "train", batch_size, training=True,
                             seed=epoch_seed(seed, epoch), drop_remainder=True,
                             exclude=tuple(plan.skipped), **kwargs)


def train_dataset(plan: _Plan, train_config: TrainConfig, first_epoch: int):
    """Every epoch from ``first_epoch`` (0-based) to the last, one after the other."""
    steps, epochs = plan.steps_per_epoch, range(first_epoch + 1, train_config.epochs + 1)
    if train_config.strategy == "default":
        # exactly `steps` batches an epoch or an error: a split shorter than its metadata
        # must not end an epoch early and shift every later epoch's data
        parts = [_epoch_data(plan, train_config.seed, e, plan.batch_size).take(steps)
                 .apply(tf.data.experimental.assert_cardinality(steps)) for e in epochs]
        return _concatenate(parts)

    def dataset_fn(context):
        # Each input pipeline feeds num_replicas / num_pipelines replicas one batch each per
        # step; repeat() keeps every worker's step count equal with uneven shards.
        local = context.num_replicas_in_sync // context.num_input_pipelines
        per_replica = context.get_per_replica_batch_size(plan.batch_size)
        return _concatenate([
            _epoch_data(plan, train_config.seed, e, per_replica, repeat=True,
                        input_context=context).take(steps * local) for e in epochs])

    return plan.strategy.distribute_datasets_from_function(dataset_fn)


def _concatenate(parts):
    dataset = parts[0]
    for part in parts[1:]:
        dataset = dataset.concatenate(part)
    return dataset


def _callbacks(plan, train_config, click_model, describe, *, progress, log, on_epoch_end,
               user_callbacks, interrupt, evaluate_test, write_reports):
    """(the callback list, its RunReport, the TensorBoard writer to close after training).
    The order matters: see the module docstring."""
    writer = SummaryWriter(plan.output_dir / "tensorboard")
    every_steps, every_seconds = config_lib.backup_interval(train_config.backup_every)
    exact = ExactEvaluation(click_model, plan.data_dir, batch_size=plan.batch_size,
                            jit_compile=plan.jit_compile, exclude=tuple(plan.skipped),
                            examples=plan.sizes["val"], progress=progress)
    stop = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", restore_best_weights=True,
                                         patience=train_config.early_stopping_patience)
    logger = MetricsLogger(plan.output_dir, writer, log)
    hooks = [] if on_epoch_end is None else [keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: on_epoch_end(epoch + 1, logger.history[-1]))]
    backup = TrainingBackup(plan.output_dir / "checkpoints", every_steps=every_steps,
                            every_seconds=every_seconds, early_stopping=stop,
                            metrics_logger=logger, interrupt_requested=lambda: interrupt.requested,
                            configs=configs_dict(plan.model_config, train_config))
    report = RunReport(exact, stop, logger, describe, evaluate_test=evaluate_test,
                       write_files=write_reports, log=log)
    # RunReport after EarlyStopping (which restores the best weights when training ends);
    # the hook last: the tuner reports an epoch once its checkpoint exists
    callbacks = [EpochProgress(plan.batch_size, enabled=progress), exact,
                 GateStatistics(exact, writer), stop, logger, report, *user_callbacks, backup,
                 *hooks]
    return callbacks, report, writer


# ----------------------------------------------------------------------------------------
# Training.


def _epochs_to_run(plan: _Plan, train_config: TrainConfig) -> tuple[int, int]:
    """(first epoch, end epoch) of ``fit`` (0-based, end exclusive); a finished or early-
    stopped run resumes with nothing to train (fit then only restores the best weights)."""
    state = plan.resume_state
    if state is None:
        return 0, train_config.epochs
    first = int(state["epoch"])
    stopped = int((state.get("early_stopping") or {}).get("stopped_epoch", 0)) > 0
    return first, (first if stopped else max(first, train_config.epochs))


def _fit(plan, train_config, trainer, callbacks, interrupt, log) -> None:
    first, end = _epochs_to_run(plan, train_config)
    if plan.resume_state is not None:
        step = plan.resume_state.get("step", 0)
        where = f", {step} steps of epoch {first + 1}" if step else ""
        log(f"resumed from {plan.output_dir / 'checkpoints'} (epoch {first} done{where})")
    dataset = train_dataset(plan, train_config, first) if end > first else _no_training(plan)
    try:
        with interrupt, plan.strategy.scope():
            trainer.fit(dataset, epochs=end, initial_epoch=first,
                        steps_per_epoch=plan.steps_per_epoch, callbacks=callbacks, verbose=0,
                        shuffle=False)  # the dataset is shuffled per epoch
    except tf.errors.FailedPreconditionError:  # assert_cardinality: a short split
        bad = data.check_shards(str(plan.data_dir), "train")[1]
        if bad:
            raise DataError(splits.corrupt_message(bad)) from None
        raise DataError(
            f"{plan.data_dir}: the train split ran out after fewer than {plan.steps_per_epoch} "
            f"steps of {plan.batch_size}: its shards hold fewer examples than metadata.json "
            "says (a truncated or replaced shard?)") from None


def _no_training(plan: _Plan):
    """One batch for a ``fit`` that trains no epoch (a finished run resumed): it still builds
    the trainer and runs ``on_train_begin``/``on_train_end``, which restore the best weights."""
    return data.make_dataset(plan.data_dir, "val", plan.batch_size).take(1)


def _result(plan, train_config, click_model, parameters, history, best_epoch, stopped_early,
            val, test) -> TrainResult:
    last = history[-1]
    return TrainResult(
        output_dir=plan.output_dir, data_dir=plan.data_dir, model=click_model,
        model_config=plan.model_config, train_config=train_config, history=history,
        best_epoch=best_epoch, best=val.summary(),
        final={"auc": last["val_auc"], "log_loss": last["val_log_loss"]},
        stopped_early=stopped_early, parameters=parameters, metadata=plan.meta,
        val_predictions=val, jit_compile=plan.jit_compile, skipped_shards=plan.skipped,
        test=None if test is None else test.summary(), test_predictions=test,
    )


def _export(result: TrainResult, plan: _Plan, export_dir, log,
            serving_precision: str | None = None) -> Path:
    from mdaf_tf import export

    started = time.perf_counter()
    path = export.export_model(result.model, plan.model_config, result.train_config.model,
                               plan.data_dir, export_dir, parameters=result.parameters,
                               serving_precision=serving_precision)
    log(f"exported to {path} ({time.perf_counter() - started:.0f}s)")
    return path


def train(request: TrainRequest) -> TrainResult:
    """Train ``request.train_config.model`` on ``request.data_dir`` with the recipe in
    ``request.train_config`` (``mdaf_tf.training.request.TrainRequest`` says what each of the
    request's fields does).

    Writes into ``output_dir``: ``checkpoints/``, ``metrics.csv``, ``tensorboard/``,
    ``config.json`` and (with ``write_reports``) ``report.md`` and the PNG plots; with
    ``resume`` it continues at the step the latest checkpoint was written.

    Early stopping and the restored epoch follow validation AUC only. Once the best weights
    are restored, the test split is evaluated once (``TrainResult.test``); with
    ``evaluate_test=False`` (the tuner's trials) the test split is never opened.

    ``train_config.strategy`` picks the ``tf.distribute`` strategy (see mdaf_tf.distribute);
    the global batch is ``batch_size`` whatever the replica count. Under ``multiworker`` only
    the chief writes into ``output_dir`` and ``export_dir``; the other workers write into a
    temporary directory (deleted at the end) and, with ``resume``, read the chief's
    checkpoints from ``output_dir`` (a shared file system).

    A corrupt or truncated shard met while reading is a DataError naming it. With
    ``skip_corrupt_shards`` every shard is read once up front and the corrupt ones are left
    out and reported. Ctrl-C finishes the current step, writes ``checkpoints/mid-epoch`` and
    raises TrainingInterrupted.
    """
    r = request
    model_config, log, evaluate_test = r.model_config, r.log, r.evaluate_test
    if r.build_model is None:  # a registered model: its own config (a ModelConfig's fields too)
        from mdaf_tf.models import make_config

        model_config = make_config(r.train_config.model, model_config)
    plan = _plan(model_config, r.train_config, r.data_dir, r.output_dir, r.resume,
                 r.skip_corrupt_shards, evaluate_test, log)
    train_config = plan.train_config
    click_model, trainer = _build(plan, train_config, r.build_model or default_build_model)
    interrupt = _InterruptFlag()
    describe = functools.partial(_result, plan, train_config, click_model,
                                 count_parameters(click_model))
    all_callbacks, report, writer = _callbacks(
        plan, train_config, click_model, describe, progress=r.progress, log=log,
        on_epoch_end=r.on_epoch_end, user_callbacks=list(r.callbacks), interrupt=interrupt,
        evaluate_test=evaluate_test, write_reports=r.write_reports)
    try:
        _fit(plan, train_config, trainer, all_callbacks, interrupt, log)
    except tf.errors.DataLossError as e:
        wanted = schema.SPLITS if evaluate_test else ("train", "val")
        raise splits.find_corrupt_shards(r.data_dir, e, wanted) from None
    finally:
        writer.close()
    result = report.result
    if r.export_dir is not None:
        result.export_path = _export(result, plan, r.export_dir if plan.chief
                                     else plan.output_dir / "export", log, r.serving_precision)
    if not plan.chief:
        shutil.rmtree(plan.output_dir, ignore_errors=True)
        result.export_path = None
    return result


def _build(plan: _Plan, train_config: TrainConfig, build_model):
    """(click model, compiled trainer), seeded; the run directory started (config.json)."""
    if train_config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(train_config.seed)
    with plan.strategy.scope():
        click_model = build_model(train_config.model, plan.model_config)
    trainer = compile_trainer(click_model, train_config, plan.steps_per_epoch,
                              plan.jit_compile, plan.strategy)
    if plan.resume_state is None:
        for stale in ("checkpoints", "tensorboard"):
            shutil.rmtree(plan.output_dir / stale, ignore_errors=True)
    plan.output_dir.mkdir(parents=True, exist_ok=True)
    _write_config_json(plan, train_config)
    return click_model, trainer
