"""Floating-point operations of a built Keras model's forward pass, counted from its graph.

``count_flops(model, batch_size)`` traces ``model(inputs, training=False)`` with
``tf.function(...).get_concrete_function`` on a batch of ``batch_size`` examples shaped as
``model.input`` declares (a functional ``keras.Model``: every input's shape but the batch must
be static), and walks the traced graph's ops -- and the bodies of the functions they call
(``PartitionedCall``, ``If``, ``While``: a loop body counted once per iteration when its
``maximum_iterations`` is a constant) -- summing what each op computes from its static shapes.
``flops_per_example(model)`` is the count at batch 2 minus the count at batch 1: the work done
per example, without what a call does once per batch (``A = -exp(A_log)`` of the Mamba blocks).
Nothing is run; the model is traced once per batch size.

Conventions (those of the analytic count from a ``ModelConfig`` that the package held before,
here applied to whatever ops the model's graph holds):

* **Matmul** (``MatMul``, ``BatchMatMulV2/V3``, ``Einsum``): ``2 * M * N * K`` per product
  (one multiply and one add per weight and row), from the operands' static shapes; a Dense
  layer on a sequence runs once per token, so its count is the token count times its kernel's.
* **Scan**: the selective scan's recurrence (the custom ops of ``mdaf_tf/ops/``:
  ``MdafSelectiveScan`` and the fused ``MdafGatedScan``), per token, per channel
  (``d_inner``), per state (``d_state``): ``delta * A`` (1), ``exp`` (1), ``decay * h`` (1),
  ``(delta u) * B`` (1), ``+`` (1), ``C * h`` (1), the sum over states (1) = 7; per token and
  channel ``delta * u`` (1), ``D * u`` (1) and its add (1) = 3. So ``T * d_inner * (7 *
  d_state + 3)``. The scan implementations written in TensorFlow ops (``chunked``,
  ``stepwise``, ``reference``) are counted op by op instead, as elementwise work and matmuls,
  so a scan count is given for the custom ops only (the CPU path of ``scan="auto"``).
* **Elementwise** ops, one FLOP per arithmetic operation per output element, with these
  per-element costs: add, subtract, multiply, divide, negate, maximum, minimum, ReLU, exp,
  log, square root and its reciprocal, square, erf = 1 (``ELEMENTWISE``); a bias add = 1;
  sigmoid = 3 (exp, add, divide); softplus = 3 (exp, add, log); tanh = 3; squared difference
  = 2. Composite layers count as their ops: SiLU = 4 (sigmoid, multiply); exact GELU = 5
  (scale, negate, erfc, multiply, halve); Keras's LayerNorm 9 per element (mean 1, squared
  difference 2, mean 1, then ``gamma * rsqrt``, ``x * scale``, ``mean * scale``, ``beta -
  that``, the final add), where the analytic count took 7. Reductions (``Sum``, ``Mean``,
  ``Max``, ``Min``, ``Prod``) cost one per input element. The fused custom ops count
  what they fuse: ``MdafCausalConvSilu`` ``2 * d_conv + 4`` per output element (the
  depthwise causal convolution's multiplies and adds with its bias, SiLU), ``MdafGatedScan``
  besides its scan 9 per (token, channel) (``dt + dt_bias`` 1, softplus 3, SiLU of the gate 4,
  the gating multiply 1). Only ops on floating-point tensors count: integer index and shape
  arithmetic does not.
* **Excluded** (zero here): embedding lookups (gathers), the PAD masking selects
  (``SelectV2``) and the comparisons that make the masks, concatenation, slicing, reshapes,
  casts, dropout (the identity at inference), and work done once per batch rather than per
  example (by ``flops_per_example``'s difference). Per-row scalars (the reciprocal square root
  of a LayerNorm, a pooled row's divisor) are counted like any elementwise op, at their small
  size. An op of a floating-point type that no rule here covers is counted zero and listed
  under ``"unknown_ops"``, so that a new op is seen rather than silently left out.

Training counts 3x the forward pass (``TRAINING_MULTIPLIER``): the backward pass of a matmul
is two matmuls of the same size (gradients of the input and of the weight), and that ratio
is used for every op. The loss, the dropout masks and the optimizer update (which scale with
the parameters, not the examples) are not counted.

At MDAF's seed config (``build_model("mdaf", ...)`` at its defaults, L = 50, the fast scan)
the forward pass is about 54 MFLOP per example (matmul 49.79, scan 2.94, elementwise 1.20);
about 92% of it is matmuls of the sequence branch. The analytic count gave the same matmul and
scan figures and 1.13 MFLOP elementwise (its LayerNorm 7 per element, no per-row scalars).
"""

