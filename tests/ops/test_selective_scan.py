"""Every selective-scan implementation against a numpy float64 reference of the recurrence."""

import functools

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from mdaf_tf.ops.fast_scan import fast_scan_available
from mdaf_tf.ops.selective_scan import IMPLEMENTATIONS, resolve_impl, selective_scan

RTOL = {np.float32: 1e-5, np.float64: 1e-10}
NAMES = ("u", "delta", "A", "B", "C", "D")


def numpy_scan(u, delta, A, B, C, D):
    """h_t = exp(delta_t A) h_{t-1} + delta_t u_t B_t;  y_t = C_t . h_t + D u_t  (float64)."""
    u, delta, A, B, C, D = (np.asarray(x, np.float64) for x in (u, delta, A, B, C, D))
    batch, length, d_inner = u.shape
    h = np.zeros((batch, d_inner, A.shape[1]))
    y = np.zeros_like(u)
    for t in range(length):
        x = (delta[:, t] * u[:, t])[..., None] * B[:, t, None]
        h = np.exp(delta[:, t, :, None] * A) * h + x
        y[:, t] = np.einsum("bdn,bn->bd", h, C[:, t]) + D * u[:, t]
    return y


def random_inputs(rng, batch, length, d_inner, d_state, dtype=np.float64):
    inputs = (
        rng.normal(size=(batch, length, d_inner)),
        rng.uniform(0.01, 0.6, size=(batch, length, d_inner)),
        -rng.uniform(0.3, 3.0, size=(d_inner, d_state)),
        rng.normal(size=(batch, length, d_state)),
        rng.normal(size=(batch, length, d_state)),
        rng.normal(size=(d_inner,)),
    )
    return [x.astype(dtype) for x in inputs]


def run(impl, inputs, weights, jit_compile=False):
    """y and the gradients of sum(weights * y) with respect to the six inputs."""

    def loss_and_grads(*xs):
        with tf.GradientTape() as tape:
            tape.watch(xs)
            y = selective_scan(*xs, impl=impl)
            loss = tf.reduce_sum(y * weights)
        return y, tape.gradient(loss, xs)

    fn = tf.function(loss_and_grads, jit_compile=jit_compile)
    y, grads = fn(*[tf.constant(x) for x in inputs])
    return y.numpy(), [g.numpy() for g in grads]


def assert_close(actual, expected, rtol, what):
    scale = max(np.max(np.abs(expected)), 1e-12)
    err = np.max(np.abs(np.asarray(actual, np.float64) - expected)) / scale
    assert err <= rtol, f"{what}: relative error {err:.2e} > {rtol:.0e}"


def impls():
    cases = [("reference", False), ("chunked", False), ("chunked", True), ("stepwise", False)]
    if fast_scan_available():
        cases.append(("fast", False))
    return cases


IMPL_CASES = pytest.mark.parametrize(
    "impl,jit", impls(), ids=lambda v: v if isinstance(v, str) else ("xla" if v else "")
)


@functools.cache
def reference_gradients(length):
    """Gradients from the reference implementation's autodiff, float64 (shared across impls)."""
    rng = np.random.default_rng(length)
    inputs = random_inputs(rng, batch=2, length=length, d_inner=3, d_state=4)
    weights = rng.normal(size=(2, length, 3))
    return run("reference", inputs, weights)[1]


# XLA compiles are slow on CPU: float64 under XLA is covered by the finite-difference test.
@pytest.mark.parametrize(
    "impl,jit,dtype",
    [(i, j, d) for i, j in impls() for d in (np.float32, np.float64) if not j or d == np.float32],
    ids=lambda v: v.__name__ if isinstance(v, type) else (v if isinstance(v, str) else "xla" * v),
)
@pytest.mark.parametrize("length", [1, 7, 50, 333])
def test_outputs_and_gradients_match_numpy_and_reference(impl, jit, length, dtype):
    if impl == "stepwise" and length > 50:
        pytest.skip("stepwise unrolls every step into the graph: it serves the export's fixed "
                    "length (50), and tracing 333 steps with their gradient takes 20 s")
    rng = np.random.default_rng(length)
    inputs = random_inputs(rng, batch=2, length=length, d_inner=3, d_state=4)
    weights = rng.normal(size=(2, length, 3))
    expected_y = numpy_scan(*inputs)
    expected_grads = reference_gradients(length)

    cast = [x.astype(dtype) for x in inputs]
    y, grads = run(impl, cast, weights.astype(dtype), jit_compile=jit)
    assert y.dtype == dtype
    assert_close(y, expected_y, RTOL[dtype], "y")
    for name, g, ref in zip(NAMES, grads, expected_grads, strict=True):
        assert g.shape == ref.shape
        assert_close(g, ref, RTOL[dtype], f"d{name}")


@IMPL_CASES
def test_gradients_match_central_finite_differences(impl, jit):
    rng = np.random.default_rng(7)
    inputs = random_inputs(rng, batch=2, length=5, d_inner=2, d_state=3)
    weights = rng.normal(size=(2, 5, 2))
    _, grads = run(impl, inputs, weights, jit_compile=jit)
    eps = 1e-6
    for i, name in enumerate(NAMES):
        fd = np.zeros_like(inputs[i])
        for idx in np.ndindex(inputs[i].shape):
            plus = [x.copy() for x in inputs]
            minus = [x.copy() for x in inputs]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            fd[idx] = np.sum(weights * (numpy_scan(*plus) - numpy_scan(*minus))) / (2 * eps)
        assert_close(grads[i], fd, 1e-7, f"d{name} vs finite differences")


