"""Chunked selective scan made only of TensorFlow ops, with a hand-derived backward pass.

Same recurrence and shapes as :mod:`mdaf_tf.ops.selective_scan`. Writing ``a_t = exp(delta_t A)``
and ``x_t = delta_t u_t B_t`` (per channel d and state n)::

    h_t = a_t * h_{t-1} + x_t,        y_t = C_t . h_t + D u_t

and ``g_t = dLoss/dy_t``, the backward pass runs the adjoint recurrence in reverse::

    dh_t      = g_t C_t + a_{t+1} * dh_{t+1}
    du_t      = g_t D + delta_t (dh_t . B_t)
    ddelta_t  = sum_n dh_t h_{t-1} a_t A + u_t (dh_t . B_t)
    dB_t      = sum_d dh_t delta_t u_t,          dC_t = sum_d g_t h_t
    dA        = sum_{b,t} dh_t h_{t-1} a_t delta_t,   dD = sum_{b,t} g_t u_t

The sequence is cut into chunks of at most ``MAX_CHUNK`` steps. The forward pass is a ``tf.scan``
over chunks with the steps of a chunk unrolled (so XLA fuses them), and it keeps only the state at
the start of every chunk. The backward pass walks the chunks in reverse, recomputes the states of
one chunk from its start state and runs the adjoint recurrence over it, so activation memory is
O(batch * d_inner * d_state * (chunk + length / chunk)) instead of O(... * length). Every op has an
XLA kernel: this is the implementation for GPU/TPU and for ``jit_compile=True``.
"""

from __future__ import annotations

import math

import tensorflow as tf

MAX_CHUNK = 8


def _chunking(length):
    """(number of chunks, chunk length) with chunks as even as possible for a static length."""
    if length is None:
        return None, MAX_CHUNK
    num_chunks = max(1, math.ceil(length / MAX_CHUNK))
    return num_chunks, max(1, math.ceil(length / num_chunks))


def _to_chunks(x, chunk, padded_length):
    """(batch, L, f) -> (num_chunks, chunk, batch, f), zero-padded on the right."""
    length = tf.shape(x)[1]
    x = tf.pad(x, [[0, 0], [0, padded_length - length], [0, 0]])
    x = tf.reshape(x, tf.stack([tf.shape(x)[0], -1, chunk, tf.shape(x)[2]]))
    return tf.transpose(x, (1, 2, 0, 3))


def _from_chunks(x, length):
    """(num_chunks, chunk, batch, f) -> (batch, L, f)."""
    x = tf.transpose(x, (2, 0, 1, 3))
    shape = tf.shape(x)
    x = tf.reshape(x, tf.stack([shape[0], shape[1] * shape[2], shape[3]]))
    return x[:, :length]


def _chunk_states(h, A, u_c, delta_c, B_c, chunk):
    """Unrolled forward over one chunk: the states after each step and the decays a_t."""
    states, decays = [], []
    for i in range(chunk):
        a = tf.exp(delta_c[i][:, :, None] * A)
        h = a * h + (delta_c[i] * u_c[i])[:, :, None] * B_c[i][:, None, :]
        states.append(h)
        decays.append(a)
    return states, decays


def chunked_scan(u, delta, A, B, C, D):
    """Selective scan: chunked ``tf.scan`` forward, reverse-recurrence backward (see module)."""
    u, delta, A, B, C, D = (tf.convert_to_tensor(x) for x in (u, delta, A, B, C, D))
    return _chunked_scan(u, delta, A, B, C, D)


@tf.custom_gradient
def _chunked_scan(u, delta, A, B, C, D):
    static_length = u.shape[1]
    num_chunks, chunk = _chunking(static_length)
    length = tf.shape(u)[1]
    if num_chunks is None:
        padded_length = (length + chunk - 1) // chunk * chunk
    else:
        padded_length = num_chunks * chunk
    batch = tf.shape(u)[0]
    d_inner, d_state = tf.shape(A)[0], tf.shape(A)[1]
    u_c, delta_c, B_c, C_c = (_to_chunks(x, chunk, padded_length) for x in (u, delta, B, C))

    def forward_chunk(carry, inputs):
        h, _ = carry
        uc, dc, bc, cc = inputs
        states, _ = _chunk_states(h, A, uc, dc, bc, chunk)
        ys = tf.stack([tf.einsum("bdn,bn->bd", s, cc[i]) for i, s in enumerate(states)])
        return states[-1], ys

    h0 = tf.zeros(tf.stack([batch, d_inner, d_state]), dtype=u.dtype)
    y0 = tf.zeros(tf.stack([chunk, batch, d_inner]), dtype=u.dtype)
    # The state entering each chunk: h0 for the first, the scan's carry for the others.
    ends, ys = tf.scan(forward_chunk, (u_c, delta_c, B_c, C_c), initializer=(h0, y0))
    starts = tf.concat([h0[None], ends[:-1]], axis=0)
    y = _from_chunks(ys, length) + u * D

    def grad(dy):
        g_c = _to_chunks(dy, chunk, padded_length)

        def backward_chunk(carry, inputs):
            dh_next, dA, _ = carry
            h_start, uc, dc, bc, cc, gc = inputs
            states, decays = _chunk_states(h_start, A, uc, dc, bc, chunk)
            previous = [h_start] + states[:-1]
            du, ddelta, dB, dC = [None] * chunk, [None] * chunk, [None] * chunk, [None] * chunk
            dA_sum = tf.zeros_like(h_start)
            for i in reversed(range(chunk)):
                dh = gc[i][:, :, None] * cc[i][:, None, :] + dh_next
                dC[i] = tf.einsum("bd,bdn->bn", gc[i], states[i])
                w = tf.einsum("bdn,bn->bd", dh, bc[i])
                q = dh * previous[i] * decays[i]
                du[i] = dc[i] * w
                ddelta[i] = tf.einsum("bdn,dn->bd", q, A) + uc[i] * w
                dB[i] = tf.einsum("bdn,bd->bn", dh, dc[i] * uc[i])
                dA_sum += q * dc[i][:, :, None]
                dh_next = decays[i] * dh
            dA = dA + tf.reduce_sum(dA_sum, axis=0)
            outs = tuple(tf.stack(x) for x in (du, ddelta, dB, dC))
            return dh_next, dA, outs

        zeros_bd = tf.zeros(tf.stack([chunk, batch, d_inner]), dtype=u.dtype)
        zeros_bn = tf.zeros(tf.stack([chunk, batch, d_state]), dtype=u.dtype)
        init = (h0, tf.zeros_like(A), (zeros_bd, zeros_bd, zeros_bn, zeros_bn))
        _, dA_all, outs = tf.scan(
            backward_chunk, (starts, u_c, delta_c, B_c, C_c, g_c), initializer=init, reverse=True
        )
        # The scan's carried dA after the last (i.e. first in time) chunk holds the full sum.
        dA = dA_all[0]
        du, ddelta, dB, dC = (_from_chunks(x, length) for x in outs)
        du = du + dy * D
        dD = tf.reduce_sum(dy * u, axis=(0, 1))
        return du, ddelta, dA, dB, dC, dD

    return y, grad
