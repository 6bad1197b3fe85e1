"""Mamba4RecEncoder: numpy forward, masked pooling, padding invariance, round trip, training."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_mamba_block import numpy_block

from mdaf_tf.layers.mamba4rec_encoder import Mamba4RecEncoder
from mdaf_tf.ops import IMPLEMENTATIONS

D_IN, D_MODEL = 12, 16


def _small(**kwargs):
    args = dict(d_model=D_MODEL, num_layers=1, d_state=4, d_conv=3, dropout=0.25)
    args.update(kwargs)
    args.setdefault("scan", "reference")
    return Mamba4RecEncoder(seed=0, **args)


def _left_padded(rng, lengths, total, pad_scale=0.0):
    x = rng.normal(scale=pad_scale, size=(len(lengths), total, D_IN))
    mask = np.arange(total)[None, :] >= total - np.asarray(lengths)[:, None]
    return x.astype(np.float32), mask


def _layer_norm(x, layer):
    gamma, beta = (w.numpy().astype(np.float64) for w in layer.weights)
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + layer.epsilon) * gamma + beta


def _gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def numpy_encoder(encoder, x, mask):
    """Inference-mode float64 forward from the encoder's weights, pooled per its mode."""
    kernel, bias = (w.numpy().astype(np.float64) for w in encoder.input_projection.weights)
    h = _layer_norm(x.astype(np.float64) @ kernel + bias, encoder.embedding_norm)
    for i in range(encoder.num_layers):
        mixed = numpy_block(encoder.mamba_blocks[i], h, mask)
        h = _layer_norm(h + mixed, encoder.mamba_norms[i])
        w1, b1 = (w.numpy().astype(np.float64) for w in encoder.ffn_in[i].weights)
        w2, b2 = (w.numpy().astype(np.float64) for w in encoder.ffn_out[i].weights)
        h = _layer_norm(h + _gelu(h @ w1 + b1) @ w2 + b2, encoder.ffn_norms[i])
    pooled = np.zeros((x.shape[0], h.shape[-1]))
    for b in range(x.shape[0]):
        rows = h[b][mask[b]]
        if len(rows):
            pooled[b] = rows.mean(0) if encoder.pooling == "mean" else rows[-1]
    return pooled


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_matches_numpy_reference(pooling):
    rng = np.random.default_rng(0)
    encoder = _small(num_layers=2, pooling=pooling)
    x, mask = _left_padded(rng, [9, 4, 1], 9, pad_scale=1.0)
    x[mask] = rng.normal(size=(int(mask.sum()), D_IN))
    got = encoder(x, mask=mask, training=False).numpy()
    assert got.shape == (3, D_MODEL)
    assert encoder.input_projection is not None
    want = numpy_encoder(encoder, x, mask)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_padding_length_and_padded_values_do_not_matter(pooling):
    rng = np.random.default_rng(1)
    encoder = _small(pooling=pooling)
    lengths = [5, 1, 12]
    history = [rng.normal(size=(k, D_IN)).astype(np.float32) for k in lengths]

    def batch(total, pad_scale):
        x, mask = _left_padded(rng, lengths, total, pad_scale)
        for b, k in enumerate(lengths):
            x[b, total - k :] = history[b]
        return x, mask

    y50 = encoder(*batch(50, 0.0)).numpy()
    y80 = encoder(*batch(80, 0.0)).numpy()
    y80_noisy = encoder(*batch(80, 5.0)).numpy()
    np.testing.assert_allclose(y50, y80, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y80, y80_noisy, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_empty_history_pools_to_zeros(pooling):
    rng = np.random.default_rng(2)
    encoder = _small(pooling=pooling)
    x, mask = _left_padded(rng, [0, 3], 6, pad_scale=1.0)
    out = encoder(x, mask=mask).numpy()
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[0], np.zeros(D_MODEL))
    assert np.max(np.abs(out[1])) > 0


def test_no_mask_means_every_position_valid():
    rng = np.random.default_rng(3)
    encoder = _small(num_layers=1)
    x = rng.normal(size=(2, 5, D_IN)).astype(np.float32)
    np.testing.assert_allclose(
        encoder(x).numpy(), encoder(x, mask=np.ones((2, 5), bool)).numpy(), rtol=1e-6, atol=1e-7
    )


def test_dropout_only_in_training():
    rng = np.random.default_rng(4)
    encoder = _small(dropout=0.5)
    x, mask = _left_padded(rng, [4, 6], 6, pad_scale=1.0)
    inference = encoder(x, mask=mask, training=False).numpy()
    np.testing.assert_array_equal(inference, encoder(x, mask=mask).numpy())
    assert np.max(np.abs(encoder(x, mask=mask, training=True).numpy() - inference)) > 1e-4


def test_width_equal_to_d_model_has_no_projection():
    encoder = _small()
    encoder.build((None, 7, D_MODEL))
    assert encoder.input_projection is None
    with pytest.raises(ValueError, match="pooling"):
        _small(pooling="max")


def test_config_and_keras_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    x, mask = _left_padded(rng, [7, 2], 7, pad_scale=1.0)
    encoder = _small(num_layers=2, pooling="last")
    want = encoder(x, mask=mask).numpy()

    clone = Mamba4RecEncoder.from_config(encoder.get_config())
    assert clone.get_config() == encoder.get_config()
    clone.build(x.shape)
    clone.set_weights(encoder.get_weights())
    np.testing.assert_array_equal(clone(x, mask=mask).numpy(), want)

    tokens = keras.Input((7, D_IN))
    valid = keras.Input((7,), dtype="bool")
    model = keras.Model([tokens, valid], encoder(tokens, mask=valid))
    path = tmp_path / "encoder.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(
        loaded.predict([x, mask], verbose=0), model.predict([x, mask], verbose=0)
    )
    np.testing.assert_allclose(loaded.predict([x, mask], verbose=0), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "jit_compile", [False, pytest.param(True, marks=pytest.mark.slow)]  # XLA compile: ~1 min
)
def test_training_reduces_loss(jit_compile):
    keras.utils.set_random_seed(6)
    rng = np.random.default_rng(6)
    lengths = rng.integers(0, 9, size=64)
    x, mask = _left_padded(rng, lengths, 8)
    x[mask] = rng.normal(size=(int(mask.sum()), D_IN))
    target = (x * mask[..., None]).sum((1, 2))[:, None].astype(np.float32) / 4.0

    tokens = keras.Input((8, D_IN))
    valid = keras.Input((8,), dtype="bool")
    scan = "auto" if "auto" in IMPLEMENTATIONS else "reference"  # the layer default
    pooled = _small(dropout=0.1, scan=scan)(tokens, mask=valid)
    model = keras.Model([tokens, valid], keras.layers.Dense(1)(pooled))
    model.compile(keras.optimizers.Adam(1e-2), loss="mse", jit_compile=jit_compile)
    before = model.evaluate([x, mask], target, verbose=0)
    model.fit([x, mask], target, batch_size=32, epochs=5, verbose=0)
    after = model.evaluate([x, mask], target, verbose=0)
    assert np.isfinite(after) and after < 0.7 * before
    assert tf.reduce_all(tf.math.is_finite(model.predict([x, mask], verbose=0)))
