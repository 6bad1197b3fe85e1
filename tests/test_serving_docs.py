"""saved_models/README.md's serving section works when pasted.

Every request body is a fenced ```json NAME block. Each is parsed with ``json.loads``, mapped
to tensors by the rules of TF Serving's REST API (``tensorflow_serving/util/json_tensor.cc``:
row format ``instances`` = one object per example holding exactly the signature's inputs,
stacked; columnar ``inputs`` = one nested list per input; ``{"b64": ...}`` = bytes; ints only
for int64, strings only for string inputs) and fed through TF Serving's session-based loader
(``tf.compat.v1.saved_model.loader.load``) to exports made here with ``max_seq_len`` 50: the
default schema, and the extra-fields schema that the doc's ``pipelines.impressions`` flags
declare. The answers are compared with the Keras model on the same rows mapped to dense ids
by this file's own lookup in the vocabularies, which hold about half of the ids the doc uses
(the rest are unknown ids: OOV). The ``saved_model_cli`` commands run as a shell script, and
the Python snippets run with the doc's export path (and gRPC address) replaced.
"""

import argparse
import ast
import base64
import collections
import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
from concurrent import futures
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mdaf_tf import export  # noqa: E402
from mdaf_tf.data import (  # noqa: E402
    feature_schema,
    load_metadata,  # noqa: E402
    schema,
)
from mdaf_tf.models import build_model, make_config  # noqa: E402
from mdaf_tf.models.config import fill_model_config  # noqa: E402
from pipelines.declared_columns import Declaration, add_declaration_args  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "saved_models" / "README.md"
TEXT = README.read_text()
DOC_PATH = "saved_models/mdaf/1"  # the export the doc's commands name
MODEL_NAME = "mdaf"
REST_URL = f"http://localhost:8501/v1/models/{MODEL_NAME}:predict"
GRPC_ADDRESS = "localhost:8500"
SEQ = 50  # the default max_seq_len, which the doc is written for
PAD = {tf.int64: -1, tf.string: b""}

FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)


def blocks(lang: str) -> list[tuple[str, str]]:
    """(info after the language, body) of the doc's fenced blocks in ``lang``."""
    return [(info.strip(), body) for kind, info, body in FENCE.findall(TEXT) if kind == lang]


def json_bodies() -> dict[str, str]:
    bodies = {}
    for name, body in blocks("json"):
        assert re.fullmatch(r"[\w.-]+\.json", name), f"```json without a file name: {name!r}"
        assert name not in bodies, f"two ```json blocks named {name}"
        bodies[name] = body
    return bodies


def one_block(lang: str, needle: str) -> str:
    found = [body for _, body in blocks(lang) if needle in body]
    assert len(found) == 1, f"{len(found)} ```{lang} blocks with {needle!r} in {README}"
    return found[0]


BODIES = json_bodies()


class RequestError(ValueError):
    """A request TF Serving would refuse (or this check refuses: an unknown field)."""


# ---------------------------------------------------------------------------------------
# TF Serving's REST API: JSON -> tensors.


def is_b64(value) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def is_object(value) -> bool:
    return isinstance(value, dict) and not is_b64(value)


def dense_shape(value) -> list[int]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return shape


def leaves(value, shape, name, level=0):
    if isinstance(value, list):
        if level >= len(shape) or len(value) != shape[level]:
            raise RequestError(f"{name}: a list of {len(value)} where the first row has "
                               f"shape {shape}")
        for item in value:
            yield from leaves(item, shape, name, level + 1)
    elif level != len(shape):
        raise RequestError(f"{name}: a value at depth {level}, expected depth {len(shape)}")
    else:
        yield value


def leaf(value, dtype: tf.DType, name: str):
    if dtype == tf.string:
        if is_b64(value):
            return base64.b64decode(value["b64"], validate=True)
        if isinstance(value, str):
            return value.encode()
    elif dtype == tf.int64:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif dtype.is_floating:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    raise RequestError(f"{name}: {value!r} is not a JSON value for {dtype.name}")


def to_array(value, dtype: tf.DType, name: str) -> np.ndarray:
    shape = dense_shape(value)
    flat = [leaf(v, dtype, name) for v in leaves(value, shape, name)]
    numpy_dtype = object if dtype == tf.string else dtype.as_numpy_dtype
    return np.array(flat, dtype=numpy_dtype).reshape(shape)


