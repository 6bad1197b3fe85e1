"""Selective scan (the S6 recurrence of Mamba) with pluggable implementations.

For every batch row b, channel d and state n::

    h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t      (h_0 = 0)
    y_t = sum_n C_t[n] * h_t[n] + D * u_t

Shapes: ``u`` and ``delta`` (batch, length, d_inner); ``A`` (d_inner, d_state), negative;
``B`` and ``C`` (batch, length, d_state); ``D`` (d_inner,). Returns ``y`` with the shape of
``u``. Padding positions carry ``delta = 0`` and ``u = 0``, which leaves the state untouched
(exp(0) = 1, no input), so left padding never changes what later positions see.

Reference: Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces",
arXiv:2312.00752, Algorithm 2.
"""

from __future__ import annotations

import tensorflow as tf

IMPLEMENTATIONS = ("reference",)


def reference_scan(u, delta, A, B, C, D):
    """``tf.scan`` over time; compiles under XLA. Slow to differentiate: tests only."""
    batch = tf.shape(u)[0]
    d_inner = tf.shape(A)[0]
    d_state = tf.shape(A)[1]
    # Time-major for tf.scan.
    u_t = tf.transpose(u, (1, 0, 2))
    delta_t = tf.transpose(delta, (1, 0, 2))
    B_t = tf.transpose(B, (1, 0, 2))
    C_t = tf.transpose(C, (1, 0, 2))

    def step(h, inputs):
        u_i, delta_i, B_i, C_i = inputs
        decay = tf.exp(delta_i[:, :, None] * A[None])
        h = decay * h + (delta_i * u_i)[:, :, None] * B_i[:, None, :]
        y = tf.einsum("bdn,bn->bd", h, C_i)
        return h, y

    h0 = tf.zeros(tf.stack([batch, d_inner, d_state]), dtype=u.dtype)

    def scan_step(carry, inputs):
        h, _ = carry
        return step(h, inputs)

    y0 = tf.zeros(tf.stack([batch, d_inner]), dtype=u.dtype)
    _, ys = tf.scan(scan_step, (u_t, delta_t, B_t, C_t), initializer=(h0, y0))
    y = tf.transpose(ys, (1, 0, 2))
    return y + u * D


def selective_scan(u, delta, A, B, C, D, impl: str = "reference"):
    """Dispatch to the named implementation (see ``IMPLEMENTATIONS``)."""
    if impl == "reference":
        return reference_scan(u, delta, A, B, C, D)
    raise ValueError(f"unknown selective scan implementation {impl!r}; one of {IMPLEMENTATIONS}")
