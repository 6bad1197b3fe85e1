"""Search dropout, weight decay, label smoothing (and the learning rate, the embedding L2
penalty) with Keras Tuner.

    python -m mdaf_tf.tune --data DIR --max-trials 20 --output runs/tune-NAME
    python -m mdaf_tf.train --data DIR --config runs/tune-NAME/best_config.json

Every trial is a run of the training recipe (``mdaf_tf.training.runner.train``) with the same
seed; the objective is the exact validation AUC of its best epoch, and no trial opens the test
split. Re-running the same command continues the search in ``--output`` (finished trials are
not repeated; an interrupted one continues from its last checkpoint). Writes
``best_config.json``, ``trials.csv`` and ``trials.md`` (validation figures) into ``--output``
after every trial; after the search, the trial selected on validation is evaluated once on the
test split (its kept best-epoch checkpoint, not retrained) into ``selected_test.json``: the
figures to report. Errors in the input are one line, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mdaf_tf import cli_options
from mdaf_tf.data import source as data_source
from mdaf_tf.runtime import add_quiet_argument, add_verbose_argument, start_tensorflow

TUNERS = ("bayesian", "random", "hyperband")
PROJECT_NAME = "search"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mdaf_tf.tune",
        description="Keras Tuner search over the regularisation hyperparameters (the seed's "
        "Table 6), each trial trained with the recipe of python -m mdaf_tf.train and selected "
        "on validation AUC; writes best_config.json (for train --config), trials.csv and "
        "trials.md, and the selected trial's test figures in selected_test.json.",
    )
    cli_options.add_data(p, with_epochs=False)
    cli_options.add_model(p)
    p.add_argument("--tuner", default="bayesian",
                   help=f"search strategy: {', '.join(TUNERS)} (default bayesian)")
    p.add_argument("--max-trials", type=int, default=20, metavar="N",
                   help="total trials of the search, counting those already done in "
                   "--output (default 20)")
    p.add_argument("--epochs-per-trial", type=int, default=3, metavar="N",
                   help="training epochs per trial; Hyperband's maximum (default 3)")
    p.add_argument("--output", metavar="DIR",
                   help="search directory; re-running with it continues the search "
                   "(default runs/tune-MODEL)")
    cli_options.add_seed(p, "the search's too")
    cli_options.add_config(p, "the searched fields override it too")
    cli_options.add_batch_size(p)
    cli_options.add_max_steps_per_epoch(p)
    p.add_argument("--dropout", metavar="LOW,HIGH", help="dropout range (default 0.1,0.4)")
    p.add_argument("--weight-decay", metavar="LOW,HIGH",
                   help="AdamW decoupled weight decay range, log scale (default 1e-5,1e-4)")
    p.add_argument("--label-smoothing", metavar="LOW,HIGH",
                   help="label smoothing range (default 0,0.1)")
    p.add_argument("--tune-learning-rate", action="store_true",
                   help="also search the peak learning rate (log scale, default 1e-4,1e-3)")
    p.add_argument("--learning-rate", metavar="LOW,HIGH",
                   help="learning-rate range; implies --tune-learning-rate")
    p.add_argument("--tune-embedding-l2", action="store_true",
                   help="also search the model config's embedding_l2, the L2 penalty on the id "
                   "embeddings (log scale, default 1e-5,1e-3)")
    p.add_argument("--embedding-l2", metavar="LOW,HIGH",
                   help="embedding_l2 range; implies --tune-embedding-l2")
    cli_options.add_precision(p)
    cli_options.add_strategy(p, "of every trial; multiworker: start the search on every "
                             "worker, only the chief writes --output")
    add_verbose_argument(p)
    add_quiet_argument(p)
    return p


def resolve_configs(args):
    from mdaf_tf.training import config_file

    # Deterministic ops: training with best_config.json reproduces the trial's AUC.
    model_config, train_config = config_file.resolve(args.config, {
        "model": args.model, "seed": args.seed, "batch_size": args.batch_size,
        "max_steps_per_epoch": args.max_steps_per_epoch, "strategy": args.strategy,
        "epochs": args.epochs_per_trial, "deterministic": True,
    }, train_preset=data_source.train_preset(args.data),
        model_overrides={"precision": args.precision})
    cli_options.check_training(train_config, epochs=False)  # --epochs-per-trial: checked apart
    return model_config, train_config


def check_arguments(args) -> None:
    from mdaf_tf.config import ConfigError

    if args.tuner not in TUNERS:
        raise ConfigError(f"--tuner {args.tuner!r}: unknown tuner; one of: {', '.join(TUNERS)}")
    if args.max_trials < 1:
        raise ConfigError(f"--max-trials must be >= 1, got {args.max_trials}")
    if args.epochs_per_trial < 1:
        raise ConfigError(f"--epochs-per-trial must be >= 1, got {args.epochs_per_trial}")


def make_oracle(name: str, max_trials: int, epochs_per_trial: int, seed: int):
    import keras_tuner as kt

    objective = kt.Objective("val_auc", direction="max")
    if name == "bayesian":
        try:
            return kt.oracles.BayesianOptimizationOracle(objective=objective,
                                                         max_trials=max_trials, seed=seed)
        except ImportError:
            from mdaf_tf.config import ConfigError

            raise ConfigError("--tuner bayesian needs scikit-learn: pip install "
                              "'keras-tuner[bayesian]' (or use --tuner random)") from None
    if name == "random":
        return kt.oracles.RandomSearchOracle(objective=objective, max_trials=max_trials,
                                             seed=seed)
    oracle = kt.oracles.HyperbandOracle(objective=objective, max_epochs=epochs_per_trial,
                                        factor=3, seed=seed)
    oracle.max_trials = max_trials  # the base Oracle stops creating trials past it
    return oracle


def check_same_search(output: Path, settings: dict) -> None:
    """A search directory holds one search: re-running must not change what it searches."""
    from mdaf_tf.config import ConfigError
    from mdaf_tf.files import write_json_atomic

    path = output / "search.json"
    if not path.is_file():
        output.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, settings)
        return
    saved = json.loads(path.read_text())
    for key, value in settings.items():
        if saved.get(key) != value:
            raise ConfigError(
                f"{path}: this search directory holds a search with other settings "
                f"({key} differs); re-run with the same flags or use another --output"
            )


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    start_tensorflow(args.verbose)
    from mdaf_tf.cli_errors import USER_ERRORS, fail

    try:
        return _run(args)
    except USER_ERRORS as e:
        return fail(e)
    except Exception as e:
        from mdaf_tf.tuning.runner_tuner import TrialError

        if isinstance(e, TrialError) and isinstance(e.__cause__, USER_ERRORS):
            return fail(e.__cause__)
        raise


def _run(args) -> int:
    from mdaf_tf.config import ConfigError
    from mdaf_tf.tuning import search_space

    check_arguments(args)
    space = search_space.build_space(
        {name: getattr(args, name) for name in search_space.DEFAULT_BOUNDS},
        tune_learning_rate=args.tune_learning_rate,
        tune_embedding_l2=args.tune_embedding_l2,
    )
    model_config, train_config = resolve_configs(args)
    output = Path(args.output or f"runs/tune-{train_config.model}")
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--output {output} is a file, not a directory")
    if train_config.strategy == "multiworker":
        import tempfile

        from mdaf_tf import distribute

        if not distribute.is_chief_task(distribute.read_tf_config()):
            output = Path(tempfile.mkdtemp(prefix="mdaf-tune-worker-"))

    from mdaf_tf import data
    from mdaf_tf.training import config_file
    from mdaf_tf.tuning import selected, trial_table
    from mdaf_tf.tuning.hypermodel import RegularisationHyperModel
    from mdaf_tf.tuning.runner_tuner import RunnerTuner

    data_dir = data_source.resolve(args.data)
    data.load_metadata(data_dir)
    check_same_search(output, {
        "tuner": args.tuner,
        "space": search_space.space_to_dict(space),
        "base": config_file.to_json_dict(model_config, train_config),
        "data_metadata_sha256": data.metadata_sha256(data_dir),
    })
    title = (f"{args.tuner} search: {train_config.model}, {train_config.epochs} epochs per "
             f"trial, seed {train_config.seed}")
    tuner = None

    def write_tables():
        trial_table.write_all(tuner, output, title)

    hypermodel = RegularisationHyperModel(model_config, train_config, space)
    oracle = make_oracle(args.tuner, args.max_trials, args.epochs_per_trial, train_config.seed)
    tuner = RunnerTuner(oracle, hypermodel, data_dir, output, PROJECT_NAME,
                        progress=sys.stderr.isatty() and not args.quiet,
                        on_trial_done=write_tables)
    done = sum(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
    print(f"search in {output / PROJECT_NAME}: {done} trial(s) done, up to "
          f"{args.max_trials} in all; objective: exact validation AUC (max)")
    tuner.search(verbose=1)
    best = trial_table.write_all(tuner, output, title)
    if best is None:
        print("no trial completed")
        return 1
    values = ", ".join(f"{k} {best[k]:.3g}" for k in space)
    print(f"best trial {best['trial']}: val AUC {best['val_auc']:.4f} (epoch "
          f"{best['best_epoch']}), train-val gap {best['train_val_gap']:+.4f}; {values}")
    test = selected.report_selected(tuner, best, data_dir, output,
                                     progress=sys.stderr.isatty() and not args.quiet)
    print(f"test split, trial {best['trial']} selected on validation: AUC {test['auc']:.4f}, "
          f"gAUC {test['gauc']:.4f}, log loss {test['log_loss']:.4f}")
    print(f"wrote {output / 'best_config.json'}, {output / 'trials.md'}, "
          f"{output / 'trials.csv'}, {output / selected.RESULT_FILE}")
    data_flag = f" --data {args.data}" if args.data else ""
    print(f"train with it: python -m mdaf_tf.train{data_flag} --config "
          f"{output / 'best_config.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