def rest_tensors(body: dict, signatures) -> tuple[str, dict[str, np.ndarray], int]:
    """(signature name, tensors, examples) of a predict request body, as TF Serving maps it;
    stricter in one respect: a columnar ``inputs`` object with an extra key (TF Serving
    ignores it) is refused too."""
    extra = set(body) - {"signature_name", "instances", "inputs"}
    if extra:
        raise RequestError(f"unknown top-level keys {sorted(extra)}")
    name = body.get("signature_name", "serving_default")
    if name not in signatures:
        raise RequestError(f"no signature {name!r}")
    inputs = signatures[name].inputs
    if ("instances" in body) == ("inputs" in body):
        raise RequestError("a request has exactly one of 'instances' and 'inputs'")
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise RequestError("'instances' must be a non-empty list")
        if is_object(rows[0]):
            for i, row in enumerate(rows):
                if not is_object(row) or set(row) != set(inputs):
                    keys = sorted(row) if is_object(row) else row
                    raise RequestError(f"instance {i}: keys {keys} must be the signature's "
                                       f"inputs {sorted(inputs)}")
            columns = {key: [row[key] for row in rows] for key in inputs}
        elif len(inputs) == 1 and not any(is_object(row) for row in rows):
            columns = {next(iter(inputs)): rows}
        else:
            raise RequestError("plain 'instances' values need a signature with one input")
    else:
        value = body["inputs"]
        if is_object(value):
            if set(value) != set(inputs):
                raise RequestError(f"'inputs' keys {sorted(value)} must be the signature's "
                                   f"inputs {sorted(inputs)}")
            columns = value
        elif len(inputs) == 1:
            columns = {next(iter(inputs)): value}
        else:
            raise RequestError("a plain 'inputs' value needs a signature with one input")
    tensors = {key: to_array(v, tf.as_dtype(inputs[key].dtype), key)
               for key, v in columns.items()}
    return name, tensors, len(next(iter(tensors.values())))


# ---------------------------------------------------------------------------------------
# The exports and the expected answers.


