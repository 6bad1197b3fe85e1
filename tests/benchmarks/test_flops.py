"""The analytic FLOP count against hand computations and against the built model's weights."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from mdaf_tf import flops
from mdaf_tf.config import ModelConfig


def test_dense_is_two_flops_per_weight_plus_bias_and_activation():
    for d_in, d_out in ((176, 128), (3, 7), (256, 1)):
        f = flops.dense(d_in, d_out)
        assert f.matmul == 2 * d_in * d_out
        assert f.elementwise == d_out
        assert flops.dense(d_in, d_out, bias=False).total == 2 * d_in * d_out
        assert flops.dense(d_in, d_out, activation=flops.SIGMOID).elementwise == 4 * d_out


def test_scan_counts_seven_per_state_and_three_per_channel():
    assert flops.selective_scan(256, 16).scan == 256 * (16 * 7 + 3)
    assert flops.selective_scan(1, 1).total == 10


def test_seed_config_total_matches_a_hand_computation():
    # Seed config: L = 50, d = 128, d_inner = 256, N = 16, R = 8, K = 4, FFN 512,
    # static input 80 + 64 + 32 = 176, tokens 64 + 32 = 96, gate 256 -> 128 -> 1,
    # output MLP 128 -> 64 -> 1.
    L = 50
    # matmuls
    static_mm = 2 * 176 * 128 + 2 * 3 * (2 * 128 * 64)  # projection, LCN + ECN
    per_token_mm = 2 * 96 * 128 + 2 * (
        2 * 128 * 512  # in_proj
        + 2 * 256 * 40  # x_proj
        + 2 * 8 * 256  # dt_proj
        + 2 * 256 * 128  # out_proj
        + 2 * 128 * 512 * 2  # FFN in + out
    )
    head_mm = 2 * 256 * 128 + 2 * 128 + 2 * 128 * 64 + 2 * 64
    # scan: 2 layers x 256 channels x (16 states x 7 + 3)
    scan = L * 2 * 256 * 115
    # elementwise
    static_ew = 128 + 2 * 3 * (7 * 64 + 64 + 64 + 3 * 128) + 2 * 128
    mamba_ew = 256 * (8 + 4) + 256 * (1 + 3) + 256 * 5  # conv+SiLU, dt bias+softplus, y*SiLU(z)
    ffn_ew = 512 * (1 + 5) + 128
    per_token_ew = 128 + 7 * 128 + 2 * (mamba_ew + 8 * 128 + ffn_ew + 8 * 128)
    head_ew = (128 + 128) + (1 + 3) + (1 + 3 * 128) + (64 + 64) + (1 + 3)
    embed_ew = L * 96
    pool_ew = L * 128 + 128
    expected = (
        static_mm + L * per_token_mm + head_mm + scan
        + static_ew + L * per_token_ew + head_ew + embed_ew + pool_ew
    )
    counted = flops.mdaf_flops(ModelConfig())
    assert counted["total"].total == expected
    assert counted["total"].matmul == static_mm + L * per_token_mm + head_mm
    assert counted["total"].scan == scan
    assert flops.training_flops_per_example(ModelConfig()) == 3 * expected
    assert 50e6 < expected < 60e6  # the "about 52 MFLOP" order of magnitude


def test_components_add_up_and_cost_grows_linearly_with_length():
    def at(length):
        return flops.mdaf_flops(dataclasses.replace(ModelConfig(), max_seq_len=length))

    parts = at(50)
    total = parts.pop("total")
    assert sum(p.total for p in parts.values()) == total.total
    t = [at(n)["total"].total for n in (50, 100, 200, 400)]
    steps = np.diff(t)
    assert steps[1] == 2 * steps[0] and steps[2] == 4 * steps[0]


def test_variants():
    base = ModelConfig()
    gate = flops.mdaf_flops(base)["gate + output"].total
    concat = flops.mdaf_flops(dataclasses.replace(base, fusion="concat"))["gate + output"]
    assert concat.matmul == 2 * 256 * 128 + 2 * 128 * 64 + 2 * 64
    fixed = flops.mdaf_flops(dataclasses.replace(base, fusion="fixed"))["gate + output"]
    assert fixed.total < concat.total < gate
    ta = flops.mdaf_flops(dataclasses.replace(base, target_in_sequence=True))
    seq = flops.mdaf_flops(base)["sequence branch"]
    # one more token, no mean pooling
    per_token = seq.total - (50 * 128 + 128)
    assert ta["sequence branch"].total == per_token * 51 // 50


def test_matmul_count_equals_two_flops_per_kernel_weight_of_the_built_model():
    """Independent of the formulas: 2 x (kernel weights used once per example) + 2 x tokens x
    (kernel weights used once per token), read from the real model's variables."""
    keras = pytest.importorskip("keras")
    del keras
    from mdaf_tf.models import build_model

    config = ModelConfig(
        user_vocab_size=5, item_vocab_size=7, cate_vocab_size=4, max_seq_len=9,
        hidden_dim=32, d_state=4, gate_hidden=16, output_hidden=(8, 4),
    )
    model = build_model("mdaf", config)
    per_example = per_token = 0
    for variable in model.weights:
        path = variable.path
        if len(variable.shape) != 2 or "embedding" in path.split("/")[-1]:
            continue  # biases, norms, D and embedding tables
        if path.endswith(("A_log", "conv_kernel")):
            continue  # not matmul weights
        size = math.prod(variable.shape)
        if path.startswith("sequence_encoder"):
            per_token += size
        else:
            per_example += size
    assert per_token > 0 and per_example > 0
    expected = 2 * per_example + 2 * config.max_seq_len * per_token
    assert flops.mdaf_flops(config)["total"].matmul == expected


def test_table_lists_every_component():
    table = flops.flops_table(ModelConfig())
    for name in ("embeddings", "static branch", "sequence branch", "gate + output", "total"):
        assert f"| {name} |" in table


def test_bst_matmuls_match_a_hand_computation_and_attention_grows_quadratically():
    # d = 96, T = 51, 1 layer: 4 projections, scores + weighted sum, FFN 96 -> 384 -> 96;
    # output MLP (96 + 96 + 80 + 64 + 32 = 368) -> 256 -> 128 -> 1.
    T, d = 51, 96
    expected = (
        T * (4 * 2 * d * d + 2 * 2 * T * d + 2 * 2 * d * 4 * d)
        + 2 * 368 * 256 + 2 * 256 * 128 + 2 * 128
    )
    assert flops.bst_flops(ModelConfig())["total"].matmul == expected

    def transformer(length):
        config = dataclasses.replace(ModelConfig(), max_seq_len=length - 1)
        return flops.bst_flops(config)["transformer"].total

    # f(T) = a T + b T^2: the second difference over equal steps is constant.
    t = [transformer(n) for n in (100, 200, 300, 400)]
    second = np.diff(t, 2)
    assert second[0] == second[1] > 0
