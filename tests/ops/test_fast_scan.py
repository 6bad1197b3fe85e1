"""The C++ ops' own contracts: shape checks, float64 formulas and gradients, float32 accuracy."""

import numpy as np
import pytest
import tensorflow as tf

from mdaf_tf.ops.fast_scan import causal_conv_silu, fast_scan, fast_scan_available, gated_scan

pytestmark = pytest.mark.skipif(not fast_scan_available(), reason="custom op could not be built")


def test_mismatched_shapes_are_rejected_with_a_clear_error():
    u = tf.ones((2, 5, 3))
    with pytest.raises(tf.errors.InvalidArgumentError, match="B/C must be"):
        fast_scan(u, u, -tf.ones((3, 4)), tf.ones((2, 5, 4)), tf.ones((2, 4, 4)), tf.ones(3))
    with pytest.raises(tf.errors.InvalidArgumentError, match="A/D first dim"):
        fast_scan(u, u, -tf.ones((4, 4)), tf.ones((2, 5, 4)), tf.ones((2, 5, 4)), tf.ones(3))


def test_float32_fast_exp_keeps_outputs_within_1e5_of_float64():
    """The op's polynomial exp (float32 path) against its float64 path (std::exp)."""
    rng = np.random.default_rng(0)
    shapes = [(4, 60, 64), (4, 60, 64), (64, 16), (4, 60, 16), (4, 60, 16), (64,)]
    inputs = [rng.normal(size=s) for s in shapes]
    inputs[1] = rng.uniform(1e-3, 2.0, size=shapes[1])  # delta: includes strong decay
    inputs[2] = -np.tile(np.arange(1.0, 17.0), (64, 1))
    y32 = fast_scan(*[tf.constant(x, tf.float32) for x in inputs]).numpy()
    y64 = fast_scan(*[tf.constant(x, tf.float64) for x in inputs]).numpy()
    assert np.max(np.abs(y32 - y64)) <= 1e-5 * np.max(np.abs(y64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d_state", [16, 5])
@pytest.mark.parametrize(("d_inner", "length"), [(4, 37), (27, 150)])
def test_channel_blocks_and_tiles_match_numpy(d_inner, length, d_state, dtype):
    """The kernels' layouts: channels in vector-wide blocks, taken in pairs by the backward, plus
    single leftover channels (27 = one pair and one lone block of 8 + 3 in float32, three pairs
    of 4 + 3 in float64), and backward tiles of 64 steps (150 = 64 + 64 + 22, each later tile
    restarted from a checkpointed state)."""
    from tests.ops.test_selective_scan import RTOL, assert_close, numpy_scan, random_inputs, run

    rng = np.random.default_rng(d_state + length)
    inputs = random_inputs(rng, batch=3, length=length, d_inner=d_inner, d_state=d_state)
    weights = rng.normal(size=(3, length, d_inner))
    _, expected_grads = run("reference", inputs, weights)
    y, grads = run("fast", [x.astype(dtype) for x in inputs], weights.astype(dtype))
    assert_close(y, numpy_scan(*inputs), RTOL[dtype], "y")
    for name, g, ref in zip("u delta A B C D".split(), grads, expected_grads, strict=True):
        assert_close(g, ref, RTOL[dtype], f"d{name}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exponents_outside_the_unclamped_range_match_numpy(dtype):
    """The float32 kernels skip the exp's clamping for a step of a channel block when every
    exponent delta A log2(e) is known to lie in [-125, 0]; every other step takes the clamped
    path. Here each block meets the cases that force it: a channel with a positive A entry, a
    channel of zeros in A (decay 1 at any delta), deltas far beyond the floor (decays that
    underflow) and negative deltas, beside ordinary steps, in whole blocks and leftover channels
    (d_inner 19 = two blocks of 8 + 3)."""
    from tests.ops.test_selective_scan import RTOL, assert_close, numpy_scan, random_inputs, run

    rng = np.random.default_rng(11)
    batch, length, d_inner, d_state = 2, 24, 19, 16
    inputs = random_inputs(rng, batch=batch, length=length, d_inner=d_inner, d_state=d_state)
    A = -np.tile(np.arange(1.0, d_state + 1.0), (d_inner, 1))
    A[3, 5] = 0.4  # positive entry: this channel's block always clamps
    A[9] = 0.0  # zero row: no exponent bound on delta
    A[17, 2] = 0.4  # a leftover channel with a positive entry
    inputs[2] = A
    delta = rng.uniform(1e-3, 0.1, size=(batch, length, d_inner))
    far = rng.random(delta.shape) < 0.1
    delta[far] = rng.uniform(6.0, 40.0, size=far.sum())  # |exponent| up to 40 * 16 * 1.44
    negative = rng.random(delta.shape) < 0.05
    delta[negative] = -rng.uniform(1e-3, 0.05, size=negative.sum())
    inputs[1] = delta
    weights = rng.normal(size=(batch, length, d_inner))
    _, expected_grads = run("reference", inputs, weights)
    y, grads = run("fast", [x.astype(dtype) for x in inputs], weights.astype(dtype))
    assert_close(y, numpy_scan(*inputs), RTOL[dtype], "y")
    for name, g, ref in zip("u delta A B C D".split(), grads, expected_grads, strict=True):
        assert_close(g, ref, RTOL[dtype], f"d{name}")


def _softplus(x):
    return np.logaddexp(0.0, x)


def _silu(x):
    return x / (1.0 + np.exp(-x))


def numpy_conv_silu(x, kernel, bias, valid):
    """u_t = SiLU(bias + sum_j kernel[j] x_{t-(K-1)+j}) where valid, 0 elsewhere (float64)."""
    width, length = kernel.shape[0], x.shape[1]
    padded = np.concatenate([np.zeros((x.shape[0], width - 1, x.shape[2])), x], axis=1)
    pre = bias + sum(kernel[j] * padded[:, j : j + length] for j in range(width))
    return _silu(pre) * valid[..., None]


def numpy_gated_scan(u, dt, dt_bias, A, bc, D, z, valid):
    """(scan(u, softplus(dt + dt_bias) * valid, A, B, C, D)) * SiLU(z), written per step."""
    n = A.shape[1]
    delta = _softplus(dt + dt_bias) * valid[..., None]
    h = np.zeros((u.shape[0], u.shape[2], n))
    y = np.zeros_like(u)
    for t in range(u.shape[1]):
        x = (delta[:, t] * u[:, t])[..., None] * bc[:, t, None, :n]
        h = np.exp(delta[:, t, :, None] * A) * h + x
        y[:, t] = np.einsum("bdn,bn->bd", h, bc[:, t, n:]) + D * u[:, t]
    return y * _silu(z)


def _conv_inputs(rng, batch=2, length=6, channels=3, width=3):
    valid = np.ones((batch, length), bool)
    valid[1, :2] = False
    return [
        rng.normal(size=(batch, length, channels)),
        rng.normal(size=(width, channels)),
        rng.normal(size=(channels,)),
        valid,
    ]


def _gated_inputs(rng, batch=2, length=6, channels=3, state=2):
    valid = np.ones((batch, length), bool)
    valid[1, :2] = False
    return [
        rng.normal(size=(batch, length, channels)),
        rng.normal(size=(batch, length, channels)),
        rng.normal(scale=0.5, size=(channels,)),
        -rng.uniform(0.3, 2.0, size=(channels, state)),
        rng.normal(size=(batch, length, 2 * state)),
        rng.normal(size=(channels,)),
        rng.normal(size=(batch, length, channels)),
        valid,
    ]


def _value_and_grads(fn, inputs, weights):
    xs = [tf.constant(x) for x in inputs[:-1]]
    with tf.GradientTape() as tape:
        tape.watch(xs)
        out = fn(*xs, tf.constant(inputs[-1]))
        loss = tf.reduce_sum(out * weights)
    return out.numpy(), [g.numpy() for g in tape.gradient(loss, xs)]


@pytest.mark.parametrize(
    "op,reference,make_inputs",
    [(causal_conv_silu, numpy_conv_silu, _conv_inputs),
     (gated_scan, numpy_gated_scan, _gated_inputs)],
    ids=["causal_conv_silu", "gated_scan"],
)
def test_fused_ops_match_numpy_and_finite_differences(op, reference, make_inputs):
    """Float64: outputs vs the numpy formula, every gradient vs central differences of it."""
    rng = np.random.default_rng(11)
    inputs = make_inputs(rng)
    weights = rng.normal(size=inputs[0].shape)
    out, grads = _value_and_grads(op, inputs, weights)
    np.testing.assert_allclose(out, reference(*inputs), rtol=1e-12, atol=1e-12)
    eps = 1e-6
    for i, grad in enumerate(grads):
        fd = np.zeros_like(inputs[i])
        for idx in np.ndindex(inputs[i].shape):
            plus = [x.copy() for x in inputs]
            minus = [x.copy() for x in inputs]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            fd[idx] = np.sum(weights * (reference(*plus) - reference(*minus))) / (2 * eps)
        scale = max(np.max(np.abs(fd)), 1e-12)
        assert np.max(np.abs(grad - fd)) / scale < 1e-7, f"input {i}"


def test_gated_scan_float32_at_a_realistic_width_matches_float64():
    """Polynomial exp, softplus and sigmoid of the float32 kernels against the float64 ones."""
    rng = np.random.default_rng(12)
    inputs = _gated_inputs(rng, batch=3, length=40, channels=64, state=16)
    inputs[1] = inputs[1] * 3.0 - 3.0  # softplus over a wide range, small steps included
    weights = rng.normal(size=inputs[0].shape)
    out64, grads64 = _value_and_grads(gated_scan, inputs, weights)
    cast = [x.astype(np.float32) if x.dtype == np.float64 else x for x in inputs]
    out32, grads32 = _value_and_grads(gated_scan, cast, weights.astype(np.float32))
    for got, want in zip([out32, *grads32], [out64, *grads64], strict=True):
        assert np.max(np.abs(got - want)) <= 1e-5 * np.max(np.abs(want))


def test_fused_ops_reject_mismatched_shapes():
    x = tf.ones((2, 5, 3))
    with pytest.raises(tf.errors.InvalidArgumentError, match="valid must be"):
        causal_conv_silu(x, tf.ones((4, 3)), tf.ones(3), tf.ones((2, 4), tf.bool))
    with pytest.raises(tf.errors.InvalidArgumentError, match="bc must be"):
        gated_scan(x, x, tf.ones(3), -tf.ones((3, 2)), tf.ones((2, 5, 2)), tf.ones(3), x,
                   tf.ones((2, 5), tf.bool))
