"""The C++ custom ops (CPU only), each with a hand-derived backward kernel.

- :func:`fast_scan`: the selective scan of :mod:`mdaf_tf.ops.selective_scan`
  (:func:`fast_scan_grad`: its backward kernel on its own).
- :func:`causal_conv_silu` and :func:`gated_scan`: the rest of ``MambaBlock``'s elementwise work
  fused around the scan (its ``scan="fast"`` path), so that no (batch, length, d_inner)
  intermediate of SiLU, softplus, the convolution or the gate is written to memory.

The op is compiled on first use by :mod:`mdaf_tf.ops.build`. When that fails (no compiler, no
TensorFlow headers) :func:`fast_scan_available` returns False after ONE warning and
``impl="auto"`` falls back to the chunked TensorFlow scan. The op has no XLA kernel, so a
``tf.function`` that calls it must run with ``jit_compile=False``.
"""

from __future__ import annotations

import functools
import warnings

import tensorflow as tf


@functools.lru_cache(maxsize=1)
def _load():
    """The loaded op module, or None (with one warning) when it cannot be built or loaded."""
    # Imported here, not at the top: ``mdaf_tf.ops`` imports this module, and a top-level
    # import would load ``build`` before ``python -m mdaf_tf.ops.build`` runs it as __main__.
    from mdaf_tf.ops import build

    try:
        module = tf.load_op_library(str(build.build()))
    except (RuntimeError, OSError, tf.errors.NotFoundError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        warnings.warn(
            f"mdaf_tf: the fast selective scan op is unavailable ({first_line}); "
            "falling back to the chunked TensorFlow scan",
            RuntimeWarning,
            stacklevel=3,
        )
        return None

    @tf.RegisterGradient("MdafSelectiveScan")
    def _selective_scan_grad(op, dy):
        return module.mdaf_selective_scan_grad(*op.inputs, dy)

    @tf.RegisterGradient("MdafCausalConvSilu")
    def _causal_conv_silu_grad(op, du):
        return [*module.mdaf_causal_conv_silu_grad(*op.inputs, du), None]

    @tf.RegisterGradient("MdafGatedScan")
    def _gated_scan_grad(op, dout, _):
        # outputs[1]: the states entering every chunk of the scan, kept for this backward pass.
        return [*module.mdaf_gated_scan_grad(*op.inputs, op.outputs[1], dout), None]

    return module


def fast_scan_available() -> bool:
    """Whether the custom op is built and loaded (builds it on the first call)."""
    return _load() is not None


def fast_scan(u, delta, A, B, C, D):
    """Selective scan through the C++ op; differentiable via its registered gradient."""
    return _module().mdaf_selective_scan(u, delta, A, B, C, D)


def fast_scan_grad(u, delta, A, B, C, D, dy):
    """Gradients of ``fast_scan`` with respect to its six inputs for the upstream gradient
    ``dy``: the op's backward kernel on its own, as its registered gradient runs it."""
    return _module().mdaf_selective_scan_grad(u, delta, A, B, C, D, dy)


def _module():
    module = _load()
    if module is None:
        raise RuntimeError("the fast selective scan op is unavailable; use impl='chunked'")
    return module


def causal_conv_silu(x, kernel, bias, valid):
    """``SiLU(bias + sum_j kernel[j] * x[:, t - (K-1) + j])`` at valid positions, 0 elsewhere.

    ``x`` (batch, length, d), ``kernel`` (K, d), ``bias`` (d,), ``valid`` (batch, length) bool;
    ``x`` before time 0 counts as zero (causal, left zero padding). Differentiable in x, kernel
    and bias.
    """
    return _module().mdaf_causal_conv_silu(x, kernel, bias, valid)


def gated_scan(u, dt, dt_bias, A, bc, D, z, valid):
    """``(selective_scan(u, delta, A, B, C, D)) * SiLU(z)`` with the step size computed inside.

    ``delta = softplus(dt + dt_bias)`` at valid positions and 0 elsewhere; ``B = bc[..., :N]``,
    ``C = bc[..., N:]`` with ``N = A.shape[1]``. Shapes: ``u``, ``dt``, ``z`` (batch, length, d);
    ``dt_bias``, ``D`` (d,); ``A`` (d, N); ``bc`` (batch, length, 2N); ``valid`` (batch, length)
    bool. Differentiable in every input but ``valid``. This is mamba-ssm's
    ``selective_scan_fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus=True)`` with a mask.
    """
    return _module().mdaf_gated_scan(u, dt, dt_bias, A, bc, D, z, valid)[0]
