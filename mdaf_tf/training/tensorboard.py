"""TensorBoard event files written with TensorFlow core ops only.

``tf.summary.scalar``/``histogram`` need the ``tensorboard`` package at write time; the
events they produce are just ``tf.summary.write`` calls with a plugin name in the metadata,
which is what this module does, so the run directory is readable by TensorBoard without the
training environment depending on it.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2


def _metadata(plugin: str) -> bytes:
    meta = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin)
    )
    return meta.SerializeToString()


class SummaryWriter:
    def __init__(self, logdir):
        self._writer = tf.summary.create_file_writer(str(logdir))

    def scalars(self, step: int, values: dict) -> None:
        with self._writer.as_default():
            for name, value in values.items():
                tf.summary.write(
                    name, tf.constant(float(value), tf.float32), step=step,
                    metadata=_metadata("scalars"),
                )
        self._writer.flush()

    def histogram(self, step: int, name: str, values, bins: int = 50) -> None:
        """Histogram over [0, 1] as TensorBoard's (left edge, right edge, count) rows."""
        counts, edges = np.histogram(np.asarray(values), bins=bins, range=(0.0, 1.0))
        table = np.stack([edges[:-1], edges[1:], counts], axis=1).astype(np.float64)
        with self._writer.as_default():
            tf.summary.write(name, tf.constant(table), step=step,
                             metadata=_metadata("histograms"))
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
