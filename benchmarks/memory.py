"""Peak memory of the main command (every process of it) and of a training step at the
thesis's real vocabulary sizes.

    python benchmarks/memory.py main [--interval 0.5] [--output DIR/main_command.json]
        [-- TRAIN ARGS...]
    python benchmarks/memory.py step [--vocab 1141729 846811 12977] [--batch 2048]
        [--length 50] [--steps 3] [--precision float32] [--output DIR/training_step.json]
    python benchmarks/memory.py serve [--batch 4096] [--output DIR/serve_batch_4096.json]

``main`` runs ``python -m mdaf_tf.train`` (README's first command, plus any TRAIN ARGS) in an
empty temporary directory, so the synthetic default is built from scratch as a new user's
first run builds it, and samples the resident set size (``VmRSS``) of the command and every
process it starts every ``--interval`` seconds from ``/proc``. Reported: each process's peak
(by its command line), the peak of their sum (what the machine must hold at once) and
``ru_maxrss`` of the waited children (GNU time's "Maximum resident set size": the largest
single process, sampled by the kernel, so no peak falls between two samples).

``step`` builds MDAF with the Taobao Ad data's vocabularies (users, ads, categories of the
thesis's data; ``--vocab``), compiles it with the training recipe
(``runner.compile_trainer``: AdamW, two moment slots per weight) and runs ``--steps`` steps of
``fit`` on an in-memory batch of random ids; reported: the embedding tables' size and the
process's peak RSS.

``serve`` exports MDAF at the default config (a synthetic dataset of ``pipelines.synthetic``'s
default size, length 50, untrained weights) and calls its ``serving_default`` once at
``--batch`` in a fresh process (``tf.saved_model.load``, which every export since the first
loads): that process's peak RSS after loading and after the call. This is what the export
check's largest batch costs; run at an earlier commit it shows what the serving graph's scan
cost there.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "memory"
# Users, ads and categories of the Taobao Ad Display/Click data (issue 37's real proportions).
THESIS_VOCAB = (1_141_729, 846_811, 12_977)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _tree(root: int) -> list[int]:
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += _children(pid)
    return pids


def _rss_gib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        return None
    return None


def _command(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    return " ".join(a.decode(errors="replace") for a in argv if a)[:160]


def sample_tree(proc: subprocess.Popen, interval: float) -> dict:
    """Peak RSS per process of ``proc``'s tree and of their sum, until ``proc`` ends."""
    peaks, names, peak_sum = {}, {}, 0.0
    while proc.poll() is None:
        total = 0.0
        for pid in _tree(proc.pid):
            rss = _rss_gib(pid)
            if rss is None:
                continue
            total += rss
            if rss > peaks.get(pid, 0.0):
                peaks[pid] = rss
                names.setdefault(pid, _command(pid))
        peak_sum = max(peak_sum, total)
        time.sleep(interval)
    processes = [{"pid": pid, "command": names[pid], "peak_rss_gib": round(peaks[pid], 3)}
                 for pid in sorted(peaks, key=peaks.get, reverse=True)]
    return {"processes": processes, "peak_sum_gib": round(peak_sum, 3)}


def main_command(args) -> dict:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "mdaf_tf.train", *args.train_args]
        log_path = Path(tmp) / "train.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(argv, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
            sampled = sample_tree(proc, args.interval)
        tail = log_path.read_text().splitlines()[-8:]
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return {
        "command": " ".join(["python -m mdaf_tf.train", *args.train_args]),
        "exit_code": proc.returncode,
        "seconds": round(time.perf_counter() - started, 1),
        "interval_s": args.interval,
        **sampled,
        "ru_maxrss_children_gib": round(children, 3),
        "log_tail": tail,
        "machine": common.machine(),
    }


