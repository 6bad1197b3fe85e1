"""Selective scan as one unrolled loop of a few TensorFlow ops per step: the serving scan.

Same recurrence and shapes as :mod:`mdaf_tf.ops.selective_scan`::

    h_t = exp(delta_t * A) * h_{t-1} + (delta_t * u_t) * B_t,     y_t = C_t . h_t + D * u_t

The inputs are split into per-step slices once (one ``Unpack`` op per input), and each step
then costs seven small ops: two for ``exp(delta_t A)``, two products and a sum for the state
update, and a product and a sum for ``C_t . h_t`` (eight graph nodes with the sum's axis).
Only the state of the current step, (batch, d_inner, d_state), is alive at a time (each step
waits for the previous state, also where its products do not need it), so memory does not grow
with the length.

Why it exists: an exported model runs without this project's C++ op, and in TF Serving without
XLA. The "chunked" scan's ``tf.scan`` over chunks then executes about 40 graph nodes per step
(slicing the stacked chunk inputs, broadcasting, loop bookkeeping); at batch 1 the node count,
not arithmetic, sets the latency. This scan executes eight. It needs a static length (the
export's fixed ``max_seq_len``), has no hand-written gradient (autodiff keeps every step's
state, so it is not meant for training) and is not what XLA wants (use "chunked" there).
"""

from __future__ import annotations

import tensorflow as tf


def stepwise_scan(u, delta, A, B, C, D):
    """``y`` of the selective scan; ``u`` must have a static length (``u.shape[1]``)."""
    u, delta, A, B, C, D = (tf.convert_to_tensor(x) for x in (u, delta, A, B, C, D))
    length = u.shape[1]
    if length is None:
        raise ValueError("stepwise_scan needs a static sequence length; use impl='chunked'")
    if length == 0:
        return u * D
    decay_rate = tf.unstack(delta[..., None], length, axis=1)  # (batch, d_inner, 1) each
    drive = tf.unstack((delta * u)[..., None], length, axis=1)  # (batch, d_inner, 1)
    B_steps = tf.unstack(B[:, :, None, :], length, axis=1)  # (batch, 1, d_state)
    C_steps = tf.unstack(C[:, :, None, :], length, axis=1)
    h = tf.zeros_like(drive[0] * B_steps[0])  # (batch, d_inner, d_state)
    ys = []
    for t in range(length):
        # Nothing of step t but the state depends on step t-1, so a graph executor would
        # otherwise start every step's (batch, d_inner, d_state) products at once: the whole
        # (batch, length, d_inner, d_state) volume alive, 3.4 GB a layer at batch 4096.
        with tf.control_dependencies([h]):
            h = tf.exp(decay_rate[t] * A) * h + drive[t] * B_steps[t]
        ys.append(tf.reduce_sum(h * C_steps[t], axis=-1))
    return tf.stack(ys, axis=1) + u * D
