"""Analytic floating-point operation count of MDAF per example.

``mdaf_flops(config)`` counts what one example's forward pass computes, from a
``ModelConfig`` alone (no model is built). Conventions:

* **Matmul** (every Dense layer and projection): ``2 * d_in * d_out`` per row -- one
  multiply and one add per weight. Sequence layers run once per token, so their count is
  multiplied by the token count ``T`` (``max_seq_len``, plus one with ``target_in_sequence``).
* **Scan** (the selective scan's recurrence), per token, per channel (``d_inner``), per state
  (``d_state``): ``delta * A`` (1), ``exp`` (1), ``decay * h`` (1), ``(delta u) * B`` (1),
  ``+`` (1), ``C * h`` (1), the sum over states (1) = 7; per token and channel ``delta * u``
  (1), ``D * u`` (1) and its add (1) = 3. So ``T * d_inner * (7 * d_state + 3)``.
* **Elementwise** ops are counted, one FLOP per arithmetic operation per element, with these
  per-element costs: add, subtract, multiply, divide, ReLU = 1; exp = 1; sigmoid = 3
  (exp, add, divide); softplus = 3 (exp, add, log); SiLU = 4 (sigmoid, multiply); GELU
  (erf form) = 5 (scale, erf, add, multiply, halve); LayerNorm = 7 (mean add, subtract,
  square, variance add, multiply by the reciprocal deviation, scale, shift); a bias add = 1;
  the depthwise causal convolution = ``2 * d_conv`` (its multiplies, adds and bias).
* **Excluded** (zero here): embedding lookups, the PAD masking selects (``tf.where``),
  concatenation, slicing and reshapes, dropout (the identity at inference), per-row scalars
  (the reciprocal square root of a LayerNorm, a pooled row's divisor count) and work done once
  per batch rather than per example (``A = -exp(A_log)``).

Training counts 3x the forward pass (``TRAINING_MULTIPLIER``): the backward pass of a matmul
is two matmuls of the same size (gradients of the input and of the weight), and that ratio
is used for every op. The loss, the dropout masks and the optimizer update (which scale with
the parameters, not the examples) are not counted.

At the seed config (``ModelConfig()``, L = 50) the forward pass is about 54 MFLOP per
example; about 92% of it is matmuls of the sequence branch.
"""

from __future__ import annotations

import dataclasses
import math

from mdaf_tf import schema
from mdaf_tf.config import ModelConfig
from mdaf_tf.models import embedding_sizes

TRAINING_MULTIPLIER = 3

# Per-element costs of the elementwise ops (see the module docstring).
ADD = MUL = RELU = EXP = 1
SIGMOID = SOFTPLUS = 3
SILU = 4
GELU = 5
LAYER_NORM = 7


@dataclasses.dataclass(frozen=True)
class Flops:
    """FLOPs of one part of the model, split by kind."""

    matmul: int = 0
    scan: int = 0
    elementwise: int = 0

    @property
    def total(self) -> int:
        return self.matmul + self.scan + self.elementwise

    def __add__(self, other: Flops) -> Flops:
        return Flops(
            self.matmul + other.matmul,
            self.scan + other.scan,
            self.elementwise + other.elementwise,
        )

    def __mul__(self, times: int) -> Flops:
        return Flops(self.matmul * times, self.scan * times, self.elementwise * times)

    __rmul__ = __mul__


def dense(d_in: int, d_out: int, bias: bool = True, activation: int = 0) -> Flops:
    """One row through ``Dense(d_out)`` on a ``d_in`` input: ``2 d_in d_out`` matmul FLOPs,
    plus ``d_out`` for the bias and ``activation`` FLOPs per output element."""
    return Flops(matmul=2 * d_in * d_out, elementwise=d_out * (int(bias) + activation))


def selective_scan(d_inner: int, d_state: int) -> Flops:
    """One token of the selective scan (see the module docstring)."""
    return Flops(scan=d_inner * (7 * d_state + 3))


def mamba_block(d_model: int, d_state: int, d_conv: int, expand: int) -> Flops:
    """One token through ``MambaBlock`` (dt_rank = ceil(d_model / 16))."""
    e, n, r = expand * d_model, d_state, math.ceil(d_model / 16)
    return (
        dense(d_model, 2 * e, bias=False)  # in_proj -> [x_in, z]
        + Flops(elementwise=e * (2 * d_conv + SILU))  # causal conv + bias, SiLU
        + dense(e, r + 2 * n, bias=False)  # x_proj -> [dt, B, C]
        + dense(r, e, activation=SOFTPLUS)  # dt_proj + bias, softplus
        + selective_scan(e, n)
        + Flops(elementwise=e * (SILU + MUL))  # y * SiLU(z)
        + dense(e, d_model, bias=False)  # out_proj
    )


def mamba4rec_encoder(config: ModelConfig, d_in: int, tokens: int) -> Flops:
    """One example's sequence branch: ``tokens`` tokens of width ``d_in`` -> (d_model,)."""
    d, f = config.hidden_dim, config.ffn_multiplier * config.hidden_dim
    per_token = Flops()
    if d_in != d:
        per_token += dense(d_in, d)  # input projection
    per_token += Flops(elementwise=LAYER_NORM * d)  # embedding norm
    layer = (
        mamba_block(d, config.d_state, config.d_conv, config.expand)
        + Flops(elementwise=(ADD + LAYER_NORM) * d)  # residual + norm
        + dense(d, f, activation=GELU)
        + dense(f, d)
        + Flops(elementwise=(ADD + LAYER_NORM) * d)  # residual + norm
    )
    per_token += config.num_mamba_layers * layer
    pooling = Flops(elementwise=tokens * d + d) if config.pooling == "mean" else Flops()
    if config.target_in_sequence:  # MDAF pools the target's (last) position instead
        pooling = Flops()
    return tokens * per_token + pooling


