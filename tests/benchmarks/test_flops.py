"""FLOPs counted from a built model's graph (``benchmarks/flops.py``) against counts made by
hand: small functional models, graphs with loops and einsums, and MDAF, whose matmuls are
summed from its own kernels' shapes."""

from __future__ import annotations

import math

import keras
import pytest
import tensorflow as tf

from benchmarks import flops
from mdaf_tf.models import build_model, model_names, registry
from mdaf_tf.ops.fast_scan import fast_scan_available

SEED_VOCAB = {"user": 100, "item": 500, "cate": 50}
TINY = dict(vocab_sizes={"user": 30, "item": 40, "cate": 8},
            embedding_dims={"user": 10, "item": 8, "cate": 4}, hidden_dim=16, d_state=4,
            gate_hidden=16, output_hidden=(8,), deep_hidden=(16, 8), autoint_attention_dim=8,
            bst_heads=2)
needs_fast_scan = pytest.mark.skipif(not fast_scan_available(),
                                     reason="the fast scan op is not built here")


def tiny(name: str, length: int):
    return build_model(name, registry.make_config(name, {**TINY, "max_seq_len": length},
                                                  strict=False))


def test_one_dense_is_two_flops_per_weight_and_row_plus_its_bias_adds():
    d_in, d_out, batch = 7, 5, 3
    inputs = keras.Input((d_in,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(d_out, name="dense")(inputs))
    counted = flops.count_flops(model, batch)
    assert counted["matmul"] == batch * 2 * d_in * d_out
    assert counted["elementwise"] == batch * d_out  # the bias add
    assert counted["scan"] == 0
    assert counted["total"] == batch * (2 * d_in * d_out + d_out)
    assert counted["by_layer"]["dense"]["total"] == counted["total"]
    assert flops.flops_per_example(model)["total"] == 2 * d_in * d_out + d_out
    assert flops.training_flops_per_example(model) == 3 * (2 * d_in * d_out + d_out)


def test_two_dense_layers_on_tokens_count_per_token_with_their_activations():
    length, d_in, hidden = 6, 4, 9
    inputs = keras.Input((length, d_in), name="tokens")
    h = keras.layers.Dense(hidden, activation="relu", name="hidden")(inputs)
    out = keras.layers.Dense(1, activation="sigmoid", name="out")(h)
    counted = flops.flops_per_example(keras.Model(inputs, out))
    assert counted["matmul"] == length * (2 * d_in * hidden + 2 * hidden * 1)
    # bias + ReLU per hidden unit, bias + sigmoid (3) per output
    assert counted["elementwise"] == length * (hidden * (1 + 1) + 1 * (1 + 3))
    assert counted["by_layer"]["hidden"]["matmul"] == length * 2 * d_in * hidden
    assert not counted["unknown_ops"] and not counted["unshaped_ops"]


def test_an_op_no_rule_covers_is_listed_not_counted():
    inputs = keras.Input((3,), name="x")
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: tf.math.lgamma(x))(inputs))
    counted = flops.count_flops(model)
    assert counted["total"] == 0 and counted["unknown_ops"] == {"Lgamma": 1}


def test_einsum_and_batched_matmul_are_two_flops_per_multiply_add():
    @tf.function
    def products(a, b):
        return tf.einsum("bij,bjk->bik", a, b), tf.matmul(a, b, adjoint_a=False), \
            tf.einsum("...j,jk->...k", a, b[0])

    graph = products.get_concrete_function(tf.TensorSpec((2, 3, 4)),
                                           tf.TensorSpec((2, 4, 5))).graph
    assert flops.count_graph(graph)["matmul"] == 3 * (2 * 2 * 3 * 4 * 5)


def test_a_loop_body_counts_once_per_iteration():
    @tf.function
    def cumulative(x):  # tf.scan over 7 rows of 4: one add of 4 per row
        return tf.scan(lambda acc, row: acc + row, x)

    graph = cumulative.get_concrete_function(tf.TensorSpec((7, 4))).graph
    counted = flops.count_graph(graph)
    assert counted["elementwise"] == 7 * 4 and counted["unbounded_loops"] == []

    @tf.function
    def until(x):
        return tf.while_loop(lambda v: tf.reduce_sum(v) < 100.0, lambda v: v * 2.0, [x])

    counted = flops.count_graph(until.get_concrete_function(tf.TensorSpec((4,))).graph)
    assert len(counted["unbounded_loops"]) == 1  # counted once, and said so


def kernel_matmul_flops(model, length: int) -> int:
    """2 x each Dense kernel's size, once per example, or once per history token for the
    sequence branch's layers (the depthwise convolution's kernel is elementwise work)."""
    total = 0
    for weight in model.weights:
        name = weight.path.split("/")[-1]
        if name.endswith("kernel") and name != "conv_kernel":
            tokens = length if weight.path.startswith("sequence_encoder/") else 1
            total += 2 * math.prod(weight.shape) * tokens
    return total


@needs_fast_scan
def test_mdaf_at_the_seed_config_matmuls_are_its_kernels_times_their_tokens():
    model = build_model("mdaf", {"vocab_sizes": SEED_VOCAB})
    counted = flops.flops_per_example(model)
    length = 50
    assert counted["matmul"] == kernel_matmul_flops(model, length)
    # The selective scan: per token, channel and state 7, per token and channel 3.
    a_logs = [w.shape for w in model.weights if w.path.endswith("A_log")]
    assert len(a_logs) == 2
    assert counted["scan"] == sum(length * d * (7 * n + 3) for d, n in a_logs)
    assert not counted["unknown_ops"] and not counted["unshaped_ops"]
    # What the analytic count of the seed config gave for the matmuls and the scan.
    assert (counted["matmul"], counted["scan"]) == (49_787_264, 2_944_000)
    assert 50e6 < counted["total"] < 60e6
    assert flops.layer_flops(counted, "sequence_encoder") > 0.9 * counted["total"]
    table = flops.flops_table(counted)
    assert "| sequence_encoder |" in table and table.splitlines()[-1].startswith("| total |")


@needs_fast_scan
def test_mdaf_cost_grows_linearly_with_the_history_length():
    totals = [flops.flops_per_example(tiny("mdaf", n))["total"] for n in (5, 10, 20)]
    steps = [b - a for a, b in zip(totals, totals[1:], strict=False)]
    assert steps[0] > 0 and steps[1] == 2 * steps[0]


@pytest.mark.parametrize("name", sorted(set(model_names()) & {"bst", "din", "autoint", "dcnv2",
                                                               "dnn", "mamba4rec"}))
def test_every_op_of_the_baselines_is_counted(name):
    counted = flops.flops_per_example(tiny(name, 6))
    assert counted["total"] > 0
    assert not counted["unknown_ops"] and not counted["unshaped_ops"], counted
