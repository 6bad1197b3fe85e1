import numpy as np

from mdaf_tf.data import schema
from mdaf_tf.models import build_model
from mdaf_tf.models.sequence_only import SequenceOnly
from tests.models.conftest import random_batch, tiny_config
from tests.models.model_checks import assert_keras_round_trip, predict


def test_equals_mdaf_with_the_fusion_weight_fixed_on_the_sequence_branch():
    config = tiny_config(scan="auto", fusion="fixed", fixed_gate_weight=0.0)
    mdaf = build_model("mdaf", config)
    sequence = build_model("mdaf_seq", config)
    for layer in sequence.layers:
        if layer.weights:
            layer.set_weights(mdaf.get_layer(layer.name).get_weights())
    batch = random_batch(config, 8, seed=13)
    np.testing.assert_allclose(predict(sequence, batch)["probability"],
                               predict(mdaf, batch)["probability"], rtol=1e-5, atol=1e-6)


def test_user_and_target_are_not_used():
    config = tiny_config(scan="auto")
    model = build_model("mdaf_seq", config)
    batch = random_batch(config, 6, seed=14)
    other = dict(batch)
    for key in (schema.USER_ID, schema.ITEM_ID, schema.CATE_ID):
        other[key] = np.flip(batch[key]).copy()
    np.testing.assert_array_equal(predict(model, batch)["probability"],
                                  predict(model, other)["probability"])


def test_keras_round_trip(tmp_path):
    config = tiny_config(scan="auto")
    model = build_model("mdaf_seq", config)
    assert_keras_round_trip(model, SequenceOnly, random_batch(config, 5, seed=1), tmp_path)
