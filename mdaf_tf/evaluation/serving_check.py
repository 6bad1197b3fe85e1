"""Check an exported SavedModel the way TF Serving loads it, in a process without mdaf_tf.

Run as a script (``python path/to/serving_check.py EXPORT_DIR INPUTS.npz [EXPORT_DIR
INPUTS.npz ...]``), not as a module: it imports only numpy and TensorFlow. Each export is
loaded with TensorFlow's session-based loader (``tf.compat.v1.saved_model.loader.load``:
import the graph, run the restore op, run the init op), which is what TF Serving runs;
``tf.saved_model.load``, the Python object-graph loader, rewires variables and tables and can
pass an export TF Serving cannot run. Both signatures are run on the raw inputs in
``INPUTS.npz`` (``raw_<feature>`` arrays, plus ``expected_probability`` and optionally
``expected_gate``) in batches of several sizes. Every op of the graph and of its function
library must be one of TensorFlow's own (``tf.raw_ops``). Prints one JSON object per export
with what it found. With ``--saved-model-cli`` it runs ``saved_model_cli run`` on
``serving_default`` instead, for the first rows, without importing TensorFlow itself (one
TensorFlow process at a time: the main command's peak memory).
"""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# TensorFlow is imported where it is used: the --saved-model-cli mode needs numpy alone, so
# that saved_model_cli is the only TensorFlow process alive while it runs.

# Batch sizes cycled through: batch 1, odd sizes, and a large one (memory grows with it:
# the checking process peaks at 2.4 GB with 4096 and 1.2 GB with 1024, default MDAF, L 50).
BATCH_SIZES = (1, 3, 64, 1024)
CLI_EXAMPLES = 8
SIGNATURES = ("serving_default", "predict_examples")


def _feature(value):
    import tensorflow as tf

    value = np.atleast_1d(value)
    if value.dtype.kind in "SUO":
        items = [v if isinstance(v, bytes) else str(v).encode() for v in value.tolist()]
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=items))
    if value.dtype.kind == "f":
        return tf.train.Feature(float_list=tf.train.FloatList(value=value.tolist()))
    return tf.train.Feature(int64_list=tf.train.Int64List(value=value.astype(np.int64).tolist()))


def _serialize(raw, i):
    import tensorflow as tf

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


def nonstandard_ops(export_dir) -> list[str]:
    """Op types in the export's graphs or their functions outside TensorFlow's standard set,
    the ops ``tf.raw_ops`` holds (read from ``saved_model.pb``: the loader fails on an unknown
    op before it says which)."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(Path(export_dir, "saved_model.pb").read_bytes())
    ops = set()
    for meta_graph in saved_model.meta_graphs:
        ops |= _graph_ops(meta_graph.graph_def)
    return sorted(op for op in ops if not hasattr(tf.raw_ops, op))


def _graph_ops(graph) -> set[str]:
    ops = {node.op for node in graph.node}
    functions = {f.signature.name for f in graph.library.function}
    for function in graph.library.function:
        ops.update(node.op for node in function.node_def)
    return ops - functions


def _run(session, signature, make_feed, n):
    fetches = {key: info.name for key, info in signature.outputs.items()}
    outputs = {}
    for start, end in _batches(n):
        feed = make_feed(start, end)
        result = session.run(fetches, {signature.inputs[k].name: v for k, v in feed.items()})
        for key, value in result.items():
            outputs.setdefault(key, []).append(np.asarray(value).reshape(-1))
    return {k: np.concatenate(v) for k, v in outputs.items()}


def _differences(outputs, expected, n) -> dict:
    report = {key: float(np.max(np.abs(outputs[key] - expected[key]))) if n else 0.0
              for key in expected}
    report["finite"] = bool(all(np.isfinite(v).all() for v in outputs.values()))
    return report


def saved_model_cli_run(export_dir, raw, expected) -> dict | None:
    """``saved_model_cli run`` on ``serving_default`` for the first rows: its differences
    from the expected outputs (None where the command is not installed)."""
    cli = shutil.which("saved_model_cli")
    if cli is None:
        return None
    n = min(CLI_EXAMPLES, len(expected["probability"]))
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "inputs.npz", **{k: v[:n] for k, v in raw.items()})
        inputs = ";".join(f"{k}={tmp}/inputs.npz[{k}]" for k in raw)
        done = subprocess.run(
            [cli, "run", "--dir", export_dir, "--tag_set", "serve", "--signature_def",
             "serving_default", "--inputs", inputs, "--outdir", f"{tmp}/out"],
            capture_output=True, text=True)
        if done.returncode != 0:
            lines = [x for x in done.stderr.splitlines() if x.strip()] or ["(no output)"]
            return {"error": lines[-1][:300]}
        outputs = {p.stem: np.load(p).reshape(-1) for p in Path(tmp, "out").glob("*.npy")}
    return _differences(outputs, {k: v[:n] for k, v in expected.items()}, n)


def _load_inputs(inputs_path):
    data = np.load(inputs_path, allow_pickle=False)
    raw = {k[len("raw_"):]: data[k] for k in data.files if k.startswith("raw_")}
    expected = {k[len("expected_"):]: data[k] for k in data.files if k.startswith("expected_")}
    return raw, expected


def main(export_dir, inputs_path):
    import tensorflow as tf

    raw, expected = _load_inputs(inputs_path)
    n = len(expected["probability"])
    report = {"examples": n, "loader": "tf.compat.v1.saved_model.loader",
              "nonstandard_ops": nonstandard_ops(export_dir)}
    if report["nonstandard_ops"]:
        print(json.dumps(report))
        return
    tf.get_logger().setLevel("ERROR")  # the v1 loader's deprecation notice
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], export_dir)
        signatures = meta_graph.signature_def
        report["signatures"] = sorted(k for k in signatures if not k.startswith("__"))
        serving_inputs = signatures["serving_default"].inputs
        report["serving_default_inputs"] = {
            name: tf.as_dtype(info.dtype).name for name, info in sorted(serving_inputs.items())}

        def raw_feed(start, end):
            return {k: v[start:end] for k, v in raw.items()}

        def example_feed(start, end):
            return {"examples": np.array([_serialize(raw, i) for i in range(start, end)],
                                         dtype=object)}

        for name, make in zip(SIGNATURES, (raw_feed, example_feed), strict=True):
            if name in signatures:
                report[name] = _differences(_run(session, signatures[name], make, n),
                                            expected, n)
    report["mdaf_tf_imported"] = any(m.split(".")[0] == "mdaf_tf" for m in sys.modules)
    print(json.dumps(report))


def cli_main(export_dir, inputs_path):
    """``saved_model_cli run`` alone (this process imports no TensorFlow)."""
    raw, expected = _load_inputs(inputs_path)
    print(json.dumps({"saved_model_cli": saved_model_cli_run(export_dir, raw, expected),
                      "tensorflow_imported": "tensorflow" in sys.modules}))


USAGE = ("usage: serving_check.py [--saved-model-cli] EXPORT_DIR INPUTS.npz "
         "[EXPORT_DIR INPUTS.npz ...]")

if __name__ == "__main__":
    args = sys.argv[1:]
    check = main
    if args[:1] == ["--saved-model-cli"]:
        args, check = args[1:], cli_main
    if not args or len(args) % 2:
        sys.exit(USAGE)
    for at in range(0, len(args), 2):
        check(args[at], args[at + 1])
