import numpy as np
import pytest

from mdaf_tf.data import schema
from mdaf_tf.models import build_model, count_parameters
from mdaf_tf.models.autoint import AutoInt
from tests.models.conftest import random_batch, tiny_config
from tests.models.model_checks import (
    assert_keras_round_trip,
    dense,
    mlp,
    predict,
    relu,
    sigmoid,
    static_x0,
    tables,
)


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _interacting(layer, x):
    """AutoInt's interacting layer written out per head (unscaled dot product, residual)."""
    q, k, v, r = (np.asarray(w) for w in (layer.query_kernel, layer.key_kernel,
                                          layer.value_kernel, layer.residual_kernel))
    heads = []
    for h in range(q.shape[1]):
        qh, kh, vh = x @ q[:, h], x @ k[:, h], x @ v[:, h]  # (B, F, a)
        attn = _softmax(qh @ np.swapaxes(kh, 1, 2))
        heads.append(attn @ vh + x @ r[:, h])
    return relu(np.concatenate(heads, axis=-1))


def test_forward_matches_numpy_autoint_plus():
    config = tiny_config("autoint", autoint_layers=2, autoint_heads=2, autoint_attention_dim=6)
    model = build_model("autoint", config)
    batch = random_batch(config, 7, seed=3)
    t = tables(model)
    fields = [
        t[key][batch[ids]] @ np.asarray(model.get_layer(f"{ids}_field").kernel)
        for key, ids in (("user", schema.USER_ID), ("item", schema.ITEM_ID),
                         ("cate", schema.CATE_ID))
    ]
    x = np.stack(fields, axis=1)  # (B, 3, a)
    for i in range(config.autoint_layers):
        x = _interacting(model.get_layer(f"interacting_{i}"), x)
    assert x.shape == (7, 3, 12)
    logit = dense(model.get_layer("attention_logit"), x.reshape(7, -1))
    logit = logit + mlp(model.get_layer("deep_mlp"), static_x0(model, batch))
    np.testing.assert_allclose(predict(model, batch)["probability"], sigmoid(logit),
                               rtol=1e-5, atol=1e-6)


def test_history_is_not_used(config):
    model = build_model("autoint", config)
    batch = random_batch(config, 6, seed=4)
    other = dict(batch, **{k: np.flip(batch[k], axis=0).copy()
                           for k in (schema.HIST_ITEM_ID, schema.HIST_CATE_ID)})
    np.testing.assert_array_equal(predict(model, batch)["probability"],
                                  predict(model, other)["probability"])


def test_parameter_components_add_up(config):
    model = build_model("autoint", config)
    counts = count_parameters(model)
    assert "other" not in counts and counts["total"] == model.count_params()
    a, h = config.autoint_attention_dim, config.autoint_heads
    # Layer 0 reads width a, later layers width h * a; 4 kernels (Q, K, V, residual) each.
    attention = 4 * a * h * a + 2 * 4 * (h * a) * h * a + (3 * h * a + 1)
    assert counts["interacting layers"] == attention


def test_keras_round_trip(tmp_path, config):
    model = build_model("autoint", config)
    assert_keras_round_trip(model, AutoInt, random_batch(config, 5, seed=1), tmp_path)


@pytest.fixture
def config():
    return tiny_config("autoint")
