"""``--strategy``: the ``tf.distribute`` strategy a training run uses, and who writes files.

* ``default``: the default strategy (one device: the first GPU, else the CPU).
* ``mirrored``: ``tf.distribute.MirroredStrategy`` over every local GPU; with no GPU, over
  every logical CPU device (``tf.config.set_logical_device_configuration``), else the CPU.
* ``multiworker``: ``tf.distribute.MultiWorkerMirroredStrategy`` configured from the
  ``TF_CONFIG`` environment variable (``{"cluster": {"worker": ["host:port", ...]},
  "task": {"type": "worker", "index": i}}``). Worker 0 (or the task of type ``chief``)
  is the chief: only it writes checkpoints, reports and exports; the other workers write
  into a temporary directory that is deleted at the end.

The global batch size is the configured one in every case; each replica gets
``batch_size / num_replicas_in_sync`` examples (the batch size must divide evenly).
"""

from __future__ import annotations

import json
import os

from mdaf_tf.config import ConfigError

STRATEGIES = ("default", "mirrored", "multiworker")
# Seconds a collective operation may wait for the other workers before failing.
COLLECTIVE_TIMEOUT_S = 600


def read_tf_config() -> dict:
    """``TF_CONFIG`` parsed and checked; ConfigError with one line when it is unusable."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ConfigError(
            "--strategy multiworker needs TF_CONFIG, e.g. TF_CONFIG='{\"cluster\": "
            "{\"worker\": [\"host1:12345\", \"host2:12345\"]}, \"task\": {\"type\": "
            "\"worker\", \"index\": 0}}'"
        )
    try:
        config = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({e})") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ConfigError("TF_CONFIG needs a 'cluster' and a 'task' object")
    kind, index = task.get("type"), task.get("index")
    members = cluster.get(kind)
    if not isinstance(members, list) or not isinstance(index, int) or not (
        0 <= index < len(members)
    ):
        raise ConfigError(
            f"TF_CONFIG task {kind!r} index {index!r} is not in the cluster "
            f"({ {k: len(v) for k, v in cluster.items() if isinstance(v, list)} })"
        )
    return config


def is_chief_task(config: dict | None) -> bool:
    """The chief of a TF_CONFIG: the ``chief`` task, else worker 0."""
    if config is None:
        return True
    kind, index = config["task"]["type"], config["task"]["index"]
    if "chief" in config["cluster"]:
        return kind == "chief"
    return kind == "worker" and index == 0


def make_strategy(name: str):
    """The ``tf.distribute.Strategy`` for ``--strategy name``."""
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; one of: {', '.join(STRATEGIES)}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus)
    read_tf_config()
    options = tf.distribute.experimental.CommunicationOptions(
        timeout_seconds=COLLECTIVE_TIMEOUT_S
    )
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def is_chief(strategy) -> bool:
    """Whether this process writes the run's files (always, except non-chief workers)."""
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return is_chief_task(read_tf_config())
    return True


def per_replica_batch_size(global_batch_size: int, strategy) -> int:
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ConfigError(
            f"batch size {global_batch_size} is not divisible by the {replicas} replicas "
            "of the strategy"
        )
    return global_batch_size // replicas