def cross_network(config: ModelConfig, d: int) -> Flops:
    """One DCNv3 cross network (LCN or ECN) on a ``d``-wide row."""
    norm = LAYER_NORM * (d // 2) if config.cross_layer_norm else 0
    per_layer = dense(d, d // 2, bias=False) + Flops(
        # mask ReLU, c * mask, H + b, multiplicand * (H + b), + x
        elementwise=norm + RELU * (d // 2) + MUL * (d // 2) + (ADD + MUL + ADD) * d
    )
    return config.num_cross_layers * per_layer


def fusion(config: ModelConfig, d: int) -> Flops:
    """``GatedFusion`` of two ``d``-wide rows."""
    if config.fusion == "gate":
        gate = dense(2 * d, config.gate_hidden, activation=RELU) + dense(
            config.gate_hidden, 1, activation=SIGMOID
        )
        return gate + Flops(elementwise=1 + 3 * d)  # 1 - g; g a + (1 - g) b
    if config.fusion == "concat":
        return dense(2 * d, d)
    return Flops(elementwise=3 * d)  # w a + (1 - w) b with a constant w


def output_mlp(config: ModelConfig, d_in: int) -> Flops:
    total, width = Flops(), d_in
    for units in config.output_hidden:
        total += dense(width, units, activation=RELU)
        width = units
    return total + dense(width, 1, activation=SIGMOID)


def _id_widths(c: ModelConfig) -> tuple[int, int, int]:
    """User, item and category embedding widths (the seed's where the config leaves them open)."""
    return tuple(embedding_sizes.embedding_dim(c, v, None)
                 for v in (schema.USER_VOCAB, schema.ITEM_VOCAB, schema.CATE_VOCAB))


def mdaf_flops(config: ModelConfig) -> dict[str, Flops]:
    """Forward FLOPs of one MDAF example by component, plus ``"total"``.

    Covers the MDAF family (``mdaf``, ``mdaf_ta``, ``mdaf_concat``, ``mdaf_fixed``: the
    config's ``fusion`` and ``target_in_sequence`` select the variant).
    """
    c = config
    d = c.hidden_dim
    user, item, cate = _id_widths(c)
    d_static = user + item + cate
    d_token = item + cate
    tokens = c.max_seq_len + int(c.target_in_sequence)
    parts = {
        "embeddings": Flops(elementwise=MUL * c.max_seq_len * d_token),  # history * mask
        "static branch": dense(d_static, d)
        + 2 * cross_network(c, d)
        + Flops(elementwise=(ADD + MUL) * d),  # (LCN + ECN) / 2
        "sequence branch": mamba4rec_encoder(c, d_token, tokens),
        "gate + output": fusion(c, d) + output_mlp(c, d),
    }
    total = Flops()
    for part in parts.values():
        total += part
    parts["total"] = total
    return parts


def bst_flops(config: ModelConfig) -> dict[str, Flops]:
    """Forward FLOPs of one BST example (``mdaf_tf.models.bst``), same conventions.

    Tokens ``T = max_seq_len + 1`` (the target appended) of width ``d = item + cate dims``;
    per transformer layer and token: Q, K, V and output projections (4 ``d x d`` with bias),
    scores and the weighted sum (``2 T d`` each: every token against every key, summed over
    the heads), softmax over ``heads x T`` scores per token (mask add, max, subtract, exp,
    sum, divide = 6 each), residual adds and LayerNorms, FFN ``d -> 4d -> d`` with LeakyReLU
    (2 per element). Attention cost grows as ``T^2``; everything else as ``T``.
    """
    c = config
    user, item, cate = _id_widths(c)
    d = item + cate
    tokens = c.max_seq_len + 1
    heads, ffn = c.bst_heads, 4 * d
    per_token = (
        4 * dense(d, d)
        + Flops(matmul=2 * (2 * tokens * d))  # Q K^T and A V
        + Flops(elementwise=6 * heads * tokens)  # masked softmax
        + Flops(elementwise=2 * (ADD + LAYER_NORM) * d)  # two residual + norm
        + dense(d, ffn, activation=2)  # LeakyReLU: compare + select
        + dense(ffn, d)
    )
    d_out = 2 * d + user + item + cate
    head, width = Flops(), d_out
    for units in c.deep_hidden:
        head += dense(width, units, activation=RELU)
        width = units
    parts = {
        "embeddings": Flops(elementwise=MUL * c.max_seq_len * d + tokens * d),  # mask, +pos
        "transformer": c.bst_layers * tokens * per_token,
        "pooling + output": Flops(elementwise=tokens * d + d)  # masked mean
        + head + dense(width, 1, activation=SIGMOID),
    }
    total = Flops()
    for part in parts.values():
        total += part
    parts["total"] = total
    return parts


def forward_flops_per_example(config: ModelConfig) -> int:
    return mdaf_flops(config)["total"].total


def training_flops_per_example(config: ModelConfig) -> int:
    """``TRAINING_MULTIPLIER`` (3) x the forward count; see the module docstring."""
    return TRAINING_MULTIPLIER * forward_flops_per_example(config)


def flops_table(config: ModelConfig) -> str:
    """A markdown table of ``mdaf_flops(config)`` in MFLOP per example."""
    rows = ["| component | matmul | scan | elementwise | total |", "|---|---:|---:|---:|---:|"]
    for name, f in mdaf_flops(config).items():
        cells = [f"{v / 1e6:.3f}" for v in (f.matmul, f.scan, f.elementwise, f.total)]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)
