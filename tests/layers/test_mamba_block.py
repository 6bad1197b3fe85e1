"""MambaBlock against a numpy float64 forward written from the equations (Gu & Dao 2023)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from mdaf_tf.layers.mamba_block import MambaBlock
from mdaf_tf.ops import IMPLEMENTATIONS

SCANS = ["reference", "chunked", "fast", "auto"]


def _softplus(x):
    return np.logaddexp(0.0, x)


def _silu(x):
    return x / (1.0 + np.exp(-x))


def numpy_block(block, x, mask=None):
    """Float64 forward of the whole block from its weights, one position at a time."""
    w = {v.path.split("/")[-1]: v.numpy().astype(np.float64) for v in block.weights}
    x = x.astype(np.float64)
    batch, length, _ = x.shape
    e, n, r, k = block.d_inner, block.d_state, block.rank, block.d_conv
    valid = np.ones((batch, length)) if mask is None else mask.astype(np.float64)
    A = -np.exp(w["A_log"])
    out = np.zeros_like(x)
    for b in range(batch):
        xz = x[b] @ w["in_proj_kernel"]
        x_in, z = xz[:, :e] * valid[b, :, None], xz[:, e:]
        h = np.zeros((e, n))
        for t in range(length):
            conv = w["conv_bias"].copy()
            for j in range(k):  # tap j multiplies x_in[t - (k - 1) + j]; before time 0 is zero
                s = t - (k - 1) + j
                if s >= 0:
                    conv += w["conv_kernel"][j] * x_in[s]
            u = _silu(conv) * valid[b, t]
            proj = u @ w["x_proj_kernel"]
            dt_low, B, C = proj[:r], proj[r : r + n], proj[r + n :]
            delta = _softplus(dt_low @ w["dt_proj_kernel"] + w["dt_proj_bias"]) * valid[b, t]
            h = np.exp(delta[:, None] * A) * h + (delta * u)[:, None] * B[None, :]
            y = h @ C + w["D"] * u
            out[b, t] = (y * _silu(z[t])) @ w["out_proj_kernel"]
    return out


def _require(scan, jit_compile=False):
    """Skip a scan the ops module does not (yet) offer or cannot run here."""
    if scan not in IMPLEMENTATIONS:
        pytest.skip(f"selective scan {scan!r} not implemented")
    if scan == "fast":
        if jit_compile:
            pytest.skip("the fast scan is a custom op without an XLA kernel")
        from mdaf_tf.ops.fast_scan import fast_scan_available

        if not fast_scan_available():
            pytest.skip("the fast scan op cannot be built here")


def _rel_err(got, want):
    return np.max(np.abs(got - want)) / np.max(np.abs(want))


def test_parameter_count_at_seed_sizes():
    block = MambaBlock(128, d_state=16, d_conv=4, expand=2, scan="reference")
    block.build((None, 50, 128))
    shapes = {v.path.split("/")[-1]: tuple(v.shape) for v in block.weights}
    assert shapes == {
        "in_proj_kernel": (128, 512),
        "conv_kernel": (4, 256),
        "conv_bias": (256,),
        "x_proj_kernel": (256, 8 + 32),
        "dt_proj_kernel": (8, 256),
        "dt_proj_bias": (256,),
        "A_log": (256, 16),
        "D": (256,),
        "out_proj_kernel": (256, 128),
    }
    assert block.count_params() == 116_480


def test_initialisation():
    block = MambaBlock(64, d_state=8, scan="reference", seed=3)
    block.build((None, 10, 64))
    e = block.d_inner
    assert block.rank == math.ceil(64 / 16)
    np.testing.assert_allclose(
        block.A_log.numpy(), np.tile(np.log(np.arange(1, 9)), (e, 1)), rtol=1e-6
    )
    np.testing.assert_array_equal(block.D.numpy(), np.ones(e))
    dt = _softplus(block.dt_proj_bias.numpy().astype(np.float64))
    assert np.all(dt >= 1e-3 * (1 - 1e-5)) and np.all(dt <= 1e-1 * (1 + 1e-5))
    # Log-uniform: log(dt) spreads over the whole range, not bunched at one end.
    log_dt = np.log(dt)
    assert log_dt.min() < math.log(3e-3) and log_dt.max() > math.log(3e-2)
    bound = block.rank**-0.5
    assert np.all(np.abs(block.dt_proj_kernel.numpy()) <= bound)


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("scan", SCANS)
def test_forward_matches_numpy_reference(scan, jit_compile):
    _require(scan, jit_compile)
    rng = np.random.default_rng(0)
    block = MambaBlock(16, d_state=4, d_conv=3, expand=2, scan=scan, seed=1)
    x = rng.normal(size=(2, 9, 16)).astype(np.float32)
    block.build(x.shape)
    # Move A and the step sizes off their initial values so every term matters.
    block.A_log.assign(block.A_log.numpy() + rng.normal(scale=0.3, size=block.A_log.shape))
    block.D.assign(rng.normal(size=block.D.shape))
    block.dt_proj_bias.assign(rng.normal(scale=0.5, size=block.dt_proj_bias.shape))
    forward = tf.function(lambda t: block(t), jit_compile=jit_compile)
    got = forward(tf.constant(x)).numpy()
    want = numpy_block(block, x)
    assert _rel_err(got, want) < 1e-5


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("scan", SCANS[:3])
def test_masked_forward_matches_numpy_reference(scan, jit_compile):
    _require(scan, jit_compile)
    rng = np.random.default_rng(1)
    block = MambaBlock(16, d_state=4, scan=scan, seed=2)
    x = rng.normal(size=(3, 8, 16)).astype(np.float32)
    mask = np.arange(8)[None, :] >= np.array([[0], [3], [8]])  # full, length 5, empty
    forward = tf.function(lambda t, m: block(t, mask=m), jit_compile=jit_compile)
    got = forward(tf.constant(x), tf.constant(mask)).numpy()
    assert np.all(np.isfinite(got))
    want = numpy_block(block, x, mask)
    assert _rel_err(got[mask], want[mask]) < 1e-5


@pytest.mark.parametrize("scan", SCANS)
def test_left_padding_length_and_values_do_not_matter(scan):
    _require(scan)
    rng = np.random.default_rng(2)
    block = MambaBlock(16, d_state=4, scan=scan, seed=4)
    k = 7
    history = rng.normal(size=(2, k, 16)).astype(np.float32)

    def padded(total, pad_values):
        x = np.concatenate([pad_values(total - k), history], axis=1)
        mask = np.arange(total)[None, :].repeat(2, 0) >= total - k
        return x.astype(np.float32), mask

    x50, m50 = padded(50, lambda p: np.zeros((2, p, 16)))
    x80, m80 = padded(80, lambda p: np.zeros((2, p, 16)))
    x80_noisy, _ = padded(80, lambda p: rng.normal(scale=10.0, size=(2, p, 16)))
    y50 = block(x50, mask=m50).numpy()[:, -k:]
    y80 = block(x80, mask=m80).numpy()[:, -k:]
    y80_noisy = block(x80_noisy, mask=m80).numpy()
    np.testing.assert_allclose(y50, y80, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(y80, y80_noisy[:, -k:], rtol=1e-6, atol=1e-6)
    assert np.all(np.isfinite(y80_noisy))
    # The unmasked block does see the noise: the mask is what removes it.
    y80_unmasked = block(x80_noisy).numpy()[:, -k:]
    assert np.max(np.abs(y80_unmasked - y80)) > 1e-3


def test_output_is_causal():
    rng = np.random.default_rng(3)
    block = MambaBlock(16, d_state=4, scan="reference", seed=5)
    x = rng.normal(size=(1, 10, 16)).astype(np.float32)
    changed = x.copy()
    changed[:, 6:] += 1.0
    y, y_changed = block(x).numpy(), block(changed).numpy()
    np.testing.assert_allclose(y[:, :6], y_changed[:, :6], rtol=1e-6, atol=1e-7)
    assert np.max(np.abs(y[:, 6:] - y_changed[:, 6:])) > 1e-4


def test_rejects_wrong_width():
    with pytest.raises(ValueError, match="width 8"):
        MambaBlock(16, scan="reference")(np.zeros((1, 3, 8), np.float32))


def test_config_and_keras_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 6, 16)).astype(np.float32)
    mask = np.arange(6)[None, :] >= np.array([[0], [2]])
    block = MambaBlock(16, d_state=4, d_conv=3, expand=2, dt_rank=3, scan="reference", seed=7)
    want = block(x, mask=mask).numpy()

    clone = MambaBlock.from_config(block.get_config())
    assert clone.get_config() == block.get_config()
    clone.build(x.shape)
    clone.set_weights(block.get_weights())
    np.testing.assert_array_equal(clone(x, mask=mask).numpy(), want)

    tokens = keras.Input((6, 16))
    valid = keras.Input((6,), dtype="bool")
    model = keras.Model([tokens, valid], block(tokens, mask=valid))
    np.testing.assert_allclose(model.predict([x, mask], verbose=0), want, rtol=1e-5, atol=1e-6)
    path = tmp_path / "block.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(
        loaded.predict([x, mask], verbose=0), model.predict([x, mask], verbose=0)
    )
    assert loaded.layers[-1].get_config() == block.get_config()


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-10), ("float32", 1e-5)])
def test_fused_fast_path_gradients_match_the_reference_path(dtype, rtol):
    """scan="fast" runs the fused ops; its output and every gradient equal the TF-ops path."""
    _require("fast")
    rng = np.random.default_rng(5)
    block = MambaBlock(16, d_state=4, d_conv=3, scan="fast", seed=3, dtype=dtype)
    x = rng.normal(size=(3, 9, 16)).astype(dtype)
    mask = np.arange(9)[None, :] >= np.array([[0], [3], [9]])  # full, length 6, empty
    block.build(x.shape)
    block.A_log.assign(block.A_log.numpy() + rng.normal(scale=0.3, size=block.A_log.shape))
    block.D.assign(rng.normal(size=block.D.shape))
    block.dt_proj_bias.assign(rng.normal(scale=0.5, size=block.dt_proj_bias.shape))
    weights = rng.normal(size=x.shape).astype(dtype) * mask[..., None]
    results = {}
    for scan in ("fast", "reference"):
        block.scan = scan  # read at call time
        inputs = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            y = block(inputs, mask=tf.constant(mask))
            loss = tf.reduce_sum(y * weights)
        grads = tape.gradient(loss, [inputs, *block.trainable_variables])
        results[scan] = [y.numpy()[mask], *(g.numpy() for g in grads)]
    for got, want in zip(results["fast"], results["reference"], strict=True):
        assert _rel_err(got, want) < rtol