class Served:
    """An export loaded with the session-based loader, and the Keras model it came from."""

    def __init__(self, path: Path, model, data_dir: Path):
        self.path, self.model = path, model
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], str(path))
        self.signatures = meta_graph.signature_def
        self.fields = {k: tf.as_dtype(v.dtype)
                       for k, v in self.signatures["serving_default"].inputs.items()}
        meta = load_metadata(data_dir)
        self.inputs = feature_schema.from_metadata(meta).model_inputs()
        self.index = {}  # vocabulary -> {raw id: dense id}, read here from the files
        for name, dtype in meta["raw_id_dtypes"].items():
            lines = (data_dir / "vocab" / f"{name}.txt").read_text().splitlines()
            ids = [x.encode() if dtype == "string" else int(x) for x in lines]
            self.index[name] = {raw: i + schema.FIRST_ID for i, raw in enumerate(ids)}

    def run(self, signature_name: str, tensors: dict[str, np.ndarray]) -> dict:
        signature = self.signatures[signature_name]
        if set(tensors) != set(signature.inputs):
            raise RequestError(f"inputs {sorted(tensors)}, the signature takes "
                               f"{sorted(signature.inputs)}")
        feed = {}
        for name, value in tensors.items():
            info = signature.inputs[name]
            dtype = tf.as_dtype(info.dtype)
            want = object if dtype == tf.string else dtype.as_numpy_dtype
            if value.dtype != want:  # the server refuses it; Session.run would cast
                raise RequestError(f"{name}: {value.dtype} for a {dtype.name} input")
            dims = [d.size for d in info.tensor_shape.dim]
            if len(dims) != value.ndim or any(d not in (-1, n) for d, n in
                                              zip(dims, value.shape, strict=True)):
                raise RequestError(f"{name}: shape {value.shape}, the signature takes {dims}")
            feed[info.name] = value
        fetch = {key: info.name for key, info in signature.outputs.items()}
        return self.session.run(fetch, feed)

    def example_rows(self, examples: np.ndarray) -> dict[str, np.ndarray]:
        """The raw rows of serialized Examples; RequestError for an unknown feature, a
        feature of the wrong kind or a history of the wrong length."""
        kinds = {tf.int64: "int64_list", tf.string: "bytes_list", tf.float32: "float_list"}
        rows = collections.defaultdict(list)
        for data in examples:
            feature = tf.train.Example.FromString(data).features.feature
            unknown = set(feature) - set(self.fields)
            if unknown:
                raise RequestError(f"Example features {sorted(unknown)} are not inputs")
            for f in self.inputs:
                dtype = self.fields[f.name]
                if f.name in feature:
                    kind = feature[f.name].WhichOneof("kind")
                    if kind != kinds[dtype]:
                        raise RequestError(f"{f.name}: {kind} for a {dtype.name} input")
                    values = list(getattr(feature[f.name], kind).value)
                    if len(values) != (SEQ if f.sequence else 1):
                        raise RequestError(f"{f.name}: {len(values)} values")
                elif f.sequence:
                    values = [PAD[dtype]] * SEQ
                elif f.name == schema.HIST_LEN:
                    values = [0]
                elif dtype.is_floating:
                    values = [np.nan]
                else:
                    raise RequestError(f"Example without {f.name}")
                rows[f.name].append(values if f.sequence else values[0])
        return {name: np.array(v, dtype=object if self.fields[name] == tf.string
                               else self.fields[name].as_numpy_dtype)
                for name, v in rows.items()}

    def keras(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The Keras model on ``raw`` mapped to dense ids here: known id -> its line + FIRST_ID,
        unknown -> OOV_ID, history positions before the last hist_len or holding the padding
        value -> PAD_ID."""
        hist_len = np.clip(raw[schema.HIST_LEN].astype(np.int64), 0, SEQ)
        recent = np.arange(SEQ)[None, :] >= SEQ - hist_len[:, None]
        dense = {}
        for f in self.inputs:
            value = raw[f.name]
            if f.vocabulary is None:
                dense[f.name] = hist_len if f.name == schema.HIST_LEN else value
                continue
            index = self.index[f.vocabulary]
            ids = np.array([index.get(v, schema.OOV_ID) for v in value.ravel()],
                           np.int64).reshape(value.shape)
            if f.sequence:
                ids = np.where(recent & (value != PAD[self.fields[f.name]]), ids, schema.PAD_ID)
            dense[f.name] = ids
        out = self.model({k: tf.constant(v) for k, v in dense.items()}, training=False)
        return {k: out[k].numpy().reshape(-1) for k in ("probability", "gate")}


def body_rows(body: dict) -> list[dict]:
    if "instances" in body:
        return [row for row in body["instances"] if is_object(row)]
    return [body["inputs"]] if is_object(body.get("inputs")) else []


def doc_ids(field_vocab: dict[str, str], bodies: list[dict]) -> dict[str, set]:
    ids = collections.defaultdict(set)
    for body in bodies:
        for row in body_rows(body):
            for field, value in row.items():
                if field in field_vocab:
                    ids[field_vocab[field]].update(
                        v for v in np.ravel(np.array(value, dtype=object)) if v not in ("", -1))
    return ids


def write_data(path: Path, declared: dict, raw_dtypes: dict, ids: dict[str, set]) -> Path:
    """metadata.json and vocab/ (all an export reads): each vocabulary holds every other id
    the doc uses, then made-up ones."""
    (path / "vocab").mkdir(parents=True)
    sizes = {}
    for name, dtype in raw_dtypes.items():
        known = sorted(ids.get(name, ()), key=repr)[::2]
        filler = [f"filler-{i}" if dtype == "string" else 900_000 + i for i in range(6)]
        lines = [str(v) for v in known + filler]
        (path / "vocab" / f"{name}.txt").write_text("".join(f"{x}\n" for x in lines))
        sizes[name] = len(lines) + schema.FIRST_ID
    meta = {"schema_version": schema.SCHEMA_VERSION, "schema": declared, "max_seq_len": SEQ,
            "vocab_sizes": sizes, "raw_id_dtypes": raw_dtypes, "splits": {}}
    (path / "metadata.json").write_text(json.dumps(meta))
    return path


def doc_declaration() -> Declaration:
    """The extra fields of the doc's ``pipelines.impressions`` command line."""
    command = re.search(r"`python -m pipelines\.impressions ([^`]*)`", TEXT)
    assert command, "the extra-fields section names its pipelines.impressions command"
    parser = argparse.ArgumentParser()
    parser.add_argument("--input")
    parser.add_argument("--output")
    add_declaration_args(parser)
    return Declaration.from_args(parser.parse_args(shlex.split(command.group(1))))


def make_export(root: Path, declared: dict, raw_dtypes: dict, bodies: list[dict],
                **config) -> Served:
    inputs = feature_schema.FeatureSchema.from_dict(declared).model_inputs()
    field_vocab = {f.name: f.vocabulary for f in inputs if f.vocabulary}
    data_dir = write_data(root / "data", declared, raw_dtypes, doc_ids(field_vocab, bodies))
    keras.utils.set_random_seed(5)
    values = dict(hidden_dim=16, d_state=4, gate_hidden=16, output_hidden=(8,),
                  embedding_dims={"user": 8, "item": 8, "cate": 4}, num_cross_layers=1,
                  num_mamba_layers=1)
    model_config = fill_model_config(make_config(MODEL_NAME, {**values, **config}),
                                     load_metadata(data_dir))
    model = build_model(MODEL_NAME, model_config)
    path = export.export_model(model, model_config, MODEL_NAME, data_dir, root / "saved")
    return Served(path, model, data_dir)


DEFAULT_FIELDS = {f.name for f in feature_schema.DEFAULT.model_inputs()}


def request_fields(body: dict) -> set[str]:
    """The field names a body sends (an Example's features for predict_examples)."""
    fields = set()
    for row in body_rows(body):
        fields |= set(row)
    if body.get("signature_name") == "predict_examples":
        for instance in body.get("instances") or []:
            if is_b64(instance):
                data = base64.b64decode(instance["b64"])
                fields |= set(tf.train.Example.FromString(data).features.feature)
    return fields


def export_key(body: dict) -> str:
    """The export a body is for: the default-schema one unless it sends another field."""
    return "default" if request_fields(body) <= DEFAULT_FIELDS else "extra"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    assert schema.DEFAULT_MAX_SEQ_LEN == SEQ  # "the default max_seq_len of 50"
    root = tmp_path_factory.mktemp("serving-docs")
    bodies = collections.defaultdict(list)
    for text in BODIES.values():
        body = json.loads(text)
        bodies[export_key(body)].append(body)
    default = make_export(root / "default", feature_schema.DEFAULT.to_dict(),
                          dict.fromkeys(feature_schema.DEFAULT.vocabularies, "int64"),
                          bodies["default"])
    declaration = doc_declaration()
    # The doc's log: string user, item and category ids, a string brand (it has missing
    # values), an integer pid; the context fields are integers.
    raw_dtypes = {name: "string" for name in ("user", "item", "cate", *declaration.categorical)}
    raw_dtypes.update({"pid": "int64", **dict.fromkeys(declaration.context, "int64")})
    extra = make_export(root / "extra", declaration.schema({"price": (20.0, 10.0)}).to_dict(),
                        raw_dtypes, bodies["extra"], embedding_dims={"hour": 4})
    assert set(extra.fields) > set(default.fields)
    yield {"default": default, "extra": extra}
    default.session.close()
    extra.session.close()


def serve_and_expect(body: dict, exports: dict[str, Served]):
    """(export's answer, Keras's answer, examples) of a request body; a predict_examples
    body's Examples are checked before the export runs them."""
    served = exports[export_key(body)]
    name, tensors, n = rest_tensors(body, served.signatures)
    raw = served.example_rows(tensors["examples"]) if name == "predict_examples" else tensors
    return served.run(name, tensors), served.keras(raw), n


def assert_answer(got: dict, want: dict, n: int):
    for key in ("probability", "gate"):
        assert got[key].shape == (n,)
        assert np.isfinite(got[key]).all()
        np.testing.assert_allclose(got[key], want[key], atol=1e-5)


# ---------------------------------------------------------------------------------------
# The tests.


def test_the_doc_has_every_kind_of_request_body():
    bodies = {name: json.loads(text) for name, text in BODIES.items()}
    kinds = {("instances" if "instances" in b else "inputs", b.get("signature_name"))
             for b in bodies.values()}
    assert {("instances", "serving_default"), ("inputs", "serving_default"),
            ("instances", "predict_examples")} <= kinds
    assert any(is_b64(row) for b in bodies.values() for row in b.get("instances", []))
    assert {export_key(b) for b in bodies.values()} == {"default", "extra"}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_request_body_runs_in_the_session_loader_and_matches_keras(name, served):
    body = json.loads(BODIES[name])
    got, want, n = serve_and_expect(body, served)
    assert_answer(got, want, n)


def test_the_vocabularies_hold_some_of_the_doc_ids_and_not_others(served):
    """So that the comparison with Keras covers both known and unknown (OOV) ids."""
    for key, export_ in served.items():
        bodies = [b for b in map(json.loads, BODIES.values()) if export_key(b) == key]
        ids = [v for b in bodies for row in body_rows(b) for field in ("user_id", "item_id")
               for v in np.ravel(np.array(row[field], dtype=object))]
        vocab = {**export_.index["user"], **export_.index["item"]}
        known = [v for v in ids if (v.encode() if isinstance(v, str) else v) in vocab]
        assert 0 < len(known) < len(ids), (key, ids)


def row_body() -> dict:
    return json.loads(BODIES["request.json"])


@pytest.mark.parametrize("change", ["short history", "unknown field", "missing field",
                                    "string id", "columnar short history",
                                    "columnar unknown field", "example short history",
                                    "example unknown feature"])
def test_a_body_tf_serving_would_refuse_fails_the_check(change, served):
    """What the body test must catch: the old doc's length-5 histories, a field the export
    does not take, a missing one, a wrong JSON type."""
    body = row_body()
    row = body["instances"][0]
    if change == "short history":  # what the doc showed before, "shortened for reading"
        row["hist_item_id"] = row["hist_item_id"][-5:]
        row["hist_cate_id"] = row["hist_cate_id"][-5:]
    elif change == "unknown field":
        row["brand"] = 7
    elif change == "missing field":
        del row["hist_len"]
    elif change == "string id":
        row["user_id"] = "17"
    elif change.startswith("columnar"):
        body = json.loads(BODIES["request-columnar.json"])
        if change == "columnar short history":
            body["inputs"]["hist_item_id"][1] = body["inputs"]["hist_item_id"][1][1:]
        else:
            body["inputs"]["price"] = [1.0, 2.0]
    else:
        def ints(*values):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

        features = {"user_id": ints(17), "item_id": ints(100350), "cate_id": ints(5003)}
        if change == "example short history":
            features["hist_item_id"] = ints(-1, -1, 100109)
        else:
            features["age"] = ints(30)
        example = tf.train.Example(features=tf.train.Features(feature=features))
        encoded = base64.b64encode(example.SerializeToString()).decode()
        body = {"signature_name": "predict_examples", "instances": [{"b64": encoded}]}
    with pytest.raises(RequestError):
        serve_and_expect(body, served)


def test_every_curl_posts_a_body_of_the_doc():
    written = set(re.findall(r'open\("([\w.-]+\.json)", "w"\)', TEXT))
    curls = [line for line in TEXT.splitlines() if line.lstrip().startswith("curl")]
    assert len(curls) >= 5
    posted = set()
    for line in curls:
        assert REST_URL in line, line
        match = re.search(r" -d @([\w.-]+\.json)\s*$", line)
        assert match, f"a curl without -d @FILE: {line}"
        posted.add(match.group(1))
    assert posted <= set(BODIES) | written
    assert set(BODIES) | written <= posted
    assert f"-e MODEL_NAME={MODEL_NAME}" in TEXT


def test_docker_image_is_pinned_to_the_tensorflow_the_project_requires():
    required = re.search(r"tensorflow>=(\d+)\.(\d+),<(\d+)\.(\d+)",
                         (ROOT / "setup.cfg").read_text())
    major, minor = required.group(1), required.group(2)
    assert (required.group(3), int(required.group(4))) == (major, int(minor) + 1)
    assert tf.__version__.startswith(f"{major}.{minor}.")
    tags = re.findall(r"tensorflow/serving:([\w.-]+)", TEXT)
    assert tags and all(re.fullmatch(rf"{major}\.{minor}\.\d+(-gpu)?", t) for t in tags), tags
    images = [m for _, body in blocks("bash") for m in re.findall(r"tensorflow/serving\S*", body)]
    assert images and all(m.startswith("tensorflow/serving:") for m in images), images
    apis = re.findall(r"tensorflow-serving-api==(\S+)", TEXT)
    assert apis and all(v.startswith(f"{major}.{minor}.") for v in apis), apis


def test_base64_snippet_writes_a_body_the_export_takes(served, tmp_path, monkeypatch):
    snippet = one_block("python", "b64encode")
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "README-b64", "exec"), {})
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["examples-history.json"]
    body = json.loads((tmp_path / written[0]).read_text())
    got, want, n = serve_and_expect(body, served)
    assert_answer(got, want, n)
    # The same example as the row-format body.
    rows = served["default"].example_rows(rest_tensors(
        body, served["default"].signatures)[1]["examples"])
    _, tensors, _ = rest_tensors(row_body(), served["default"].signatures)
    for name, value in tensors.items():
        np.testing.assert_array_equal(rows[name], value)


