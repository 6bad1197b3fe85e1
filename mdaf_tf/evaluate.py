"""Evaluate an exported SavedModel on a dataset directory through its serving signature.

    python -m mdaf_tf.evaluate --model saved_models/mdaf/1 --data DIR [--split test] [--output DIR]

The dataset's dense ids are mapped back to raw ids with the dataset's own vocabularies and
fed to ``serving_default``, so the evaluation exercises exactly what TF Serving runs,
including the model's vocabulary lookups (ids the model never saw become OOV). The
``user_key`` feature is read beside them for gAUC and never fed to the signature. Writes
``report.md`` (the split; AUC, gAUC, log loss, ECE and calibration ratio, the reliability
table, oracle comparison, parameter table, gate statistics, AUC per gate bucket), ``roc.png``
and ``reliability.png`` (ROC curve and reliability diagram on the split),
``gate_histogram.png`` and ``metrics.json`` into ``--output``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mdaf_tf.runtime import add_quiet_argument, add_verbose_argument, start_tensorflow


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mdaf_tf.evaluate",
        description="Evaluate an exported model (saved_models/NAME/VERSION) on a dataset and "
        "write report.md, roc.png, reliability.png, gate_histogram.png and metrics.json.",
    )
    p.add_argument("--model", required=True, metavar="EXPORT_DIR",
                   help="an exported SavedModel version directory, e.g. saved_models/mdaf/1")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="dataset directory written by a pipelines.* command")
    p.add_argument("--split", default="test", choices=("train", "val", "test"),
                   help="split to evaluate (default test: the reported split; val is the one "
                   "training selected the weights on)")
    p.add_argument("--output", metavar="DIR",
                   help="where to write the report (default runs/evaluate-NAME-VERSION)")
    p.add_argument("--batch-size", type=int, default=2048,
                   help="examples per serving call (default 2048)")
    add_verbose_argument(p)
    add_quiet_argument(p)
    return p


def load_export(path: Path):
    import tensorflow as tf

    from mdaf_tf.export import ExportError, read_info

    info = read_info(path)
    loaded = tf.saved_model.load(str(path))
    if "serving_default" not in loaded.signatures:
        raise ExportError(f"{path}: no serving_default signature")
    return loaded, info


def evaluate(export_dir, data_dir, split: str = "test", batch_size: int = 2048,
             progress: bool = True):
    """Predictions (with the user keys, for gAUC) of the export's ``serving_default`` on
    ``split`` of ``data_dir``."""
    import numpy as np

    from mdaf_tf import data, export
    from mdaf_tf.data import feature_schema, schema
    from mdaf_tf.evaluation.predictions import Predictions
    from mdaf_tf.progress import ProgressBar

    loaded, info = load_export(Path(export_dir))
    signature = loaded.signatures["serving_default"]
    meta = data.load_metadata(str(data_dir))
    vocabs = export.read_vocabularies(data_dir, meta)
    declared = feature_schema.from_metadata(meta).model_inputs()
    expected = {spec.name: spec.dtype for spec in signature.structured_input_signature[1].values()}
    labels, probabilities, gates, users = [], [], [], []
    bar = ProgressBar("evaluate", None, enabled=progress)
    for features, y in data.make_dataset(str(data_dir), split, batch_size, training=False,
                                         extra_features=(schema.USER_KEY,)):
        features = {k: v.numpy() for k, v in features.items()}
        users.append(features.pop(schema.USER_KEY))
        inputs = signature_inputs(export.dense_to_raw(features, vocabs, declared), expected,
                                  export_dir, data_dir)
        outputs = signature(**inputs)
        labels.append(y.numpy())
        probabilities.append(outputs["probability"].numpy().reshape(-1))
        if "gate" in outputs:
            gates.append(outputs["gate"].numpy().reshape(-1))
        bar.update(int(y.shape[0]))
    bar.close()
    predictions = Predictions(
        np.concatenate(labels).astype(np.float32),
        np.concatenate(probabilities).astype(np.float32),
        np.concatenate(gates).astype(np.float32) if gates else None,
        np.concatenate(users).astype(np.int64),
    )
    return predictions, info, meta


def signature_inputs(raw: dict, expected: dict, export_dir, data_dir) -> dict:
    """The raw ids as the signature's tensors; ExportError when the export and the dataset
    disagree on string against integer ids."""
    import tensorflow as tf

    from mdaf_tf import export

    inputs = {}
    for name, value in raw.items():
        if expected.get(name) == tf.string and value.dtype != object:
            raise export.ExportError(
                f"{export_dir} expects string ids for {name}; {data_dir} has integer ids"
            )
        if expected.get(name) == tf.int64 and value.dtype == object:
            raise export.ExportError(
                f"{export_dir} expects integer ids for {name}; {data_dir} has string ids"
            )
        inputs[name] = tf.constant(value)
    return inputs


def write_report(output: Path, export_dir, data_dir, split, predictions, info, meta) -> dict:
    from mdaf_tf.data import schema
    from mdaf_tf.files import write_json_atomic, write_text_atomic
    from mdaf_tf.training import plots, report

    output.mkdir(parents=True, exist_ok=True)
    summary = {"split": split, **predictions.summary()}
    label = schema.SPLIT_LABELS[split]
    lines = [
        f"# Evaluation on {label}: {info.get('model', 'model')} ({export_dir})",
        "",
        f"Data: `{data_dir}`, split `{split}`, {summary['examples']:,} examples "
        f"({summary['positives']:,} positive). {report.GAUC_NOTE}",
        "",
        f"| metric ({label}) | value |",
        "|---|---|",
        f"| AUC (exact) | {summary['auc']:.4f} |",
        f"| gAUC | {summary['gauc']:.4f} |",
        f"| log loss | {summary['log_loss']:.4f} |",
        *(f"| {name} | {value} |" for name, value in report.calibration_rows(summary)),
        "",
        *report.calibration_section(summary, split),
        *report.evaluation_sections(summary, meta, info.get("parameters"), split),
    ]
    write_text_atomic(output / "report.md", "\n".join(lines))
    write_json_atomic(output / "metrics.json", summary)
    plots.roc_curve(predictions.labels, predictions.probabilities, output / "roc.png",
                    split=label)
    plots.reliability_diagram(predictions.labels, predictions.probabilities,
                              output / "reliability.png", split=label)
    if predictions.gates is not None:
        plots.gate_histogram(predictions.gates, output / "gate_histogram.png", split=label)
    return summary


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    start_tensorflow(args.verbose)
    from mdaf_tf.cli_errors import USER_ERRORS, fail
    from mdaf_tf.config import ConfigError

    try:
        if args.batch_size < 1:
            raise ConfigError("--batch-size must be >= 1")
        export_dir = Path(args.model)
        output = Path(args.output or
                      f"runs/evaluate-{export_dir.parent.name}-{export_dir.name}")
        predictions, info, meta = evaluate(export_dir, args.data, args.split, args.batch_size,
                                            progress=not args.quiet)
        summary = write_report(output, export_dir, args.data, args.split, predictions, info,
                               meta)
        print(f"{args.split}: AUC {summary['auc']:.4f}, gAUC {summary['gauc']:.4f}, log loss "
              f"{summary['log_loss']:.4f}, ECE {summary['ece']:.4f}, calibration ratio "
              f"{summary['calibration_ratio']:.3f} on {summary['examples']} examples; report: "
              f"{output / 'report.md'}")
        return 0
    except USER_ERRORS as e:
        return fail(e)


if __name__ == "__main__":
    sys.exit(main())
