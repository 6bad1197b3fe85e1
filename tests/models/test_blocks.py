import numpy as np
import pytest

from mdaf_tf.config import ConfigError
from mdaf_tf.models import build_model
from tests.models.conftest import tiny_config


def embedding_weights(model):
    return [np.asarray(w) for w in model.get_layer("feature_embedding").weights]


@pytest.mark.parametrize("name", ["dnn", "mdaf_match"])
def test_embedding_l2_adds_lambda_times_the_tables_sum_of_squares_to_the_loss(name):
    model = build_model(name, tiny_config(name, embedding_l2=0.01))
    expected = 0.01 * sum(float((w.astype(np.float64) ** 2).sum())
                          for w in embedding_weights(model))
    assert expected > 0
    np.testing.assert_allclose(sum(float(loss) for loss in model.losses), expected, rtol=1e-5)


def test_no_embedding_l2_adds_no_loss():
    assert build_model("dnn", tiny_config("dnn")).losses == []


def test_a_negative_embedding_l2_is_an_error_naming_the_field():
    with pytest.raises(ConfigError, match="embedding_l2"):
        build_model("dnn", tiny_config("dnn", embedding_l2=-1e-3))
