"""Export a trained model as a TF Serving SavedModel that accepts raw ids.

Layout: ``BASE/VERSION/`` with VERSION an integer one above the highest already there, written
under a temporary name and renamed when complete (TF Serving only loads numeric directories).

Signatures (outputs ``probability`` and, for gated models, ``gate``, both shape (batch,)):

* ``serving_default(<declared fields>, hist_len)``: the dataset's declared fields
  (``mdaf_tf.data.feature_schema``; by default ``user_id, item_id, cate_id, hist_item_id,
  hist_cate_id``) as they arrived: categorical ids with the dtype they had in the data (int64
  or string), numeric fields as float32 raw values (NaN: missing; the model standardises
  them), histories of fixed length ``max_seq_len``, left-padded (most recent last) with the
  padding value (-1 or ""), and ``hist_len`` (batch,). Only the last ``hist_len`` positions
  count.
* ``predict_examples(examples)``: serialized ``tf.train.Example`` protos with the same raw
  features (histories and ``hist_len`` may be omitted: empty history; a numeric field may
  be omitted: missing).

The signature's dtypes do not depend on the precision the graph computes in
(``export_model(serving_precision=...)``): raw ids in, float32 out.

Inside the graph the raw ids go through the training vocabularies (saved as assets) with
``tf.lookup``: line i of ``vocab/NAME.txt`` -> dense id i + FIRST_ID, unknown -> OOV_ID,
padding -> PAD_ID.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mdaf_tf.config import to_dict
from mdaf_tf.data import feature_schema, load_metadata, schema
from mdaf_tf.internal_apis import UniqueTextFileInitializer, nested_layers
from mdaf_tf.models.config import ModelConfig

INT_PAD = -1
STRING_PAD = ""
INFO_FILE = "assets.extra/mdaf_tf.json"
# The scan an export runs in place of the CPU custom op (see portable_scans).
PORTABLE_SCAN = "stepwise"
# The pipeline arguments that say how a raw row becomes the model's fields (context fields of
# the impression's time in a time zone), kept in the export for mdaf_tf.predict.
ROW_ARGUMENTS = ("context", "timezone")


# verify_export's tolerance, in every precision. The check compares the export with the
# Keras model running the scan the export runs (``portable_scans``): the same arithmetic, so
# they agree to float32 rounding in every precision (6e-8 measured for mdaf, bst, din and
# mamba4rec under both mixed policies). The CPU op the Keras model trains with computes the same
# recurrence through other kernels; in float32 it agrees with the portable scan to 1e-7, but
# under a 16-bit policy the two round differently (probabilities 2.1e-3 apart under
# mixed_bfloat16, 2.3e-4 under mixed_float16, on tests/test_precision.py's tiny models), which
# is a property of 16-bit arithmetic, checked against the float64 reference in tests/ops.
CHECK_TOLERANCE = 1e-5


class ExportError(ValueError):
    """An export path that cannot be written or a model that cannot be exported."""


def read_info(export_dir) -> dict:
    """``INFO_FILE`` of an export version directory ({} when absent); ExportError when the
    directory holds no SavedModel."""
    export_dir = Path(export_dir)
    if not (export_dir / "saved_model.pb").is_file():
        raise ExportError(f"{export_dir}: not a SavedModel directory (no saved_model.pb)")
    info_path = export_dir / INFO_FILE
    return json.loads(info_path.read_text()) if info_path.is_file() else {}


def raw_dtypes(meta: dict) -> dict[str, tf.DType]:
    """Raw id dtype per vocabulary (``int64`` unless the metadata says ``string``)."""
    declared = meta.get("raw_id_dtypes") or {}
    return {
        name: tf.string if declared.get(name, "int64") == "string" else tf.int64
        for name in feature_schema.from_metadata(meta).vocabularies
    }


def raw_dtype(feature: schema.Feature, dtypes: dict) -> tf.DType:
    """The dtype ``feature`` arrives in: its vocabulary's raw ids, or the feature's own."""
    return dtypes[feature.vocabulary] if feature.vocabulary else tf.as_dtype(feature.dtype)


def pad_value(dtype: tf.DType):
    return STRING_PAD if dtype == tf.string else INT_PAD


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(base: Path) -> list[Path]:
    """Delete ``.tmp-VERSION-PID`` directories left by exports that were killed (their
    process is gone); TF Serving ignores them, but they hold disk space."""
    removed = []
    for path in base.glob(".tmp-*-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if path.is_dir() and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def next_version(base: Path) -> int:
    versions = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


class ServingModule:
    """The Keras model behind raw-id lookups; see the module docstring for the signatures.

    ``archive()`` packs it through Keras's export route (``keras.export.ExportArchive``):
    the archive tracks the variables the signatures capture, so the SavedModel's restore op
    writes the very variables the signature graphs read, as TF Serving's session loader
    needs (a ``tf.Module`` holding the Keras model restores Keras's variable wrappers
    instead, and TF Serving then finds the captured ones uninitialised)."""

    def __init__(self, model, vocab_dir: Path, meta: dict, max_seq_len: int):
        self.model = model
        self.max_seq_len = max_seq_len
        self.dtypes = raw_dtypes(meta)
        self.inputs = feature_schema.from_metadata(meta).model_inputs()
        self.tables = {}
        for name in self.dtypes:
            path = Path(vocab_dir) / f"{name}.txt"
            if not path.is_file():
                raise ExportError(f"{path}: vocabulary file missing")
            initializer = UniqueTextFileInitializer(
                tf.saved_model.Asset(str(path)),
                self.dtypes[name],
                tf.lookup.TextFileIndex.WHOLE_LINE,
                tf.int64,
                tf.lookup.TextFileIndex.LINE_NUMBER,
            )
            self.tables[name] = tf.lookup.StaticHashTable(initializer, default_value=-1)

    def _lookup(self, name: str, raw):
        index = self.tables[name].lookup(raw)
        return tf.where(index >= 0, index + schema.FIRST_ID, tf.cast(schema.OOV_ID, tf.int64))

    def features_from_raw(self, raw: dict) -> dict:
        """Dense model inputs from raw ids (see the module docstring)."""
        length = self.max_seq_len
        hist_len = tf.clip_by_value(tf.reshape(raw[schema.HIST_LEN], (-1,)), 0, length)
        position = tf.range(length, dtype=tf.int64)[None, :]
        valid = position >= (length - hist_len[:, None])
        features = {schema.HIST_LEN: hist_len}
        for feature in self.inputs:
            if feature.vocabulary is None:
                if feature.name != schema.HIST_LEN:  # numeric: raw, standardised by the model
                    features[feature.name] = tf.reshape(raw[feature.name], (-1,))
                continue
            value = raw[feature.name]
            dense = self._lookup(feature.vocabulary, value)
            if feature.sequence:
                keep = valid & tf.not_equal(value, pad_value(self.dtypes[feature.vocabulary]))
                dense = tf.where(keep, dense, tf.cast(schema.PAD_ID, tf.int64))
            features[feature.name] = dense
        return features

    def predict_raw(self, raw: dict) -> dict:
        outputs = self.model(self.features_from_raw(raw), training=False)
        result = {"probability": tf.reshape(outputs["probability"], (-1,))}
        if "gate" in outputs:
            result["gate"] = tf.reshape(outputs["gate"], (-1,))
        return result

    def raw_specs(self) -> dict:
        specs = {}
        for feature in self.inputs:
            dtype = raw_dtype(feature, self.dtypes)
            shape = (None, self.max_seq_len) if feature.sequence else (None,)
            specs[feature.name] = tf.TensorSpec(shape, dtype, name=feature.name)
        return specs

    def example_spec(self) -> dict:
        spec = {}
        for feature in self.inputs:
            dtype = raw_dtype(feature, self.dtypes)
            if feature.sequence:
                default = [pad_value(dtype)] * self.max_seq_len
                spec[feature.name] = tf.io.FixedLenFeature(
                    (self.max_seq_len,), dtype, default_value=default
                )
            elif feature.name == schema.HIST_LEN:
                spec[feature.name] = tf.io.FixedLenFeature((), tf.int64, default_value=0)
            elif dtype.is_floating:  # an absent numeric value is a missing one
                spec[feature.name] = tf.io.FixedLenFeature((), dtype, default_value=np.nan)
            else:
                spec[feature.name] = tf.io.FixedLenFeature((), dtype)
        return spec

    def archive(self):
        """A ``keras.export.ExportArchive`` with both signatures (``write_out`` saves it)."""
        example_spec = self.example_spec()
        archive = keras.export.ExportArchive()
        # The archive saves the variables the endpoints capture. Tracking the model as well
        # would save each weight a second time, through its Keras wrapper.
        for table in self.tables.values():
            archive.track(table)
        # The model is traced once, here: each endpoint calls this concrete function, so the
        # archive's own traces (one for its variable list, one more inside
        # tf.saved_model.save, whose save context is part of tf.function's cache key) add a
        # call op each instead of tracing the model four times.
        predict = tf.function(self.predict_raw, input_signature=[self.raw_specs()],
                              autograph=False).get_concrete_function()
        archive.add_endpoint("serving_default", predict, input_signature=[self.raw_specs()])
        archive.add_endpoint(
            "predict_examples",
            lambda examples: predict(tf.io.parse_example(examples, example_spec)),
            input_signature=[tf.TensorSpec((None,), tf.string, name="examples")],
        )
        return archive


@contextlib.contextmanager
def portable_scans(model):
    """Switch every layer whose selective scan resolves to the CPU custom op ("fast") to the
    TensorFlow-ops "stepwise" scan while the export traces the model: TF Serving, GPUs and a
    process without mdaf_tf's op library can run only TensorFlow ops, and of those the
    stepwise scan executes the fewest graph nodes (batch-1 latency; ``benchmarks/serving.py``).
    Yields the switched count."""
    from mdaf_tf.ops.selective_scan import resolve_impl

    changed = []
    for layer in nested_layers(model):
        impl = getattr(layer, "scan", None)
        if isinstance(impl, str):
            if resolve_impl(impl, jit_compile=False) == "fast":
                changed.append((layer, impl))
                layer.scan = PORTABLE_SCAN
    try:
        yield len(changed)
    finally:
        for layer, impl in changed:
            layer.scan = impl


def serving_model(model, precision: str | None):
    """``model`` itself, or (``precision`` differing from its config's) a copy of it built
    under ``precision`` with the same weights: what ``export_model(serving_precision=...)``
    exports. The copy's variables stay float32; only its computations change dtype."""
    if precision is None or precision == getattr(model.config, "precision", precision):
        return model
    config = dataclasses.replace(model.config, precision=precision)
    copy = type(model)(config, name=model.name)
    copy.set_weights(model.get_weights())
    return copy


def export_model(
    model,
    model_config: ModelConfig,
    model_name: str,
    data_dir,
    export_base,
    *,
    parameters: dict | None = None,
    serving_precision: str | None = None,
) -> Path:
    """Write ``export_base/VERSION`` and return its path.

    ``serving_precision`` (e.g. ``"mixed_bfloat16"``) exports ``serving_model(model,
    serving_precision)``: the graph computes in that precision while the signature keeps raw
    ids in and a float32 probability out. None exports the model as it is."""
    if serving_precision is not None:
        model = serving_model(model, serving_precision)
        model_config = model.config
    base = Path(export_base)
    if base.exists() and not base.is_dir():
        raise ExportError(f"export path {base} is a file, not a directory")
    base.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(base)
    meta = load_metadata(data_dir)
    module = ServingModule(model, Path(data_dir) / "vocab", meta, model_config.max_seq_len)
    version = next_version(base)
    tmp = base / f".tmp-{version}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        with portable_scans(model) as switched:
            module.archive().write_out(str(tmp), verbose=False)
        if switched:
            model_config = dataclasses.replace(model_config, scan=PORTABLE_SCAN)
        info = {
            "model": model_name,
            "model_config": to_dict(model_config),
            "parameters": parameters or {},
            "max_seq_len": model_config.max_seq_len,
            "raw_id_dtypes": {k: v.name for k, v in module.dtypes.items()},
            "padding_values": {k: pad_value(v) for k, v in module.dtypes.items()},
            "metadata": {k: meta[k] for k in ("schema_version", "vocab_sizes", "oracle")
                         if k in meta},
            # what mdaf_tf.predict needs to turn raw rows into the signature's inputs
            "schema": feature_schema.from_metadata(meta).to_dict(),
            "rows": {"dataset": meta.get("dataset"),
                     **{k: (meta.get("args") or {}).get(k) for k in ROW_ARGUMENTS}},
        }
        (tmp / "assets.extra").mkdir(exist_ok=True)
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        final = base / str(version)
        os.replace(tmp, final)
    except (OSError, tf.errors.OpError) as e:  # disk full, quota, permissions
        shutil.rmtree(tmp, ignore_errors=True)
        reason = getattr(e, "strerror", None) or getattr(e, "message", None) or str(e)
        reason = reason.splitlines()[0][:200]
        raise ExportError(
            f"{base}: writing export version {version} failed ({reason}); nothing of it is "
            f"left and the earlier versions are untouched"
        ) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


# ----------------------------------------------------------------------------------------
# Raw ids from a dense dataset (to check an export or evaluate one on a dataset).


def read_vocabularies(data_dir, meta: dict) -> dict[str, np.ndarray]:
    """Raw id per dense id for each vocabulary (PAD and OOV rows hold the padding value and
    a value that no vocabulary contains)."""
    dtypes = raw_dtypes(meta)
    vocabs = {}
    for name in dtypes:
        lines = (Path(data_dir) / "vocab" / f"{name}.txt").read_text().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if dtypes[name] == tf.string:
            values = [STRING_PAD.encode(), b"\x00<oov>"] + [x.encode() for x in lines]
            vocabs[name] = np.array(values, dtype=object)
        else:
            known = np.array([int(x) for x in lines], dtype=np.int64)
            unknown = min(int(known.min(initial=0)) - 1, INT_PAD - 1)
            vocabs[name] = np.concatenate([[INT_PAD, unknown], known]).astype(np.int64)
    return vocabs


def dense_to_raw(features: dict, vocabs: dict[str, np.ndarray],
                 inputs=schema.MODEL_INPUTS) -> dict[str, np.ndarray]:
    """The raw form of the model ``inputs`` among ``features`` (dense ids)."""
    raw = {}
    for feature in inputs:
        value = np.asarray(features[feature.name])
        raw[feature.name] = vocabs[feature.vocabulary][value] if feature.vocabulary else value
    return raw


def verify_export(
    export_path,
    model,
    data_dir,
    *,
    split: str = "val",
    max_examples: int | None = None,
    tolerance: float = 1e-5,
    batch_size: int = 1024,
) -> dict:
    """Compare both signatures of ``export_path``, loaded in a fresh Python process that does
    not import mdaf_tf, with ``model`` on ``split`` of ``data_dir`` fed as raw ids.

    Returns the checker's report; raises ExportError on a difference above ``tolerance``, a
    missing signature, or a checker that fails.
    """
    return verify_exports([(export_path, model)], data_dir, split=split,
                          max_examples=max_examples, tolerance=tolerance,
                          batch_size=batch_size)[0]


def verify_exports(exports, data_dir, *, split: str = "val", max_examples: int | None = None,
                   tolerance: float = 1e-5, batch_size: int = 1024) -> list[dict]:
    """``verify_export`` for several ``(export_path, model)`` pairs of one dataset, checked
    in one fresh process (one TensorFlow start instead of one per export); then
    ``saved_model_cli run`` on the first export, once that process has ended."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        pairs = []
        for k, (export_path, model) in enumerate(exports):
            arrays = _check_arrays(model, data_dir, split, max_examples, batch_size)
            np.savez(Path(tmp) / f"inputs-{k}.npz", **arrays)
            pairs += [str(Path(export_path).resolve()), str(Path(tmp) / f"inputs-{k}.npz")]
        reports = _serving_check(pairs, tmp, exports[0][0])
        reports[0].update(_serving_check(["--saved-model-cli", *pairs[:2]], tmp,
                                         exports[0][0])[0])
    for (export_path, _), report in zip(exports, reports, strict=True):
        _check_report(export_path, report, tolerance)
    return reports


def _serving_check(args: list[str], cwd, first_export) -> list[dict]:
    """The JSON lines ``serving_check.py ARGS`` prints (a process without mdaf_tf)."""
    import subprocess
    import sys

    script = Path(__file__).parent / "evaluation" / "serving_check.py"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True,
                          text=True, env=env, cwd=cwd)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise ExportError(f"{first_export}: serving check failed: {tail[0]}")
    return [json.loads(line) for line in proc.stdout.strip().splitlines()
            if line.startswith("{")]


def _check_arrays(model, data_dir, split, max_examples, batch_size) -> dict:
    """``raw_<input>`` arrays of ``split`` and the Keras model's ``expected_<output>``."""
    from mdaf_tf import data

    meta = load_metadata(data_dir)
    vocabs = read_vocabularies(data_dir, meta)
    inputs = feature_schema.from_metadata(meta).model_inputs()
    raw_parts, probabilities, gates = [], [], []
    taken = 0
    predict = tf.function(lambda features: model(features, training=False))
    with portable_scans(model):  # the scan the export runs (see CHECK_TOLERANCE)
        for features, _ in data.make_dataset(data_dir, split, batch_size, training=False):
            outputs = predict(features)
            raw_parts.append(dense_to_raw({k: v.numpy() for k, v in features.items()}, vocabs,
                                          inputs))
            probabilities.append(np.asarray(outputs["probability"]).reshape(-1))
            if "gate" in outputs:
                gates.append(np.asarray(outputs["gate"]).reshape(-1))
            taken += len(probabilities[-1])
            if max_examples is not None and taken >= max_examples:
                break
    limit = taken if max_examples is None else min(taken, max_examples)
    arrays = {
        f"raw_{f.name}": np.concatenate([p[f.name] for p in raw_parts])[:limit]
        for f in inputs
    }
    for name, value in list(arrays.items()):
        if value.dtype == object:
            arrays[name] = value.astype(bytes)
    arrays["expected_probability"] = np.concatenate(probabilities)[:limit]
    if gates:
        arrays["expected_gate"] = np.concatenate(gates)[:limit]
    return arrays


def _check_report(export_path, report: dict, tolerance: float) -> None:
    if report["nonstandard_ops"]:
        raise ExportError(f"{export_path}: ops outside TensorFlow's standard set: "
                          f"{', '.join(report['nonstandard_ops'])}")
    checks = {name: report.get(name) for name in ("serving_default", "predict_examples")}
    cli = report.get("saved_model_cli")
    if cli is not None:
        if "error" in cli:
            raise ExportError(f"{export_path}: saved_model_cli run failed: {cli['error']}")
        checks["saved_model_cli run"] = cli
    for name, result in checks.items():
        if result is None:
            raise ExportError(f"{export_path}: signature {name} missing")
        worst = max(v for k, v in result.items() if k != "finite")
        if worst > tolerance or not result["finite"]:
            raise ExportError(
                f"{export_path}: {name} differs from the Keras model by {worst:.3g} "
                f"(tolerance {tolerance:g})"
            )
