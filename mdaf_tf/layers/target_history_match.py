"""Hard-search match features: how often, and how recently, the history holds the target."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from mdaf_tf.data import schema

DEFAULT_DECAYS = (0.5, 0.8, 0.95, 1.0)


def decay_kernels(length: int, decays) -> np.ndarray:
    """``(length, K)`` weights ``decay_k ** age / sum_age decay_k ** age`` with age 0 at the
    last (most recent) position; each column sums to 1."""
    age = np.arange(length - 1, -1, -1, dtype=np.float64)[:, None]
    w = np.asarray(decays, dtype=np.float64)[None, :] ** age
    return (w / w.sum(axis=0, keepdims=True)).astype("float32")


@keras.saving.register_keras_serializable(package="mdaf_tf")
class TargetHistoryMatch(keras.layers.Layer):
    """Recency-weighted counts of the behaviours that share the target's id, per field.

    The category-based "hard search" of SIM (Pi et al. 2020, "Search-based User Interest
    Modeling with Lifelong Sequential Behavior Data for CTR Prediction",
    arXiv:2006.05639) keeps the behaviours whose category equals the target's; this layer
    summarises that search by learned recency kernels instead of attending over the kept
    behaviours. For target ids ``x_f`` (B, F), history ids ``h_{t,f}`` (B, T, F) (most
    recent last, left-padded) and valid positions ``v_t``::

        m_{t,f}   = [h_{t,f} == x_f] * v_t * [x_f is a real id (not PAD or OOV)]
        out_{f,k} = sum_t W_{t,f,k} m_{t,f}                          (B, F * K)

    ``W`` is learned, one kernel per (field, k), initialised to the normalised exponential
    decay ``decay_k ** age`` over the positions' age (``decays``; 1.0 gives the share of the
    whole window), so each output starts in [0, 1].

    Inputs: ``target_ids`` (B, F) int, ``history_ids`` (B, T, F) int, optional
    ``padding_mask`` (B, T) bool. Output: (B, F * K) float, field-major.

    Args:
        decays: the initial decay per kernel (K of them).

    Example:

    ```python
    import numpy as np
    from mdaf_tf.layers import TargetHistoryMatch

    target = np.array([[5, 3]])  # (batch, fields): item 5, category 3
    history = np.array([[[0, 0], [7, 3], [5, 3]]])  # (batch, length, fields), left-padded
    match = TargetHistoryMatch(decays=(1.0,))
    out = match(target, history, padding_mask=history[..., 0] > 0)
    print(np.round(np.asarray(out), 3))  # [[0.333 0.667]]
    ```
    """

    def __init__(self, decays=DEFAULT_DECAYS, **kwargs):
        super().__init__(**kwargs)
        self.decays = tuple(float(d) for d in decays)
        if not self.decays or any(not 0.0 < d <= 1.0 for d in self.decays):
            raise ValueError(f"TargetHistoryMatch: decays must be in (0, 1], got {decays!r}")

    def build(self, target_ids_shape, history_ids_shape, padding_mask_shape=None):
        length, fields = int(history_ids_shape[1]), int(history_ids_shape[2])
        if int(target_ids_shape[-1]) != fields:
            raise ValueError(f"TargetHistoryMatch: {target_ids_shape[-1]} target fields != "
                             f"{fields} history fields")
        init = np.repeat(decay_kernels(length, self.decays)[:, None, :], fields, axis=1)
        self.kernel = self.add_weight(
            name="kernel", shape=init.shape,
            initializer=keras.initializers.Constant(init), trainable=True)
        self.built = True

    def call(self, target_ids, history_ids, padding_mask=None):
        target = ops.expand_dims(target_ids, 1)
        match = ops.logical_and(ops.equal(history_ids, target), target >= schema.FIRST_ID)
        if padding_mask is not None:
            match = ops.logical_and(match, ops.expand_dims(ops.cast(padding_mask, "bool"), -1))
        out = ops.einsum("btf,tfk->bfk", ops.cast(match, self.compute_dtype),
                         ops.cast(self.kernel, self.compute_dtype))
        return ops.reshape(out, (-1, self.kernel.shape[1] * len(self.decays)))

    def compute_output_shape(self, target_ids_shape, history_ids_shape, padding_mask_shape=None):
        return (target_ids_shape[0], int(target_ids_shape[-1]) * len(self.decays))

    def get_config(self):
        return {**super().get_config(), "decays": list(self.decays)}
