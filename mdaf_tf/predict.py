"""Score raw impression rows through an export, as TF Serving would.

    python -m mdaf_tf.predict --model saved_models/mdaf/1 --input rows.csv --output scores.csv

``--input`` is a CSV (with header) or Parquet file in the impressions layout with the user's
raw ids (``mdaf_tf.raw_rows`` says how rows become the signature's inputs: histories from the
same user's earlier clicked rows, as ``pipelines.impressions`` builds them, or given as
columns). The export is loaded with TensorFlow's session-based loader, the one TF Serving
runs, and ``serving_default`` scores every row. ``--output`` (CSV, or Parquet by its
extension) gets one row per input row, in input order: ``line`` (the input's line, or row
number for Parquet), ``probability`` and, for gated models, ``gate``; it is written under a
temporary name and renamed when complete. A row the export cannot take is a one-line error
naming its line, with exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mdaf_tf.runtime import add_quiet_argument, add_verbose_argument, start_tensorflow


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mdaf_tf.predict",
        description="Score raw impression rows (CSV or Parquet) through an export.")
    p.add_argument("--model", required=True, metavar="EXPORT_DIR",
                   help="an exported SavedModel version directory, e.g. saved_models/mdaf/1")
    p.add_argument("--input", required=True, metavar="FILE",
                   help="rows in the impressions layout: .csv with a header, or .parquet")
    p.add_argument("--output", required=True, metavar="FILE",
                   help="scores: .csv, or .parquet")
    p.add_argument("--batch-size", type=int, default=1024,
                   help="rows per serving call (default 1024)")
    add_verbose_argument(p)
    add_quiet_argument(p)
    return p


class Scorer:
    """An export's ``serving_default`` run through the session-based loader."""

    def __init__(self, export_dir):
        import tensorflow as tf

        self.session = tf.compat.v1.Session(graph=tf.Graph())
        logger, level = tf.get_logger(), tf.get_logger().level
        logger.setLevel("ERROR")  # the loader's deprecation notice: TF Serving's loader is it
        try:
            meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"],
                                                              str(export_dir))
        finally:
            logger.setLevel(level)
        self.signature = meta_graph.signature_def["serving_default"]

    @property
    def input_names(self) -> set[str]:
        return set(self.signature.inputs)

    def __call__(self, inputs: dict, batch_size: int) -> dict:
        import numpy as np

        n = len(inputs[next(iter(inputs))])
        fetches = {k: v.name for k, v in self.signature.outputs.items()}
        parts = {k: [] for k in fetches}
        for start in range(0, n, batch_size):
            feed = {self.signature.inputs[k].name: v[start:start + batch_size]
                    for k, v in inputs.items()}
            for key, value in self.session.run(fetches, feed).items():
                parts[key].append(np.asarray(value).reshape(-1))
        return {k: np.concatenate(v) if v else np.zeros(0, np.float32)
                for k, v in parts.items()}


def export_layout(export_dir: Path):
    """The export's ``RowLayout`` from ``assets.extra/mdaf_tf.json``."""
    from mdaf_tf.data.feature_schema import FeatureSchema
    from mdaf_tf.export import INFO_FILE, ExportError, read_info
    from mdaf_tf.raw_rows import RowLayout

    info = read_info(export_dir)
    if "schema" not in info:
        raise ExportError(f"{export_dir}: exported before mdaf_tf.predict existed (no schema "
                          f"in {INFO_FILE}); export the model again")
    rows = info.get("rows") or {}
    return RowLayout(FeatureSchema.from_dict(info["schema"], str(export_dir / INFO_FILE)),
                     info["raw_id_dtypes"], int(info["max_seq_len"]),
                     timezone=rows.get("timezone") or "UTC")


def predict(export_dir, input_path, output_path, batch_size: int = 1024) -> dict:
    """Score ``input_path``'s rows into ``output_path``; returns the output columns."""
    import numpy as np

    from mdaf_tf import raw_rows
    from mdaf_tf.export import ExportError

    export_dir = Path(export_dir)
    layout = export_layout(export_dir)
    table, first_line = raw_rows.read_table(input_path)
    inputs = raw_rows.signature_inputs(table, layout, input_path, first_line)
    scorer = Scorer(export_dir)
    if set(inputs) != scorer.input_names:
        raise ExportError(f"{export_dir}: serving_default takes {sorted(scorer.input_names)}, "
                          f"the rows give {sorted(inputs)}")
    scores = scorer(inputs, batch_size)
    columns = {"line": np.arange(table.num_rows, dtype=np.int64) + first_line, **{
        k: scores[k] for k in ("probability", "gate") if k in scores}}
    write_scores(Path(output_path), columns)
    return columns


def write_scores(path: Path, columns: dict) -> None:
    import pandas as pd

    from mdaf_tf.files import atomic_path

    frame = pd.DataFrame(columns)
    with atomic_path(path, suffix=path.suffix) as tmp:
        if path.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False, float_format="%.8g")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    start_tensorflow(args.verbose)
    from mdaf_tf.cli_errors import USER_ERRORS, fail
    from mdaf_tf.raw_rows import RowError

    if args.batch_size < 1:
        return fail(ValueError(f"--batch-size {args.batch_size}: must be at least 1"))
    try:
        columns = predict(args.model, args.input, args.output, args.batch_size)
    except (*USER_ERRORS, RowError) as e:
        return fail(e)
    except OSError as e:
        return fail(OSError(f"{args.output}: cannot write ({e.strerror or e})"))
    if not args.quiet:
        print(f"scored {len(columns['line']):,} rows of {args.input} -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