def test_python_snippet_answers_as_the_row_body(served):
    snippet = one_block("python", "tf.saved_model.load")
    assert DOC_PATH in snippet
    namespace = {}
    exec(compile(snippet.replace(DOC_PATH, str(served["default"].path)), "README-python",
                 "exec"), namespace)
    want, _, _ = serve_and_expect(row_body(), served)
    assert_answer({k: v.numpy() for k, v in namespace["out"].items()}, want, 1)


@contextlib.contextmanager
def prediction_service(served: Served, seen: list):
    """The address of a PredictionService answering from ``served``: an in-process gRPC
    server with tensorflow-serving-api's own protos (a test dependency)."""
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802 (the service's name)
            seen.append(request)
            tensors = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            outputs = served.run(request.model_spec.signature_name or "serving_default",
                                 tensors)
            response = predict_pb2.PredictResponse()
            for key, value in outputs.items():
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


def test_grpc_snippet_sends_the_row_body(served):
    snippet = one_block("python", "PredictRequest")
    assert GRPC_ADDRESS in snippet
    seen = []
    namespace = {}
    with prediction_service(served["default"], seen) as address:
        exec(compile(snippet.replace(GRPC_ADDRESS, address), "README-grpc", "exec"), namespace)
    assert len(seen) == 1 and seen[0].model_spec.name == MODEL_NAME
    _, tensors, _ = rest_tensors(row_body(), served["default"].signatures)
    sent = {k: tf.make_ndarray(v) for k, v in seen[0].inputs.items()}
    assert sent.keys() == tensors.keys()
    for name, value in tensors.items():
        np.testing.assert_array_equal(sent[name], value)
    got = {k: tf.make_ndarray(v) for k, v in namespace["response"].outputs.items()}
    assert_answer(got, served["default"].keras(tensors), 1)


def test_saved_model_cli_commands_run(served, tmp_path):
    """The doc's saved_model_cli commands, run as a shell script in a directory holding
    request.json; `show` prints what the doc shows and each `run` answers as Keras."""
    scripts = [body for _, body in blocks("bash") if "saved_model_cli" in body]
    assert len(scripts) == 3
    default = served["default"]
    script = "\n".join(scripts)
    assert script.count(DOC_PATH) == 3
    (tmp_path / "request.json").write_text(BODIES["request.json"])
    env = dict(os.environ, PYTHONPATH="",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c",
                           script.replace(DOC_PATH, str(default.path))],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    shown = one_block("text", "The given SavedModel SignatureDef").strip()
    assert out.startswith(shown + "\n"), out[:3000]
    results = re.findall(r"Result for output key probability:\n\[([^\]]*)\]", out)
    assert len(results) == 2, out
    _, tensors, _ = rest_tensors(row_body(), default.signatures)
    np.testing.assert_allclose(np.array(results[0].split(), float),
                               default.keras(tensors)["probability"], atol=1e-5)
    examples = re.search(r"--input_examples 'examples=(\[.*\])'", script)
    want = default.keras(default.example_rows(np.array([
        tf.train.Example(features=tf.train.Features(feature={
            k: tf.train.Feature(int64_list=tf.train.Int64List(value=v))
            for k, v in features.items()})).SerializeToString()
        for features in ast.literal_eval(examples.group(1))], dtype=object)))
    np.testing.assert_allclose(np.array(results[1].split(), float), want["probability"],
                               atol=1e-5)
