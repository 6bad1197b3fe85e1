"""MDAF training throughput per precision, each against its own matmul rate, in one run.

    python benchmarks/train_throughput.py [--batch 2048] [--length 50] [--steps 5]
        [--precisions float32 mixed_bfloat16] [--vocab 10000 50000 5000]
        [--matmul-size 2048] [--matmul-repeats 10] [--scan auto] [--jit-compile auto]
        [--no-breakdown] [--no-profile] [--schemas default [thesis]]
        [--output benchmarks/results/train_throughput.json]

The training command's own path is measured: ``model.fit`` of the ``ClickTrainer`` that
``mdaf_tf.training.runner.compile_trainer`` builds (``build_optimizer``'s AdamW with weight
decay, global clip-norm and the warmup-cosine schedule, label-smoothed binary cross-entropy
from logits, Keras's AUC metric, dropout on), fed in-memory random ids so that input reading
is not measured. For the first precision, a hand-written ``tf.function`` step (the custom loop
the runner used before ``fit``: forward, the same loss, gradients, the same optimizer) is
timed on a second copy of the model, before and after ``fit`` (the machine drifts over
minutes), so ``fit_over_custom_loop`` says what ``fit`` costs.
``jit_compile`` is resolved as the runner does unless ``--jit-compile`` says otherwise.

Reported per precision (the model config's ``precision``, measured one after the other): the first
step's seconds (tracing, compilation and the op library's build included), examples/s over
``--steps`` timed steps after it, the achieved GFLOP/s (training FLOPs per example counted from
the built model's graph, ``benchmarks/flops.py``: 3x the forward count), the GFLOP/s of a
``tf.matmul`` of two 2048 x 2048 matrices in that precision's compute dtype (float32, bfloat16
or float16) measured in the same process before and after its training steps (the better of the
two is its reference), their ratio, the step's parts timed alone, and the CPU seconds per step
by op type from the TF profiler (``benchmarks/op_profile.py``: matmuls against the rest, which
bounds what a faster matmul can gain); then each precision's speed over float32's and the
process's peak memory.
``--schemas default thesis`` then measures the first precision again with the thesis code's
five static fields (``common.SCHEMAS``: hour and day of week added) and reports its speed over
the three-field default's (``thesis_over_default``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import common, flops, op_profile  # noqa: E402
from mdaf_tf.precision import PRECISIONS  # noqa: E402

OUTPUT = common.RESULTS_DIR / "train_throughput.json"
# What the per-precision summary keeps.
PRECISION_KEYS = ("examples_per_s", "median_step_s", "first_step_s", "step_s", "achieved_gflops",
                  "matmul_gflops", "matmul_before", "matmul_after", "fraction_of_matmul",
                  "roofline_examples_per_s", "breakdown_s", "op_profile")


def run(args) -> dict:
    """Every ``--precisions`` entry measured in turn in this process; the first one's figures
    are the top-level keys (what ``run_all`` reads), all of them under ``precisions``."""
    load_start = common.load_average()
    measured = {p: measure(args, p, custom_loop=i == 0) for i, p in enumerate(args.precisions)}
    first = measured[args.precisions[0]]
    result = {**first, "load_average_start": load_start}
    result["precisions"] = {p: {k: r[k] for k in PRECISION_KEYS if k in r}
                            for p, r in measured.items()}
    if "float32" in measured:
        base = measured["float32"]["examples_per_s"]
        result["speedup_over_float32"] = {p: r["examples_per_s"] / base
                                          for p, r in measured.items()}
    if len(args.schemas) > 1:
        result["schemas"] = {args.schemas[0]: {**result["precisions"][args.precisions[0]],
                                               "parameters": first["parameters"]}}
        for name in args.schemas[1:]:
            other = measure(args, args.precisions[0], custom_loop=False, schema_name=name)
            result["schemas"][name] = {k: other[k] for k in PRECISION_KEYS + ("parameters",)
                                       if k in other}
            result[f"{name}_over_{args.schemas[0]}"] = (other["examples_per_s"]
                                                        / first["examples_per_s"])
    result["peak_rss_gib"] = common.peak_rss_gib()
    result["load_average_end"] = common.load_average()
    return result


def measure(args, precision: str, custom_loop: bool, schema_name: str | None = None) -> dict:
    """One precision: ``fit``'s examples/s against that precision's own matmul rate (the
    compute dtype's ``tf.matmul``, before and after), optionally the custom loop, the step's
    parts and its CPU time by op type."""
    import keras
    import tensorflow as tf

    from mdaf_tf import models
    from mdaf_tf.config import TrainConfig
    from mdaf_tf.training import runner

    matmul_dtype = keras.DTypePolicy(precision).compute_dtype  # its reference matmul
    matmul_before = common.matmul_gflops(args.matmul_size, args.matmul_repeats, matmul_dtype)
    schema_name = schema_name or args.schemas[0]
    config = common.model_config(args.length, tuple(args.vocab), schema_name, scan=args.scan,
                                 precision=precision)
    train_config = TrainConfig(batch_size=args.batch, jit_compile=args.jit_compile)
    jit = runner.resolve_jit_compile(train_config.jit_compile, config)
    features = common.random_features(args.batch, args.length, tuple(args.vocab),
                                      schema_name=schema_name)
    labels = tf.cast(tf.random.stateless_uniform((args.batch,), (1, 2)) < 0.3, "float32")

    loop = None
    if custom_loop:
        keras.utils.set_random_seed(train_config.seed)
        loop = custom_loop_timing(config, train_config, jit, features, labels, args.steps)

    keras.utils.set_random_seed(train_config.seed)
    model = models.build_model("mdaf", config)
    trainer = runner.compile_trainer(model, train_config, 1000, jit)
    first_step_s, times = time_fit(trainer, features, labels, args.steps)
    if loop is not None:  # the loop again after fit, so that drift falls on both paths
        loop["times"] += common.time_calls(loop["step"], args.steps)
    breakdown = (step_breakdown(model, trainer.optimizer, features, config, jit)
                 if args.breakdown else {})
    profile = (op_profile.op_seconds(lambda: trainer.train_on_batch(features, labels))
               if args.profile else None)
    matmul_after = common.matmul_gflops(args.matmul_size, args.matmul_repeats, matmul_dtype)
    return summarise(args, config, jit, precision, {
        "first_step_s": first_step_s, "step_s": times, "loop": loop, "breakdown_s": breakdown,
        "op_profile": profile, "matmul_before": matmul_before, "matmul_after": matmul_after,
        "parameters": int(model.count_params()), "flops": model_flops(model),
    })


def model_flops(model) -> dict:
    """Forward FLOPs per example of the built model (``benchmarks/flops.py``), and the
    matmul FLOPs of its Mamba blocks alone."""
    counted = flops.flops_per_example(model)
    blocks = model.get_layer("sequence_encoder").mamba_blocks
    counted["mamba_matmul"] = sum(flops.layer_flops(counted, block.name, "matmul")
                                  for block in blocks)
    return counted


def summarise(args, config, jit: bool, precision: str, m: dict) -> dict:
    from mdaf_tf.ops.selective_scan import resolve_impl

    times = m["step_s"]
    examples_per_s = args.batch * len(times) / sum(times)
    forward = m["flops"]
    train_flop = flops.TRAINING_MULTIPLIER * forward["total"]
    achieved = train_flop * examples_per_s / 1e9
    reference = max(m["matmul_before"]["best_gflops"], m["matmul_after"]["best_gflops"])
    result = {
        "benchmark": "train_throughput", "model": "mdaf", "precision": precision,
        "batch": args.batch, "length": args.length, "vocab": list(args.vocab),
        "scan": resolve_impl(config.scan, jit_compile=jit), "jit_compile": jit,
        "path": "model.fit (ClickTrainer, compile_trainer's recipe)",
        "steps": len(times), "first_step_s": m["first_step_s"], "step_s": times,
        "median_step_s": statistics.median(times), "examples_per_s": examples_per_s,
        "forward_flops_per_example": forward["total"],
        "forward_flops_by_kind": {k: forward[k] for k in flops.KINDS},
        "training_flops_per_example": train_flop,
        "training_matmul_flops_per_example": flops.TRAINING_MULTIPLIER * forward["matmul"],
        "mamba_matmul_flops_per_example": flops.TRAINING_MULTIPLIER * forward["mamba_matmul"],
        "flop_convention": "benchmarks/flops.py, counted from the built model's graph: "
                           "training = 3 x forward; matmul 2mnk, scan, elementwise counted; "
                           "lookups, masking, dropout, optimizer excluded",
        "achieved_gflops": achieved,
        "matmul_before": m["matmul_before"], "matmul_after": m["matmul_after"],
        "matmul_gflops": reference, "fraction_of_matmul": achieved / reference,
        "roofline_examples_per_s": reference * 1e9 / train_flop,
        "breakdown_s": m["breakdown_s"], "op_profile": m["op_profile"],
        "parameters": m["parameters"], "machine": common.machine(),
    }
    loop = m["loop"]
    if loop is not None:
        loop_rate = args.batch * len(loop["times"]) / sum(loop["times"])
        result.update(custom_loop_first_step_s=loop["first_s"], custom_loop_step_s=loop["times"],
                      custom_loop_examples_per_s=loop_rate,
                      fit_over_custom_loop=examples_per_s / loop_rate)
    return result


def custom_loop_timing(config, train_config, jit: bool, features, labels, steps: int) -> dict:
    """The hand-written step on its own copy of the model: first step and timed steps."""
    from mdaf_tf import models
    from mdaf_tf.training.optimizer import build_optimizer

    model = models.build_model("mdaf", config)
    optimizer = build_optimizer(train_config, model, steps_per_epoch=1000)
    step = custom_train_step(model, optimizer, train_config.label_smoothing, jit)
    first_s, times = time_custom_loop(step, features, labels, steps)
    return {"step": lambda: float(step(features, labels)), "first_s": first_s, "times": times}


def custom_train_step(model, optimizer, label_smoothing: float, jit: bool):
    """The hand-written step ``fit`` replaced: forward, loss from logits, gradients, update."""
    import keras
    import tensorflow as tf

    loss_fn = keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=label_smoothing)

    @tf.function(jit_compile=jit)
    def step(features, labels):
        with tf.GradientTape() as tape:
            logits = tf.squeeze(model(features, training=True)["logit"], -1)
            loss = loss_fn(labels, logits)
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    return step


def time_custom_loop(step, features, labels, steps: int) -> tuple[float, list[float]]:
    start = time.perf_counter()
    float(step(features, labels))
    first = time.perf_counter() - start
    return first, common.time_calls(lambda: float(step(features, labels)), steps)


def time_fit(trainer, features, labels, steps: int) -> tuple[float, list[float]]:
    """(first step's seconds, each later step's seconds) of one ``fit`` epoch of
    ``steps + 1`` steps over the same in-memory batch, timed at each batch end."""
    import keras
    import tensorflow as tf

    marks = []
    clock = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: marks.append(time.perf_counter()),
        on_train_batch_end=lambda batch, logs: (float(logs["loss"]),
                                                marks.append(time.perf_counter())))
    dataset = tf.data.Dataset.from_tensors((features, labels)).repeat()
    trainer.fit(dataset, epochs=1, steps_per_epoch=steps + 1, verbose=0, callbacks=[clock])
    times = [b - a for a, b in zip(marks, marks[1:], strict=False)]
    return times[0], times[1:]


def step_breakdown(model, optimizer, features, config, jit: bool, repeats: int = 2) -> dict:
    """Seconds (median of ``repeats``) of parts of a training step, each timed on its own
    after the timed steps: the forward pass (training mode, no gradient); the model's own
    Mamba blocks' forward + backward (every layer, on random (batch, L, d_model) inputs with
    the features' mask: projections, convolution, scan and gate, whatever implementation the
    block uses); one optimizer update with zero gradients. A part that fails is reported
    with its error instead."""
    import statistics

    import tensorflow as tf

    from mdaf_tf.data import schema

    def timed(fn):
        try:
            fn()
            return statistics.median(common.time_calls(fn, repeats))
        except Exception as error:  # noqa: BLE001 -- a failed part must not lose the run
            return f"failed: {type(error).__name__}: {str(error).splitlines()[0][:160]}"

    forward = tf.function(lambda f: model(f, training=True)["probability"], jit_compile=jit)
    result = {"forward": timed(lambda: forward(features).numpy())}

    encoder = model.get_layer("sequence_encoder")
    blocks = list(encoder.mamba_blocks)
    batch, length = features[schema.HIST_ITEM_ID].shape
    h = tf.random.normal((batch, length, config.hidden_dim), seed=3)
    mask = tf.not_equal(features[schema.HIST_ITEM_ID], schema.PAD_ID)
    block_vars = [v for b in blocks for v in b.trainable_variables]

    @tf.function(jit_compile=jit)
    def mamba_fwd_bwd():
        with tf.GradientTape() as tape:
            tape.watch(h)
            loss = tf.add_n([tf.reduce_sum(b(h, mask=mask)) for b in blocks])
        grads = tape.gradient(loss, [h, *block_vars])
        return tf.add_n([tf.reduce_sum(g) for g in grads])

    result["mamba_blocks_fwd_bwd"] = timed(lambda: mamba_fwd_bwd().numpy())

    variables = model.trainable_variables
    zeros = [tf.zeros_like(v) for v in variables]

    @tf.function(jit_compile=jit)
    def update():
        optimizer.apply_gradients(zip(zeros, variables, strict=True))
        return tf.constant(0)

    result["optimizer_update"] = timed(lambda: update().numpy())
    return result


def rows(result: dict) -> list[list]:
    r = result
    return [
        ["batch x length", f"{r['batch']} x {r['length']}"],
        ["scan / jit_compile", f"{r['scan']} / {r['jit_compile']}"],
        *[row for name, p in r.get("precisions", {}).items() for row in precision_rows(
            name, p, r.get("speedup_over_float32", {}).get(name))],
        *[[f"schema {name}: examples/s ({s.get('parameters', '?')} parameters)",
           f"{s['examples_per_s']:.0f}" + (f" ({r[f'{name}_over_{first}']:.3f}x {first}; "
                                           "target >= 0.9)" if name != first else "")]
          for first in list(r.get("schemas", {}))[:1]
          for name, s in r.get("schemas", {}).items()],
        ["custom loop examples/s (same run, first precision)",
         f"{r['custom_loop_examples_per_s']:.0f}"],
        ["fit / custom loop", f"{r['fit_over_custom_loop']:.3f} (target >= 0.95)"],
        ["forward MFLOP/example", f"{r['forward_flops_per_example'] / 1e6:.1f}"],
        ["training MFLOP/example (3x)", f"{r['training_flops_per_example'] / 1e6:.1f}"],
        ["peak RSS", f"{r['peak_rss_gib']:.2f} GiB (target < 8 GiB)"],
        ["  part: Mamba-block matmuls at the fp32 matmul rate",
         f"{r['mamba_matmul_flops_per_example'] * r['batch'] / r['matmul_gflops'] / 1e9:.2f} s"],
        ["  part: training matmuls at the fp32 matmul rate",
         f"{r['training_matmul_flops_per_example'] * r['batch'] / r['matmul_gflops'] / 1e9:.2f} s"],
        ["load average start / end",
         f"{r['load_average_start']} / {r['load_average_end']}"],
    ]


def precision_rows(name: str, p: dict, speedup: float | None) -> list[list]:
    """One precision's rows: throughput, its own matmul rate, parts and op profile."""
    rows = [
        [f"{name}: first step (compile included)", f"{p['first_step_s']:.1f} s"],
        [f"{name}: median step", f"{p['median_step_s']:.2f} s"],
        [f"{name}: training examples/s (model.fit)", f"{p['examples_per_s']:.0f}"
         + (f" ({speedup:.2f}x float32)" if speedup is not None and name != "float32" else "")],
        [f"{name}: achieved GFLOP/s", f"{p['achieved_gflops']:.1f}"],
        [f"{name}: {p['matmul_before']['dtype']} matmul GFLOP/s (before / after)",
         f"{p['matmul_before']['best_gflops']:.1f} / {p['matmul_after']['best_gflops']:.1f}"],
        [f"{name}: achieved / its matmul rate", f"{100 * p['fraction_of_matmul']:.1f}%"],
    ]
    rows += [[f"{name}:   part: {part.replace('_', ' ')} (alone)",
              f"{sec:.2f} s" if isinstance(sec, float) else sec]
             for part, sec in (p.get("breakdown_s") or {}).items()]
    profile = p.get("op_profile")
    if profile:
        rows.append([f"{name}:   CPU s/step by op: matmul / other / total",
                     f"{profile['matmul_s']:.2f} / {profile['other_s']:.2f} / "
                     f"{profile['total_s']:.2f}"])
        rows.append([f"{name}:   largest op types (CPU s/step)", ", ".join(
            f"{op} {sec:.2f}" for op, sec in profile["top"][:6])])
    return rows


