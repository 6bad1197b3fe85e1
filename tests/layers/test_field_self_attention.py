import keras
import numpy as np
import pytest
from layer_roundtrip import assert_config_round_trip, assert_keras_round_trip

from mdaf_tf.layers.field_self_attention import FieldSelfAttention


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def autoint_reference(x, wq, wk, wv, wres, use_scale):
    """AutoInt interacting layer, one head at a time, written with explicit loops over fields."""
    batch, fields, _ = x.shape
    heads, size = wq.shape[1], wq.shape[2]
    out = np.zeros((batch, fields, heads * size))
    for n in range(batch):
        for h in range(heads):
            q, k, v = x[n] @ wq[:, h], x[n] @ wk[:, h], x[n] @ wv[:, h]
            for m in range(fields):
                scores = np.array([q[m] @ k[j] for j in range(fields)])
                if use_scale:
                    scores = scores / np.sqrt(size)
                alpha = softmax(scores)
                head = sum(alpha[j] * v[j] for j in range(fields))
                if wres is not None:
                    head = head + x[n, m] @ wres[:, h]
                out[n, m, h * size:(h + 1) * size] = head
    return np.maximum(out, 0.0)


@pytest.mark.parametrize("use_residual,use_scale", [(True, False), (False, True)])
def test_matches_numpy_reference(use_residual, use_scale):
    rng = np.random.default_rng(0)
    layer = FieldSelfAttention(num_heads=2, attention_dim=3, use_residual=use_residual,
                               use_scale=use_scale, dtype="float64")
    x = rng.normal(size=(2, 4, 5))
    out = np.asarray(layer(x))
    assert out.shape == (2, 4, 6)
    wres = np.asarray(layer.residual_kernel) if use_residual else None
    expected = autoint_reference(
        x, *(np.asarray(w) for w in (layer.query_kernel, layer.key_kernel, layer.value_kernel)),
        wres, use_scale,
    )
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


def test_layers_stack():
    x = np.random.default_rng(1).normal(size=(2, 4, 5)).astype("float32")
    h = FieldSelfAttention(num_heads=2, attention_dim=3)(x)
    assert FieldSelfAttention(num_heads=2, attention_dim=3)(h).shape == (2, 4, 6)


def test_config_and_keras_round_trip(tmp_path):
    layer = FieldSelfAttention(num_heads=2, attention_dim=4)
    assert_config_round_trip(layer)
    inputs = keras.Input((3, 5))
    model = keras.Model(inputs, layer(inputs))
    x = np.random.default_rng(2).normal(size=(2, 3, 5)).astype("float32")
    assert_keras_round_trip(model, x, tmp_path)
