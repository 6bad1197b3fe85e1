"""Train several models with several seeds and write the seed thesis's comparison tables.

    python -m mdaf_tf.compare --data DIR --models mdaf,mdaf_ta,bst,mamba4rec,dcnv2,autoint \\
        --seeds 42,123,7 --output runs/compare-NAME [--epochs N]

Every (model, seed) run goes to OUTPUT/runs/MODEL/seed-SEED; a finished run (result.json,
same configuration and data) is skipped on a rerun, an interrupted one resumes from its last
checkpoint, and a failing one is reported while the others go on. Each run selects its epoch
on validation AUC and reports that epoch's weights on the test split. Then OUTPUT gets
table3.md/.csv (test AUC, gAUC and log loss of every model vs the reference, paired t-test
over seeds with Holm-corrected p-values), table8.md (MDAF vs its ablations, on test),
table9.md (efficiency on this machine), runs.csv (one row per run, validation and test
figures) and auc_bar.png (test AUC). Exit status: 0, 1 when some run failed, 2 for bad
input.

Yardsticks: on a dataset written by ``pipelines.synthetic`` (``mdaf_tf.comparison.yardsticks``)
table3.md and auc_bar.png also show two rows that are not models, on the same test split:
``oracle`` (the true click probabilities, re-simulated from metadata.json's arguments) and
``lr_ceiling`` (``mdaf_tf.comparison.linear_ceiling``: a logistic regression on the true feature
forms, fitted on train, its C chosen on validation, as
``studies/linear_ceiling/linear_ceiling.py`` reports it). They are deterministic, so each is one
value with seeds "-"; their Delta vs the reference is shown, but they are excluded from the
paired t-tests and from the Holm family (a test over seeds of a constant says nothing about it;
counting them would change the models' adjusted p-values). table3.csv keeps one row per model;
the yardsticks go to yardsticks.csv and yardsticks.json (which also keeps them for reruns on the
same dataset). They are computed before the runs (seconds on the synthetic default); one that
cannot be computed is left out with a note, and the runs go on. On other data there are no
yardstick rows, and table3.md says so in one line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mdaf_tf import cli_options
from mdaf_tf.data import source as data_source
from mdaf_tf.runtime import add_verbose_argument, start_tensorflow


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mdaf_tf.compare",
        description="Train every model with every seed (resumable; epochs selected on "
        "validation AUC) and write table3.md/.csv, table8.md and auc_bar.png (on the test "
        "split), table9.md and runs.csv into --output; on pipelines.synthetic data table3.md "
        "also shows the oracle and logistic-regression yardsticks (yardsticks.csv/.json).",
    )
    cli_options.add_data(p)
    p.add_argument("--models", help=(
        "comma-separated model names (NAME or MODULE:NAME, as --model of train) (default: "
        "every registered model but the match variants, which register with "
        "in_comparison=False)"))
    p.add_argument("--seeds", default="42,123,7",
                   help="comma-separated integer seeds, one run per model and seed "
                   "(default %(default)s)")
    p.add_argument("--output", metavar="DIR", default="runs/compare",
                   help="comparison directory (default %(default)s)")
    p.add_argument("--epochs", type=int,
                   help="maximum epochs per run (default: the config's, 10; 5 on the synthetic "
                   "default)")
    cli_options.add_max_steps_per_epoch(p)
    cli_options.add_batch_size(p)
    p.add_argument("--reference", default="bst",
                   help="model the others are compared with in table3 (default %(default)s)")
    cli_options.add_config(p, "model and seed are set per run")
    p.add_argument("--inference-batch-size", type=int, default=2048,
                   help="batch size of the inference timing in table9 (default %(default)s)")
    p.add_argument("--timing-repeats", type=int, default=10,
                   help="timed inference calls per run, median reported (default %(default)s)")
    cli_options.add_precision(p)
    p.add_argument("--quiet", action="store_true", help="no per-step progress bars")
    add_verbose_argument(p)
    return p


def parse_models(text: str | None) -> list[str]:
    """The models of ``--models`` (None: ``registry.comparison_names()``)."""
    from mdaf_tf.config import ConfigError
    from mdaf_tf.models import registry

    if text is None:
        return list(registry.comparison_names())
    models = [m.strip() for m in text.split(",") if m.strip()]
    if not models:
        raise ConfigError("--models: no model given")
    for name in models:
        try:
            registry.registration(name)
        except ConfigError as e:
            raise ConfigError(f"--models: {e}") from None
    if len(set(models)) != len(models):
        raise ConfigError(f"--models: a model is listed twice in {text!r}")
    return models


def parse_seeds(text: str) -> list[int]:
    from mdaf_tf.config import ConfigError

    parts = [s.strip() for s in text.split(",") if s.strip()]
    try:
        seeds = [int(s) for s in parts]
    except ValueError:
        raise ConfigError(f"--seeds: {text!r} is not a comma-separated list of integers") from None
    if not seeds:
        raise ConfigError("--seeds: no seed given")
    if any(s < 0 for s in seeds):
        raise ConfigError(f"--seeds: seeds must be >= 0, got {text!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: a seed is listed twice in {text!r}")
    return seeds


def resolve_configs(args, models, log=print) -> tuple[dict, object]:
    """({model: its config}, the training config): the one ``--config`` gives each model the
    fields it reads; a field no registered model reads is an error, one that none of
    ``models`` reads is logged."""
    from mdaf_tf.config import ConfigError
    from mdaf_tf.models import registry
    from mdaf_tf.training import config_file

    values, train_config = config_file.resolve_sections(args.config, {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "max_steps_per_epoch": args.max_steps_per_epoch,
    }, train_preset=data_source.train_preset(args.data))
    cli_options.check_training(train_config, model=False)  # the models: --models
    for flag in ("inference_batch_size", "timing_repeats"):
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= 1")
    source = str(args.config or "config")
    given = set(values) - legacy_fields(values)
    known = set().union(*(registry.config_fields(m) for m in registry.model_names()))
    if given - known:
        raise ConfigError(f"{source}: unknown model config field(s) "
                          f"{', '.join(sorted(given - known))}")
    unread = given - set().union(*(registry.config_fields(m) for m in models))
    if unread:
        log(f"{source}: {', '.join(sorted(unread))} read by none of --models, left out")
    configs = {m: config_file.model_config(m, values, source, strict=False,
                                           flags={"precision": args.precision})
               for m in models}
    return configs, train_config


def legacy_fields(values: dict) -> set[str]:
    """The fields of a legacy model section that no model needs to read."""
    from mdaf_tf.models import legacy_config

    return set(legacy_config.LEGACY_FIELDS) if legacy_config.is_legacy(values) else set()


def write_reports(output: Path, outcomes, models, reference: str, yardsticks=None) -> dict:
    """Tables, runs.csv and the bar chart from the runs' results (with the ``Yardsticks``,
    if given: table3.md rows, yardsticks.csv and lines on the chart); returns their paths."""
    from mdaf_tf.comparison import efficiency, tables
    from mdaf_tf.files import write_text_atomic

    results = [o.result for o in outcomes if o.result is not None]
    failures = [f"{o.model} seed {o.seed}: {o.error}" for o in outcomes if o.status == "failed"]
    grouped = tables.by_model(results, models)
    paths = {}
    md3, csv3 = tables.table3(grouped, reference, failures, yardsticks)
    texts = [("table3.md", md3), ("table3.csv", csv3), ("table8.md", tables.table8(grouped)),
             ("table9.md", tables.table9(grouped, efficiency.hardware())),
             ("runs.csv", tables.runs_csv(results))]
    if yardsticks is not None and yardsticks.rows:
        texts.append(("yardsticks.csv", tables.yardsticks_csv(yardsticks)))
    else:
        (output / "yardsticks.csv").unlink(missing_ok=True)  # of an earlier dataset
    for name, text in texts:
        write_text_atomic(output / name, text)
        paths[name] = output / name
    if (output / "yardsticks.json").is_file():
        paths["yardsticks.json"] = output / "yardsticks.json"
    if grouped:
        tables.auc_bar_chart(grouped, reference, output / "auc_bar.png", yardsticks)
        paths["auc_bar.png"] = output / "auc_bar.png"
    return paths


def compute_yardsticks(data_dir, output: Path, log=print):
    """The oracle and lr_ceiling rows on synthetic data (kept in output/yardsticks.json)."""
    from mdaf_tf.comparison import yardsticks

    found = yardsticks.load_or_compute(data_dir, output)
    for name, row in found.rows.items():
        log(f"yardstick {name}: test AUC {row['test_auc']:.4f} gAUC {row['test_gauc']:.4f} "
            f"log loss {row['test_log_loss']:.4f}")
    if found.note:
        log(found.note)
    return found


def main(argv=None, *, train_fn=None) -> int:
    args = build_parser().parse_args(argv)
    start_tensorflow(args.verbose)
    from mdaf_tf.cli_errors import USER_ERRORS, fail
    from mdaf_tf.config import ConfigError

    try:
        models = parse_models(args.models)
        seeds = parse_seeds(args.seeds)
        if args.reference not in models:
            raise ConfigError(f"--reference {args.reference} is not one of --models")
        model_configs, train_config = resolve_configs(args, models)
        output = Path(args.output)
        if output.exists() and not output.is_dir():
            raise ConfigError(f"--output {output} is a file, not a directory")

        from mdaf_tf import data
        from mdaf_tf.comparison import runs

        data_dir = data_source.resolve(args.data)
        data.load_metadata(data_dir)  # a bad dataset fails here, before any run
        output.mkdir(parents=True, exist_ok=True)
        found = compute_yardsticks(data_dir, output)
        outcomes = runs.run_all(
            models, seeds, data_dir, output, model_configs, train_config,
            progress=not args.quiet, timing_repeats=args.timing_repeats,
            inference_batch_size=args.inference_batch_size, train_fn=train_fn,
        )
    except USER_ERRORS as e:
        return fail(e, "compare")

    paths = write_reports(output, outcomes, models, args.reference, found)
    print((output / "table3.md").read_text())
    print((output / "table8.md").read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        print(f"{len(failed)} of {len(outcomes)} runs failed: "
              + "; ".join(f"{o.model} seed {o.seed}" for o in failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