def training_step(args) -> dict:
    import keras
    import tensorflow as tf

    from mdaf_tf import models
    from mdaf_tf.config import TrainConfig
    from mdaf_tf.training import runner

    vocab = tuple(args.vocab)
    config = common.model_config(args.length, vocab, precision=args.precision)
    train_config = TrainConfig(batch_size=args.batch)
    jit = runner.resolve_jit_compile(train_config.jit_compile, config)
    keras.utils.set_random_seed(0)
    model = models.build_model("mdaf", config)
    trainer = runner.compile_trainer(model, train_config, 1000, jit)
    features = common.random_features(args.batch, args.length, vocab)
    labels = tf.cast(tf.random.stateless_uniform((args.batch,), (1, 2)) < 0.3, "float32")
    built_rss = common.peak_rss_gib()
    dataset = tf.data.Dataset.from_tensors((features, labels)).repeat()
    started = time.perf_counter()
    trainer.fit(dataset, epochs=1, steps_per_epoch=args.steps, verbose=0)
    embeddings = sum(int(w.numpy().size) for w in model.weights if "embedding" in w.path)
    return {
        "vocab": {"users": vocab[0], "items": vocab[1], "categories": vocab[2]},
        "batch": args.batch, "length": args.length, "steps": args.steps,
        "precision": args.precision, "jit_compile": jit,
        "parameters": int(model.count_params()),
        "embedding_parameters": embeddings,
        "embedding_gib": round(embeddings * 4 / 2**30, 3),
        "peak_rss_after_build_gib": round(built_rss, 3),
        "peak_rss_gib": round(common.peak_rss_gib(), 3),
        "fit_seconds": round(time.perf_counter() - started, 1),
        "machine": common.machine(),
    }


SERVE_SCRIPT = """
import json, resource, sys
import numpy as np
import tensorflow as tf
path, batch = sys.argv[1], int(sys.argv[2])
signature = tf.saved_model.load(path).signatures["serving_default"]
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
rng = np.random.default_rng(0)
inputs = {}
for name, spec in signature.structured_input_signature[1].items():
    shape = [batch if d is None else d for d in spec.shape]
    inputs[name] = tf.constant(rng.integers(1, 50, shape), spec.dtype)
signature(**inputs)
print(json.dumps({"rss_after_load_gib": loaded,
                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def serve_batch(args) -> dict:
    import keras

    from mdaf_tf import export, models
    from mdaf_tf.data import load_metadata
    from mdaf_tf.training.runner import fill_model_config

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        subprocess.run([sys.executable, "-m", "pipelines.synthetic", "--output",
                        str(data_dir)], check=True, capture_output=True)
        keras.utils.set_random_seed(0)
        config = fill_model_config(models.make_config("mdaf"), load_metadata(data_dir))
        model = models.build_model("mdaf", config)
        path = export.export_model(model, config, "mdaf", data_dir, Path(tmp) / "saved")
        done = subprocess.run([sys.executable, "-c", SERVE_SCRIPT, str(path), str(args.batch)],
                              capture_output=True, text=True, check=True,
                              env=dict(os.environ, PYTHONPATH=""))
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    return {"batch": args.batch, "length": config.max_seq_len,
            **{k: round(v, 3) for k, v in measured.items()}, "machine": common.machine()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    main = sub.add_parser("main", help="the main command, every process")
    main.add_argument("--interval", type=float, default=0.5)
    main.add_argument("--output", type=Path, default=RESULTS / "main_command.json")
    main.add_argument("train_args", nargs="*", help="after --: arguments for mdaf_tf.train")
    step = sub.add_parser("step", help="a training step at the thesis's vocabularies")
    step.add_argument("--vocab", type=int, nargs=3, default=list(THESIS_VOCAB))
    step.add_argument("--batch", type=int, default=2048)
    step.add_argument("--length", type=int, default=50)
    step.add_argument("--steps", type=int, default=3)
    step.add_argument("--precision", default="float32")
    step.add_argument("--output", type=Path, default=RESULTS / "training_step.json")
    serve = sub.add_parser("serve", help="one serving_default call of an exported MDAF")
    serve.add_argument("--batch", type=int, default=4096)
    serve.add_argument("--output", type=Path)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    run = {"main": main_command, "step": training_step, "serve": serve_batch}[args.what]
    result = run(args)
    output = args.output or RESULTS / f"serve_batch_{args.batch}.json"
    common.write_json(output, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