from __future__ import annotations

import re
import string
from collections import Counter

TRAINING_MULTIPLIER = 3
KINDS = ("matmul", "scan", "elementwise")

# Per-output-element costs of the elementwise ops (see the module docstring).
ELEMENTWISE = {
    **dict.fromkeys(
        ("Add", "AddV2", "BiasAdd", "Sub", "Mul", "MulNoNan", "Div", "RealDiv", "DivNoNan",
         "FloorDiv", "Neg", "Maximum", "Minimum", "Abs", "Sign", "Relu", "Relu6", "Exp",
         "Expm1", "Log", "Log1p", "Sqrt", "Rsqrt", "Reciprocal", "Inv", "Square", "Pow",
         "Erf", "Erfc", "Floor", "Ceil", "Round", "ClipByValue", "Cumsum", "Cumprod"), 1),
    "SquaredDifference": 2,
    "LeakyRelu": 2,  # compare, select
    "Sigmoid": 3,
    "Softplus": 3,
    "Tanh": 3,
    "Elu": 3,
    "Selu": 4,
    "Gelu": 5,
    "Softmax": 5,  # max, subtract, exp, sum, divide
    "LogSoftmax": 5,
}
REDUCTIONS = {"Sum", "Mean", "Max", "Min", "Prod", "EuclideanNorm"}
MATMULS = {"MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum"}
# Ops that move, select or look up values without arithmetic, and graph plumbing.
ZERO = {
    "Const", "Placeholder", "Identity", "IdentityN", "NoOp", "ReadVariableOp", "VarHandleOp",
    "Reshape", "Squeeze", "ExpandDims", "Transpose", "StridedSlice", "Slice", "ConcatV2",
    "Concat", "Pack", "Unpack", "Split", "SplitV", "Tile", "BroadcastTo", "Fill", "ZerosLike",
    "OnesLike", "Shape", "ShapeN", "Size", "Rank", "Range", "Cast", "Bitcast", "StopGradient",
    "PreventGradient", "GatherV2", "Gather", "GatherNd", "ResourceGather", "ResourceGatherNd",
    "SelectV2", "Select", "Where", "Pad", "PadV2", "MirrorPad", "OneHot", "ReverseV2", "Roll",
    "EnsureShape", "CheckNumerics", "Snapshot", "Less", "LessEqual", "Greater", "GreaterEqual",
    "Equal", "NotEqual", "LogicalAnd", "LogicalOr", "LogicalNot", "IsNan", "IsFinite",
    "ArgMax", "ArgMin", "TopKV2", "TensorListReserve", "TensorListFromTensor",
    "TensorListGetItem", "TensorListSetItem", "TensorListStack", "TensorListLength",
    "StatelessRandomUniformV2", "StatelessRandomGetKeyCounter", "RandomUniform",
    "RandomStandardNormal",
}
CALLS = {"PartitionedCall", "StatefulPartitionedCall"}
BRANCHES = {"If": ("then_branch", "else_branch"), "StatelessIf": ("then_branch", "else_branch")}
LOOPS = {"While", "StatelessWhile"}
FLOATS = {"float16", "bfloat16", "float32", "float64"}


