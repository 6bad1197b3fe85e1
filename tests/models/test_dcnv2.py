import keras
import numpy as np
import pytest

from mdaf_tf.config import ConfigError
from mdaf_tf.models import build_model, count_parameters
from mdaf_tf.models.dcnv2 import DCNv2
from tests.models.conftest import random_batch, tiny_config
from tests.models.model_checks import (
    assert_keras_round_trip,
    dense,
    mlp,
    predict,
    sigmoid,
    static_x0,
)


def _cross_weight(layer) -> tuple[np.ndarray, np.ndarray]:
    """W (as x @ W) and b of a keras-rs FeatureCross: full, or U V for the low-rank form."""
    w = np.asarray(layer.dense.kernel)
    if layer.projection_dim is not None:
        w = np.asarray(layer.down_proj_dense.kernel) @ w
    return w, np.asarray(layer.dense.bias)


def _cross(x0, x, layer):
    w, b = _cross_weight(layer)
    return x0 * (x @ w + b) + x


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _numpy_dcnv2(model, config, batch):
    x0 = static_x0(model, batch)
    x = x0
    for i in range(config.dcnv2_layers):
        if config.dcnv2_num_experts == 1:
            x = _cross(x0, x, model.get_layer(f"cross_{i}"))
            continue
        gate = _softmax(dense(model.get_layer(f"cross_{i}_gate"), x))
        experts = [
            _cross(x0, x, model.get_layer(f"cross_{i}_expert_{k}")) - x
            for k in range(config.dcnv2_num_experts)
        ]
        x = x + sum(gate[:, k : k + 1] * e for k, e in enumerate(experts))
    deep = mlp(model.get_layer("deep_mlp"), x0)
    return sigmoid(dense(model.get_layer("output_logit"), np.concatenate([x, deep], -1)))


@pytest.mark.parametrize(
    "overrides",
    [{}, {"dcnv2_low_rank": 5}, {"dcnv2_low_rank": 4, "dcnv2_num_experts": 3}],
    ids=["full-rank", "low-rank", "mixture"],
)
def test_forward_matches_numpy_cross_network(overrides):
    config = tiny_config("dcnv2", **overrides)
    model = build_model("dcnv2", config)
    # Non-zero biases so that b takes part in the check.
    for layer in model.layers:
        if layer.name.startswith("cross_") and hasattr(layer, "dense"):
            layer.dense.bias.assign(np.linspace(-0.5, 0.5, layer.dense.bias.shape[0]))
    batch = random_batch(config, 6, seed=5)
    np.testing.assert_allclose(
        predict(model, batch)["probability"], _numpy_dcnv2(model, config, batch),
        rtol=1e-5, atol=1e-6,
    )


def test_low_rank_cross_has_rank_r_weights():
    full = count_parameters(build_model("dcnv2", tiny_config("dcnv2")))
    low = count_parameters(build_model("dcnv2", tiny_config("dcnv2", dcnv2_low_rank=4)))
    d = 10 + 8 + 4  # user + item + category embedding widths of tiny_config
    assert full["cross network"] == 3 * (d * d + d)
    # U (d x r, no bias) and V (r x d) plus the bias b.
    assert low["cross network"] == 3 * (d * 4 + 4 * d + d)


def test_bad_mixture_config_is_rejected():
    with pytest.raises(ConfigError, match="dcnv2_low_rank"):
        build_model("dcnv2", tiny_config("dcnv2", dcnv2_num_experts=2))


@pytest.mark.parametrize("overrides", [{}, {"dcnv2_low_rank": 4, "dcnv2_num_experts": 2}])
def test_keras_round_trip(tmp_path, overrides):
    config = tiny_config("dcnv2", **overrides)
    model = build_model("dcnv2", config)
    restored = assert_keras_round_trip(model, DCNv2, random_batch(config, 5, seed=1), tmp_path)
    assert isinstance(restored, keras.Model)
