"""The C++ custom-op selective scan (CPU only): forward and hand-derived backward kernels.

The op is compiled on first use by :mod:`mdaf_tf.ops.build`. When that fails (no compiler, no
TensorFlow headers) :func:`fast_scan_available` returns False after ONE warning and
``impl="auto"`` falls back to the chunked TensorFlow scan. The op has no XLA kernel, so a
``tf.function`` that calls it must run with ``jit_compile=False``.
"""

from __future__ import annotations

import functools
import warnings

import tensorflow as tf

from mdaf_tf.ops import build


@functools.lru_cache(maxsize=1)
def _load():
    """The loaded op module, or None (with one warning) when it cannot be built or loaded."""
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

    return module


def fast_scan_available() -> bool:
    """Whether the custom op is built and loaded (builds it on the first call)."""
    return _load() is not None


def fast_scan(u, delta, A, B, C, D):
    """Selective scan through the C++ op; differentiable via its registered gradient."""
    module = _load()
    if module is None:
        raise RuntimeError("the fast selective scan op is unavailable; use impl='chunked'")
    return module.mdaf_selective_scan(u, delta, A, B, C, D)