def scan_flops(tokens: int, d_inner: int, d_state: int) -> int:
    """The selective scan's recurrence over ``tokens`` (batch x length) tokens."""
    return tokens * d_inner * (7 * d_state + 3)


def _size(shape) -> int | None:
    dims = shape.as_list() if shape.rank is not None else None
    if dims is None or any(d is None for d in dims):
        return None
    out = 1
    for d in dims:
        out *= d
    return out


def _is_float(tensor) -> bool:
    return tensor.dtype.name in FLOATS


def _matmul(op) -> int | None:
    """``2 M N K`` of a matmul-type op, from its static shapes (None: not static)."""
    if op.type == "Einsum":
        return _einsum(op)
    a, b = (t.shape for t in op.inputs[:2])
    out = _size(op.outputs[0].shape)
    if a.rank is None or out is None:
        return None
    if op.type == "MatMul":
        k = a[0] if op.get_attr("transpose_a") else a[1]
    else:
        k = a[-2] if op.get_attr("adj_x") else a[-1]
    return None if k is None else 2 * out * k


def _einsum(op) -> int | None:
    """Two FLOPs per term of the product over every index, when an index is summed out."""
    equation = op.get_attr("equation").decode().replace(" ", "")
    inputs, _, output = equation.partition("->")
    terms = inputs.split(",")
    spare = iter(c for c in string.ascii_letters if c not in equation)
    sizes, ellipsis = {}, None
    for term, tensor in zip(terms, op.inputs, strict=True):
        dims = tensor.shape.as_list()
        if "..." in term:
            named = len(term) - 3
            if ellipsis is None:
                ellipsis = "".join(next(spare) for _ in range(len(dims) - named))
            extra = len(dims) - named
            term = term.replace("...", ellipsis[len(ellipsis) - extra:])
        for letter, dim in zip(term, dims, strict=True):
            if dim is None:
                return None
            sizes[letter] = max(sizes.get(letter, 1), dim)
    product = 1
    for dim in sizes.values():
        product *= dim
    summed = set("".join(terms).replace("...", "")) - set(output.replace("...", ""))
    return 2 * product if summed else product


def _custom(op) -> dict | None:
    """The scan ops of ``mdaf_tf/ops/`` (their FLOPs by kind), or None for another op."""
    if op.type == "MdafSelectiveScan":  # u (B, L, D), ..., a (D, N)
        tokens_channels, d_state = _size(op.inputs[0].shape), op.inputs[2].shape[-1]
        return {"scan": tokens_channels * (7 * d_state + 3)}
    if op.type == "MdafGatedScan":  # u (B, L, D), dt, dt_bias, a (D, N), bc, d, z, valid
        tokens_channels, d_state = _size(op.inputs[0].shape), op.inputs[3].shape[-1]
        return {"scan": tokens_channels * (7 * d_state + 3), "elementwise": 9 * tokens_channels}
    if op.type == "MdafCausalConvSilu":  # x (B, L, D), kernel (K, D), bias, valid
        d_conv = op.inputs[1].shape[0]
        return {"elementwise": (2 * d_conv + 4) * _size(op.outputs[0].shape)}
    return None


def _function_graph(graph, name: str):
    """The graph of the function ``name`` an op of ``graph`` calls (nested calls look in the
    outer graphs' libraries too)."""
    while graph is not None:
        function = graph._get_function(name)  # private: TensorFlow has no public lookup
        if function is not None:
            return function.graph
        graph = getattr(graph, "outer_graph", None)
    raise LookupError(f"function {name!r} not found in the traced graph's library")


def _trip_count(op) -> int | None:
    """Iterations of a ``While`` op when ``maximum_iterations`` (its second loop variable,
    as ``tf.while_loop`` and ``tf.scan`` build it) is a constant."""
    import tensorflow as tf

    value = tf.get_static_value(op.inputs[1]) if len(op.inputs) > 1 else None
    return int(value) if value is not None and int(value) >= 0 else None


