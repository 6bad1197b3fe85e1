"""Where a training step's non-matmul time goes: MDAF's FFN sub-layer built up op by op.

    python studies/ffn_parts/ffn_parts.py [--batch 512] [--length 50] [--d-model 128]
        [--repeats 3] [--output studies/ffn_parts/results/ffn_parts.json]

The Mamba4Rec FFN sub-layer of MDAF, ``LayerNorm(h + Dropout(W_2 Dropout(GELU(W_1 h + b_1))
+ b_2))`` with ``W_1: d -> 4d``, forward + backward (gradients of the input and every
weight) in a plain ``tf.function`` (the training command's setting with the CPU scan op),
timed as it is built up: the two matmuls alone, + biases, + exact GELU, + the two dropouts,
+ residual and LayerNorm. Each row gives ms (median of ``--repeats`` after a warm-up) and the
matmul GFLOP/s it implies (matmul FLOPs: the forward pass's, counted from its graph by
``benchmarks/flops.py``, x 3 for forward + backward = 3 x 2 x 2 x d x 4d per token), so the
cost of the memory-bound elementwise passes over (batch, L, 4d) activations is visible beside
the matmuls. Also timed: the activation alone (forward + backward on a (batch x L, 4d) tensor)
for exact GELU, tanh GELU, SiLU and ReLU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import common, flops  # noqa: E402

OUTPUT = common.RESULTS_DIR / "ffn_parts.json"
STAGES = ("matmuls", "+ biases", "+ GELU (erf)", "+ dropouts", "+ residual + LayerNorm")


def run(args) -> dict:
    import keras
    import tensorflow as tf

    b, length, d = args.batch, args.length, args.d_model
    x = tf.random.normal((b * length, d), seed=1)
    w1 = tf.Variable(tf.random.normal((d, 4 * d), seed=2) * 0.05)
    b1 = tf.Variable(tf.zeros(4 * d))
    w2 = tf.Variable(tf.random.normal((4 * d, d), seed=3) * 0.05)
    b2 = tf.Variable(tf.zeros(d))
    norm = keras.layers.LayerNormalization()
    norm.build((None, d))
    dropout = keras.layers.Dropout(0.25, seed=4)
    variables = [w1, b1, w2, b2, *norm.trainable_variables]

    def make_forward(level: int):
        def forward():
            h = tf.matmul(x, w1)
            if level >= 1:
                h = h + b1
            if level >= 2:
                h = tf.nn.gelu(h, approximate=False)
            if level >= 3:
                h = dropout(h, training=True)
            out = tf.matmul(h, w2)
            if level >= 1:
                out = out + b2
            if level >= 3:
                out = dropout(out, training=True)
            if level >= 4:
                out = norm(x + out)
            return out

        return forward

    def stage_fn(level: int):
        forward = make_forward(level)

        @tf.function(jit_compile=False, autograph=False)
        def step():
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(forward())
            grads = tape.gradient(loss, [x, *variables])
            return tf.add_n([tf.reduce_sum(g) for g in grads if g is not None])

        return step

    def median_ms(fn):
        fn().numpy()
        return 1000 * statistics.median(common.time_calls(lambda: fn().numpy(), args.repeats))

    # The two matmuls of the forward pass, counted from its graph, x 3 for forward + backward.
    forward_graph = tf.function(make_forward(0), autograph=False).get_concrete_function().graph
    matmul_flop = flops.TRAINING_MULTIPLIER * flops.count_graph(forward_graph)["matmul"]
    stages = []
    for level, name in enumerate(STAGES):
        ms = median_ms(stage_fn(level))
        stages.append({"stage": name, "ms": ms, "matmul_gflops": matmul_flop / ms / 1e6})

    wide = tf.random.normal((b * length, 4 * d), seed=5)
    activations = {
        "GELU (erf)": lambda h: tf.nn.gelu(h, approximate=False),
        "GELU (tanh)": lambda h: tf.nn.gelu(h, approximate=True),
        "SiLU": tf.nn.silu,
        "ReLU": tf.nn.relu,
    }
    alone = []
    for name, fn in activations.items():
        @tf.function(jit_compile=False, autograph=False)
        def activation_step(fn=fn):
            with tf.GradientTape() as tape:
                tape.watch(wide)
                loss = tf.reduce_sum(fn(wide))
            return tf.reduce_sum(tape.gradient(loss, wide))

        alone.append({"activation": name, "ms": median_ms(activation_step)})
    return {
        "benchmark": "ffn_parts",
        "batch": b, "length": length, "d_model": d, "repeats": args.repeats,
        "stages": stages,
        "activations_fwd_bwd": alone,
        "matmul": common.matmul_gflops(2048, 5),
        "machine": common.machine(),
    }


def markdown(result: dict) -> str:
    r = result
    head = (f"FFN sub-layer fwd+bwd at batch {r['batch']} x L {r['length']}, d {r['d_model']} "
            f"(4d = {4 * r['d_model']}); fp32 matmul 2048^2 in the same run: "
            f"{r['matmul']['best_gflops']:.1f} GFLOP/s")
    stages = common.markdown_table(
        ["stage", "ms", "matmul GFLOP/s"],
        [[s["stage"], f"{s['ms']:.0f}", f"{s['matmul_gflops']:.1f}"] for s in r["stages"]])
    acts = common.markdown_table(
        [f"activation alone, fwd+bwd on ({r['batch']}x{r['length']}, {4 * r['d_model']})", "ms"],
        [[a["activation"], f"{a['ms']:.0f}"] for a in r["activations_fwd_bwd"]])
    return f"{head}\n\n{stages}\n\n{acts}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    if min(args.batch, args.length, args.d_model, args.repeats) < 1:
        parser.exit(2, "error: sizes and repeats must be at least 1\n")
    result = run(args)
    print(markdown(result))
    common.write_json(args.output, result)
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