def markdown(result: dict) -> str:
    return common.markdown_table(["MDAF training", "value"], rows(result))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--steps", type=int, default=5, help="timed steps after the first")
    parser.add_argument("--vocab", type=int, nargs=3, default=list(common.DEFAULT_VOCAB),
                        metavar=("USERS", "ITEMS", "CATES"))
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--matmul-repeats", type=int, default=10)
    parser.add_argument("--scan", default="auto")
    parser.add_argument("--jit-compile", default="auto", choices=["auto", "true", "false"])
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"],
                        choices=PRECISIONS, help="measured in turn in this process (default: "
                        "float32 mixed_bfloat16); the first is the top-level figure")
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false",
                        help="skip timing the forward pass, the scans and the optimizer alone")
    parser.add_argument("--no-profile", dest="profile", action="store_false",
                        help="skip the TF-profiler CPU time by op type of two training steps")
    parser.add_argument("--schemas", nargs="+", default=["default"], choices=list(common.SCHEMAS),
                        help="feature schemas: the first measured per precision, the others "
                        "at the first precision only (see common.SCHEMAS)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    if min(args.batch, args.length, args.steps, args.matmul_size, args.matmul_repeats) < 1:
        parser.exit(2, "error: sizes and counts must be at least 1\n")
    result = run(args)
    print(common.text_table(["MDAF training", "value"], rows(result)))
    common.write_json(args.output, result)
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