class _Counter:
    def __init__(self, layer_names: set[str], model_name: str | None):
        self.layer_names = layer_names
        self.model_name = model_name
        self.totals = dict.fromkeys(KINDS, 0)
        self.by_layer: dict[str, dict[str, int]] = {}
        self.unknown: Counter = Counter()
        self.unshaped: Counter = Counter()
        self.unbounded_loops: list[str] = []

    def layer_path(self, op_name: str) -> str:
        """The Keras layers an op's name scope runs through (the model's own left out):
        ``"sequence_encoder/mamba_0"`` for ``mdaf_1/sequence_encoder_1/mamba_0_1/MatMul``."""
        path = []
        for scope in op_name.split("/")[:-1]:
            name = scope if scope in self.layer_names else re.sub(r"_\d+$", "", scope)
            if name in self.layer_names:
                path.append(name)
        if path and path[0] == self.model_name:
            path = path[1:]
        return "/".join(path)

    def add(self, layer: str, kind: str, flops: int, times: int) -> None:
        self.totals[kind] += flops * times
        counts = self.by_layer.setdefault(layer, dict.fromkeys(KINDS, 0))
        counts[kind] += flops * times

    def walk(self, graph, times: int = 1, layer: str | None = None) -> None:
        for op in graph.get_operations():
            here = layer if layer is not None else self.layer_path(op.name)
            self.count_op(op, times, here)

    def count_op(self, op, times: int, layer: str) -> None:
        kind = op.type
        if kind in CALLS:
            self.walk(_function_graph(op.graph, op.get_attr("f").name), times, layer)
            return
        if kind in BRANCHES:  # the costlier branch
            branches = []
            for attr in BRANCHES[kind]:
                branch = _Counter(self.layer_names, self.model_name)
                branch.walk(_function_graph(op.graph, op.get_attr(attr).name), times, layer)
                branches.append(branch)
            self.merge(max(branches, key=lambda b: sum(b.totals.values())))
            return
        if kind in LOOPS:
            trips = _trip_count(op)
            if trips is None:
                self.unbounded_loops.append(op.name)
                trips = 1
            self.walk(_function_graph(op.graph, op.get_attr("body").name), times * trips, layer)
            return
        custom = _custom(op)
        if custom is not None:
            for k, v in custom.items():
                self.add(layer, k, v, times)
            return
        if kind in ZERO or not op.outputs:
            return
        if kind in MATMULS:
            flops = _matmul(op)
            if flops is None:
                self.unshaped[kind] += 1
            else:
                self.add(layer, "matmul", flops, times)
            return
        if kind in REDUCTIONS:
            if not _is_float(op.inputs[0]):
                return
            elements = _size(op.inputs[0].shape)
        elif kind in ELEMENTWISE or kind == "AddN":
            if not _is_float(op.outputs[0]):
                return
            elements = _size(op.outputs[0].shape)
        else:
            if any(_is_float(t) for t in op.outputs):
                self.unknown[kind] += 1
            return
        if elements is None:
            self.unshaped[kind] += 1
            return
        cost = len(op.inputs) - 1 if kind == "AddN" else ELEMENTWISE.get(kind, 1)
        self.add(layer, "elementwise", cost * elements, times)

    def merge(self, other: _Counter) -> None:
        for kind in KINDS:
            self.totals[kind] += other.totals[kind]
        for layer, counts in other.by_layer.items():
            mine = self.by_layer.setdefault(layer, dict.fromkeys(KINDS, 0))
            for kind in KINDS:
                mine[kind] += counts[kind]
        self.unknown.update(other.unknown)
        self.unshaped.update(other.unshaped)
        self.unbounded_loops += other.unbounded_loops


