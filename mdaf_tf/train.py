"""Train a model with the seed thesis's recipe, write the run's reports and export it.

    python -m mdaf_tf.train                      # synthetic default: build once, train MDAF
    python -m mdaf_tf.train --data DIR           # a dataset directory from pipelines.*
    python -m mdaf_tf.train --data UserBehavior.csv --epochs 2

Errors in the input (data, config, checkpoint, export path) are reported on one line with
exit code 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mdaf_tf import cli_options
from mdaf_tf.data import source as data_source
from mdaf_tf.precision import PRECISIONS
from mdaf_tf.runtime import add_quiet_argument, add_verbose_argument, say, start_tensorflow

# Validation examples on which the export is checked against the Keras model after training:
# the whole split up to this many (the synthetic default's 6,353 all), so that the check stays
# a minute or two on a large dataset.
CHECK_EXAMPLES = 20_000


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mdaf_tf.train",
        description="Train MDAF (or another model) on a dataset, write metrics.csv, "
        "report.md, plots and TensorBoard logs into the run directory, and export a "
        "TF Serving SavedModel.",
    )
    cli_options.add_data(p)
    cli_options.add_model(p)
    p.add_argument("--epochs", type=int,
                   help="maximum number of epochs (default 10; 5 on the synthetic default)")
    cli_options.add_batch_size(p)
    cli_options.add_seed(p)
    p.add_argument("--output", metavar="DIR",
                   help="run directory for checkpoints, metrics.csv, report.md, plots and "
                   "TensorBoard logs (default runs/MODEL)")
    p.add_argument("--export", metavar="DIR",
                   help="TF Serving base path; the best model is written to DIR/VERSION with "
                   "VERSION one above the highest present (default saved_models/MODEL)")
    cli_options.add_config(p)
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest checkpoint in --output (same configuration), "
                   "at the step it was written; with none there, start fresh (a notice says so)")
    p.add_argument("--backup-every", metavar="N|DURATION",
                   help="also back up in the middle of an epoch every N steps (500) or every "
                   "DURATION of wall time (30s, 10m, 1h); 0 = at epoch ends only "
                   "(TrainConfig.backup_every, default 10m)")
    cli_options.add_max_steps_per_epoch(p)
    cli_options.add_strategy(p, "default: the config's, else default")
    p.add_argument("--scan", choices=("auto", "fast", "chunked", "reference"),
                   help="selective scan implementation of the models with a Mamba encoder "
                   "(their config's scan): auto (default: the "
                   "C++ op on CPU, the XLA-compiled TensorFlow-ops scan elsewhere), fast, "
                   "chunked, or reference (the plain tf.scan, slow; for checking)")
    cli_options.add_precision(p)
    p.add_argument("--serving-precision", choices=PRECISIONS,
                   help="precision the exported graph computes in (default: the model's). "
                   "The signature stays raw ids in, float32 probability out; see "
                   "benchmarks/serving.py --serving-precisions for where bfloat16 is faster")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic TensorFlow ops: the same seed gives the same metrics "
                   "and the same exported predictions (slower on GPUs)")
    p.add_argument("--skip-corrupt-shards", action="store_true",
                   help="leave out TFRecord shards that are corrupt or truncated (reported) "
                   "instead of stopping with an error naming them")
    add_verbose_argument(p)
    add_quiet_argument(p)
    return p


def resolve_configs(args):
    """Configs from --config (if any) with the command-line flags applied on top."""
    from mdaf_tf.training import config_file

    model_config, train_config = config_file.resolve(args.config, {
        "model": args.model,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "max_steps_per_epoch": args.max_steps_per_epoch,
        "strategy": args.strategy,
        "deterministic": True if args.deterministic else None,
        "backup_every": args.backup_every,
    }, train_preset=data_source.train_preset(args.data),
        model_overrides={"scan": args.scan, "precision": args.precision})
    return model_config, train_config


def check_arguments(train_config) -> None:
    from mdaf_tf.config import backup_interval

    cli_options.check_training(train_config)
    backup_interval(train_config.backup_every)


def result_line(result) -> str:
    """The run's reported figures: test AUC, gAUC and log loss of the epoch selected on
    validation, and on synthetic data the share of the test oracle's lift captured."""
    from mdaf_tf.training import report

    test = result.test
    line = (f"test AUC {test['auc']:.4f}, gAUC {test['gauc']:.4f}, log loss "
            f"{test['log_loss']:.4f} (epoch {result.best_epoch}, selected on validation: val "
            f"AUC {result.best['auc']:.4f})")
    oracle = (report.split_oracle(result.metadata, "test") or {}).get("auc")
    if oracle:
        line += (f"; oracle test AUC {oracle:.4f}, lift captured "
                 f"{(test['auc'] - 0.5) / (oracle - 0.5):.3f}")
    return line


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    start_tensorflow(args.verbose)
    from mdaf_tf.cli_errors import USER_ERRORS, fail

    output = None
    try:
        model_config, train_config = resolve_configs(args)
        check_arguments(train_config)
        output = Path(args.output or f"runs/{train_config.model}")
        export = Path(args.export or f"saved_models/{train_config.model}")
        for path, flag in ((output, "--output"), (export, "--export")):
            if path.exists() and not path.is_dir():
                raise _path_error(f"{flag} {path} is a file, not a directory")

        from mdaf_tf import export as export_lib
        from mdaf_tf.training import runner

        log = say(args.quiet)
        data_dir = data_source.resolve(args.data, log=log, echo=not args.quiet)
        result = runner.train(runner.TrainRequest(
            model_config, train_config, data_dir, output, resume=args.resume, export_dir=export,
            skip_corrupt_shards=args.skip_corrupt_shards, serving_precision=args.serving_precision,
            progress=not args.quiet, log=log,
        ))
        if result.export_path is None:  # a non-chief worker of --strategy multiworker
            print(f"worker done; the chief writes the run directory and the export "
                  f"(best val AUC {result.best['auc']:.4f})")
            return 0
        started = time.perf_counter()
        exported = export_lib.serving_model(result.model, args.serving_precision)
        check = export_lib.verify_export(
            result.export_path, exported, data_dir, max_examples=CHECK_EXAMPLES,
            tolerance=export_lib.CHECK_TOLERANCE)
        worst = max(
            v for name in ("serving_default", "predict_examples")
            for k, v in check[name].items() if k != "finite"
        )
        log(
            f"export check (TF Serving's session loader and saved_model_cli, in a process "
            f"without mdaf_tf): serving_default and "
            f"predict_examples match the Keras model to {worst:.1e} on {check['examples']} "
            f"validation examples ({time.perf_counter() - started:.0f}s)"
        )
        print(result_line(result))
        log(f"run directory: {output}  (report.md, metrics.csv, plots, tensorboard/)")
        log(f"SavedModel: {result.export_path}")
        return 0
    except USER_ERRORS as e:
        return fail(e)
    except KeyboardInterrupt as e:
        from mdaf_tf.training import checkpoint

        last = getattr(e, "checkpoint", None)
        if last is None and output is not None:
            last = checkpoint.latest(output / "checkpoints")
        where = f"the last checkpoint is {last}" if last else "no checkpoint was written yet"
        again = " ".join(["python -m mdaf_tf.train", *(argv if argv is not None else
                                                         sys.argv[1:])])
        if "--resume" not in again.split():
            again += " --resume"
        print(f"interrupted; {where}. Continue with: {again}", file=sys.stderr)
        return 130


def _path_error(message):
    from mdaf_tf.export import ExportError

    return ExportError(message)


if __name__ == "__main__":
    sys.exit(main())
