"""Check an exported SavedModel in a process that never imports mdaf_tf.

Run as a script (``python path/to/serving_check.py EXPORT_DIR INPUTS.npz [EXPORT_DIR
INPUTS.npz ...]``), not as a module:
it imports only numpy and TensorFlow, loads the export with ``tf.saved_model.load`` and calls
both signatures on the raw inputs in ``INPUTS.npz`` (``raw_<feature>`` arrays, plus
``expected_probability`` and optionally ``expected_gate``), in batches of several sizes. It
also runs ``saved_model_cli show --all`` (on the first export only: it starts TensorFlow
again). Prints one JSON object per export with what it found.
"""

import json
import shutil
import subprocess
import sys

import numpy as np
import tensorflow as tf

BATCH_SIZES = (1, 3, 64, 4096)


def _feature(value):
    value = np.atleast_1d(value)
    if value.dtype.kind in "SUO":
        items = [v if isinstance(v, bytes) else str(v).encode() for v in value.tolist()]
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=items))
    if value.dtype.kind == "f":
        return tf.train.Feature(float_list=tf.train.FloatList(value=value.tolist()))
    return tf.train.Feature(int64_list=tf.train.Int64List(value=value.astype(np.int64).tolist()))


def _serialize(raw, i):
    # a missing numeric value (NaN) is left out of the Example, as a client would
    feature = {name: _feature(values[i]) for name, values in raw.items()
               if not (values.dtype.kind == "f" and np.isnan(values[i]).all())}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _batches(n):
    start, k = 0, 0
    while start < n:
        size = BATCH_SIZES[k % len(BATCH_SIZES)]
        yield start, min(start + size, n)
        start, k = start + size, k + 1


def _run(signature, make_inputs, n):
    outputs = {}
    for start, end in _batches(n):
        result = signature(**make_inputs(start, end))
        for key, value in result.items():
            outputs.setdefault(key, []).append(value.numpy().reshape(-1))
    return {k: np.concatenate(v) for k, v in outputs.items()}


def main(export_dir, inputs_path, run_cli=True):
    data = np.load(inputs_path, allow_pickle=False)
    raw = {k[len("raw_"):]: data[k] for k in data.files if k.startswith("raw_")}
    expected = {k[len("expected_"):]: data[k] for k in data.files if k.startswith("expected_")}
    n = len(expected["probability"])
    loaded = tf.saved_model.load(export_dir)
    report = {"examples": n, "signatures": sorted(loaded.signatures.keys())}
    serving_inputs = loaded.signatures["serving_default"].structured_input_signature[1]
    report["serving_default_inputs"] = {
        name: spec.dtype.name for name, spec in sorted(serving_inputs.items())}

    def raw_inputs(start, end):
        return {
            k: tf.constant(v[start:end].astype(object) if v.dtype.kind == "S" else v[start:end])
            for k, v in raw.items()
        }

    def example_inputs(start, end):
        return {"examples": tf.constant([_serialize(raw, i) for i in range(start, end)])}

    for name, make in (("serving_default", raw_inputs), ("predict_examples", example_inputs)):
        outputs = _run(loaded.signatures[name], make, n)
        report[name] = {
            key: float(np.max(np.abs(outputs[key] - expected[key]))) if n else 0.0
            for key in expected
        }
        report[name]["finite"] = bool(all(np.isfinite(v).all() for v in outputs.values()))
    cli = shutil.which("saved_model_cli")
    if cli and run_cli:
        shown = subprocess.run(
            [cli, "show", "--all", "--dir", export_dir], capture_output=True, text=True
        )
        report["saved_model_cli"] = [
            name for name in ("serving_default", "predict_examples")
            if f"signature_def['{name}']" in shown.stdout
        ]
    report["mdaf_tf_imported"] = any(m.split(".")[0] == "mdaf_tf" for m in sys.modules)
    print(json.dumps(report))


if __name__ == "__main__":
    if len(sys.argv) < 3 or len(sys.argv) % 2 == 0:
        sys.exit("usage: serving_check.py EXPORT_DIR INPUTS.npz [EXPORT_DIR INPUTS.npz ...]")
    for at in range(1, len(sys.argv), 2):
        main(sys.argv[at], sys.argv[at + 1], run_cli=at == 1)
