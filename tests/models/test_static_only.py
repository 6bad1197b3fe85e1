import numpy as np

from mdaf_tf.data import schema
from mdaf_tf.models import build_model, count_parameters
from mdaf_tf.models.static_only import StaticOnly
from tests.models.conftest import random_batch, tiny_config
from tests.models.model_checks import assert_keras_round_trip, predict


def test_equals_mdaf_with_the_fusion_weight_fixed_on_the_static_branch():
    config = tiny_config(scan="auto", fusion="fixed", fixed_gate_weight=1.0)
    mdaf = build_model("mdaf", config)
    static = build_model("dcnv3", config)
    for layer in static.layers:
        if layer.weights:
            layer.set_weights(mdaf.get_layer(layer.name).get_weights())
    batch = random_batch(config, 8, seed=11)
    np.testing.assert_allclose(predict(static, batch)["probability"],
                               predict(mdaf, batch)["probability"], rtol=1e-5, atol=1e-6)


def test_parameters_are_mdafs_static_part(config):
    mdaf = count_parameters(build_model("mdaf_fixed", config))  # no gate weights
    static = count_parameters(build_model("dcnv3", config))
    assert static["static branch"] == mdaf["static branch"]
    assert static["embeddings"] == mdaf["embeddings"]
    assert static["output"] == mdaf["gate + output"]


def test_history_is_not_used(config):
    model = build_model("dcnv3", config)
    batch = random_batch(config, 6, seed=12)
    other = dict(batch, **{k: np.zeros_like(batch[k])
                           for k in (schema.HIST_ITEM_ID, schema.HIST_CATE_ID)})
    np.testing.assert_array_equal(predict(model, batch)["probability"],
                                  predict(model, other)["probability"])


def test_keras_round_trip(tmp_path, config):
    model = build_model("dcnv3", config)
    assert_keras_round_trip(model, StaticOnly, random_batch(config, 5, seed=1), tmp_path)