def count_graph(graph, layer_names=(), model_name: str | None = None) -> dict:
    """FLOPs of every op of a traced ``graph`` (``ConcreteFunction.graph``), as
    ``count_flops`` returns them; ``layer_names`` name the scopes ``by_layer`` groups by
    (``model_name``'s own scope left out)."""
    counter = _Counter(set(layer_names), model_name)
    counter.walk(graph)
    return {
        **counter.totals,
        "total": sum(counter.totals.values()),
        "by_layer": {k: {**v, "total": sum(v.values())}
                     for k, v in sorted(counter.by_layer.items())},
        "unknown_ops": dict(counter.unknown),
        "unshaped_ops": dict(counter.unshaped),
        "unbounded_loops": counter.unbounded_loops,
    }


def input_signature(model, batch_size: int):
    """``model.input``'s structure as ``tf.TensorSpec`` of a ``batch_size`` batch."""
    import keras
    import tensorflow as tf

    def spec(tensor):
        shape = (batch_size, *tuple(tensor.shape)[1:])
        if any(d is None for d in shape):
            raise ValueError(f"input {tensor.name!r} has a dimension of unknown size "
                             f"{tuple(tensor.shape)}: build the model with static shapes")
        return tf.TensorSpec(shape, tensor.dtype, name=tensor.name)

    return keras.tree.map_structure(spec, model.input)


def layer_names(model) -> set[str]:
    """The names of ``model`` and of every layer inside it."""
    from mdaf_tf.internal_apis import nested_layers

    return {model.name, *(layer.name for layer in nested_layers(model))}


def count_flops(model, batch_size: int = 1) -> dict:
    """Forward FLOPs of ``model`` on a batch of ``batch_size`` (inference: ``training=False``).

    Returns ``matmul``, ``scan``, ``elementwise`` and ``total``; ``by_layer``: the same per
    Keras layer path (``"sequence_encoder/mamba_0"``; ``""`` for ops of the model itself);
    ``unknown_ops`` / ``unshaped_ops``: op types counted zero because no rule covers them or
    their shapes are not static (both empty for the project's models); ``unbounded_loops``:
    loops whose iteration count is not a constant, counted once."""
    import tensorflow as tf

    signature = input_signature(model, batch_size)
    forward = tf.function(lambda inputs: model(inputs, training=False))
    graph = forward.get_concrete_function(signature).graph
    return count_graph(graph, layer_names(model), model.name)


def flops_per_example(model) -> dict:
    """Forward FLOPs of one example: ``count_flops`` at batch 2 minus at batch 1 (so work
    done once per call, whatever the batch, is left out), with ``by_layer``."""
    two, one = count_flops(model, 2), count_flops(model, 1)
    result = {k: two[k] - one[k] for k in (*KINDS, "total")}
    result["by_layer"] = {
        layer: {k: v - one["by_layer"].get(layer, {}).get(k, 0) for k, v in counts.items()}
        for layer, counts in two["by_layer"].items()}
    for key in ("unknown_ops", "unshaped_ops", "unbounded_loops"):
        result[key] = two[key]
    return result


def training_flops_per_example(model) -> int:
    """``TRAINING_MULTIPLIER`` (3) x the forward count; see the module docstring."""
    return TRAINING_MULTIPLIER * flops_per_example(model)["total"]


def layer_flops(counts: dict, layer_name: str, kind: str = "total") -> int:
    """``kind`` FLOPs of every ``by_layer`` entry whose path holds the layer ``layer_name``
    (it and the layers inside it)."""
    return sum(c[kind] for path, c in counts["by_layer"].items()
               if layer_name in path.split("/"))


def flops_table(counts: dict) -> str:
    """A markdown table of ``counts`` (``flops_per_example``) by top-level layer, in MFLOP."""
    groups: dict[str, dict[str, int]] = {}
    for path, c in counts["by_layer"].items():
        top = path.split("/")[0] or "(model)"
        group = groups.setdefault(top, dict.fromkeys((*KINDS, "total"), 0))
        for kind in group:
            group[kind] += c[kind]
    rows = ["| layer | matmul | scan | elementwise | total |", "|---|---:|---:|---:|---:|"]
    for name, c in [*groups.items(), ("total", counts)]:
        cells = [f"{c[k] / 1e6:.3f}" for k in (*KINDS, "total")]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)
