"""Selective scan (the S6 recurrence of Mamba) with pluggable implementations.

For every batch row b, channel d and state n::

    h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t      (h_0 = 0)
    y_t = sum_n C_t[n] * h_t[n] + D * u_t

Shapes: ``u`` and ``delta`` (batch, length, d_inner); ``A`` (d_inner, d_state), negative;
``B`` and ``C`` (batch, length, d_state); ``D`` (d_inner,). Returns ``y`` with the shape of
``u``. Padding positions carry ``delta = 0`` and ``u = 0``, which leaves the state untouched
(exp(0) = 1, no input), so left padding never changes what later positions see.

Implementations (``impl=``):

- ``"reference"``: ``tf.scan`` over time with autodiff through the loop; for tests only.
- ``"chunked"``: TensorFlow ops only, compiles under XLA, hand-derived backward pass with states
  recomputed per chunk (:mod:`mdaf_tf.ops.chunked_scan`). Used on GPU/TPU and under XLA.
- ``"stepwise"``: TensorFlow ops only, one unrolled loop of a few ops per step, forward-oriented
  (autodiff, no custom gradient); what an export runs in place of ``"fast"``, because TF
  Serving has neither this project's op nor, by default, XLA (:mod:`mdaf_tf.ops.stepwise_scan`).
- ``"fast"``: C++ CPU custom op with forward and backward kernels
  (:mod:`mdaf_tf.ops.fast_scan`). It has no XLA kernel: a ``tf.function`` (or a Keras model)
  that uses it must run with ``jit_compile=False``.
- ``"auto"`` (``DEFAULT_IMPL``): ``"fast"`` when the op is available, no GPU/TPU is visible and
  the call is not being traced inside an XLA compilation; ``"chunked"`` otherwise. Training code
  decides ``jit_compile`` with :func:`resolve_impl` *before* compiling: when it returns
  ``"fast"``, compile with ``jit_compile=False``.

Reference: Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces",
arXiv:2312.00752, Algorithm 2.
"""

from __future__ import annotations

import tensorflow as tf

from mdaf_tf.internal_apis import tracing_under_xla
from mdaf_tf.ops.chunked_scan import chunked_scan
from mdaf_tf.ops.fast_scan import fast_scan, fast_scan_available
from mdaf_tf.ops.stepwise_scan import stepwise_scan
from mdaf_tf.precision import float32_at_least

IMPLEMENTATIONS = ("auto", "reference", "chunked", "stepwise", "fast")
DEFAULT_IMPL = "auto"


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


def _accelerator_visible() -> bool:
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def resolve_impl(impl: str = DEFAULT_IMPL, jit_compile: bool = False) -> str:
    """The concrete implementation ``impl`` stands for when run with ``jit_compile``.

    ``"auto"`` gives ``"fast"`` on CPU-only machines without XLA when the op can be built, and
    ``"chunked"`` otherwise. ``"fast"`` with ``jit_compile=True`` is an error (the op has no XLA
    kernel). Call it before compiling a model: if it returns ``"fast"``, use ``jit_compile=False``.
    """
    if impl not in IMPLEMENTATIONS:
        raise ValueError(
            f"unknown selective scan implementation {impl!r}; one of {IMPLEMENTATIONS}"
        )
    if impl == "fast" and jit_compile:
        raise ValueError("impl='fast' is a custom op without an XLA kernel; use jit_compile=False")
    if impl != "auto":
        return impl
    if jit_compile or _accelerator_visible() or not fast_scan_available():
        return "chunked"
    return "fast"


def selective_scan(u, delta, A, B, C, D, impl: str = DEFAULT_IMPL):
    """Dispatch to the named implementation (see ``IMPLEMENTATIONS`` and the module docstring).

    16-bit inputs (bfloat16, float16: a mixed precision policy) are cast to float32 and the
    recurrence runs in float32; ``y`` comes back in ``u``'s dtype. A 16-bit state would lose
    the per-step increments ``delta_t B_t u_t`` once they fall below its 8 (bfloat16) or 11
    (float16) bits of mantissa relative to the state."""
    wide = float32_at_least(u.dtype)
    if wide != tf.as_dtype(u.dtype).name:
        inputs = [tf.cast(x, wide) for x in (u, delta, A, B, C, D)]
        return tf.cast(selective_scan(*inputs, impl=impl), u.dtype)
    impl = resolve_impl(impl, jit_compile=tracing_under_xla() and impl == "auto")
    if impl == "reference":
        return reference_scan(u, delta, A, B, C, D)
    if impl == "chunked":
        return chunked_scan(u, delta, A, B, C, D)
    if impl == "stepwise":
        return stepwise_scan(u, delta, A, B, C, D)
    return fast_scan(u, delta, A, B, C, D)