@pytest.mark.parametrize("impl", [impl for impl, jit in impls() if not jit])
@settings(max_examples=3, deadline=None)
@given(
    length=st.integers(1, 40),
    pad=st.integers(1, 30),
    seed=st.integers(0, 2**16),
)
def test_left_padding_changes_nothing(impl, length, pad, seed):
    """delta = u = 0 on the first `pad` positions: valid outputs and gradients are unchanged."""
    check_left_padding(impl, False, length, pad, seed)


def test_left_padding_changes_nothing_under_xla():
    check_left_padding("chunked", True, length=23, pad=18, seed=5)


def check_left_padding(impl, jit, length, pad, seed):
    rng = np.random.default_rng(seed)
    inputs = random_inputs(rng, batch=2, length=length, d_inner=3, d_state=4, dtype=np.float32)
    weights = rng.normal(size=(2, length, 3)).astype(np.float32)
    padded = []
    for name, x in zip(NAMES, inputs, strict=True):
        if name in ("A", "D"):
            padded.append(x)
            continue
        head = rng.normal(size=(2, pad, x.shape[2])).astype(np.float32)  # B, C: any value
        if name in ("u", "delta"):
            head[:] = 0.0
        padded.append(np.concatenate([head, x], axis=1))
    padded_weights = np.concatenate([np.zeros((2, pad, 3), np.float32), weights], axis=1)

    y, grads = run(impl, inputs, weights, jit_compile=jit)
    y_pad, grads_pad = run(impl, padded, padded_weights, jit_compile=jit)
    assert_close(y_pad[:, pad:], y, 1e-5, "y")
    for name, g, g_pad in zip(NAMES, grads, grads_pad, strict=True):
        valid = g_pad if name in ("A", "D") else g_pad[:, pad:]
        assert_close(valid, g, 1e-5, f"d{name}")


def test_auto_resolves_to_chunked_under_xla_and_runs_there():
    assert resolve_impl("auto", jit_compile=True) == "chunked"
    rng = np.random.default_rng(3)
    inputs = random_inputs(rng, batch=2, length=9, d_inner=3, d_state=4)
    y, _ = run("auto", inputs, np.ones((2, 9, 3)), jit_compile=True)
    assert_close(y, numpy_scan(*inputs), 1e-10, "y")


def test_auto_prefers_the_fast_op_on_cpu_without_xla():
    expected = "fast" if fast_scan_available() else "chunked"
    assert resolve_impl("auto", jit_compile=False) == expected


def test_bad_impl_choices_are_rejected():
    with pytest.raises(ValueError, match="unknown selective scan implementation"):
        resolve_impl("cuda")
    with pytest.raises(ValueError, match="without an XLA kernel"):
        resolve_impl("fast", jit_compile=True)
    assert set(IMPLEMENTATIONS) == {"auto", "reference", "chunked", "stepwise", "fast"}


def round_to(x, dtype):
    """``x`` rounded to ``dtype`` and back to float64 numpy."""
    return tf.cast(tf.cast(x, dtype), tf.float64).numpy()


def numpy_scan_rounding_state(u, delta, A, B, C, D, dtype):
    """``numpy_scan`` with the state rounded to ``dtype`` after every step: what a recurrence
    run in a 16-bit dtype would compute."""
    batch, length, d_inner = u.shape
    h = np.zeros((batch, d_inner, A.shape[1]))
    y = np.zeros_like(u)
    for t in range(length):
        x = (delta[:, t] * u[:, t])[..., None] * B[:, t, None]
        h = round_to(np.exp(delta[:, t, :, None] * A) * h + x, dtype)
        y[:, t] = np.einsum("bdn,bn->bd", h, C[:, t]) + D * u[:, t]
    return y


# Mantissa bits of the 16-bit dtypes (the stored ones plus the implicit leading bit).
MANTISSA_BITS = {tf.bfloat16: 8, tf.float16: 11}


@IMPL_CASES
@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float16], ids=lambda d: d.name)
def test_16_bit_inputs_run_the_recurrence_in_float32(impl, jit, dtype):
    # The tolerance: y is rounded to the 16-bit dtype once at the end, which is at most half
    # an ulp, 2^-bits of |y| elementwise; the float32 recurrence adds ~1e-6 of the scale,
    # granted as 1e-5 of max |y|. The same inputs in float64 are the reference, so the
    # input rounding is not counted. A 16-bit state (rounded every step) misses this bound.
    rng = np.random.default_rng(5)
    inputs = [tf.cast(x, dtype) for x in random_inputs(rng, 2, 64, 8, 4)]
    rounded = [tf.cast(x, tf.float64).numpy() for x in inputs]
    expected = numpy_scan(*rounded)
    y = tf.function(lambda *xs: selective_scan(*xs, impl=impl), jit_compile=jit)(*inputs)
    assert y.dtype == dtype
    bound = 2.0 ** -MANTISSA_BITS[dtype] * np.abs(expected) + 1e-5 * np.max(np.abs(expected))
    assert np.all(np.abs(tf.cast(y, tf.float64).numpy() - expected) <= bound)
    sixteen_bit_state = round_to(numpy_scan_rounding_state(*rounded, dtype), dtype)
    assert not np.all(np.abs(sixteen_bit_state - expected) <= bound)
