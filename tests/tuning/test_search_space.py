import math

import keras_tuner as kt
import pytest

from mdaf_tf.config import ConfigError, TrainConfig
from mdaf_tf.models import make_config
from mdaf_tf.tuning import search_space
from mdaf_tf.tuning.hypermodel import RegularisationHyperModel


def test_default_space_is_the_seed_study_without_learning_rate():
    space = search_space.build_space({}, tune_learning_rate=False)
    assert {k: (b.low, b.high, b.log) for k, b in space.items()} == {
        "dropout": (0.1, 0.4, False),
        "weight_decay": (1e-5, 1e-4, True),
        "label_smoothing": (0.0, 0.1, False),
    }


def test_learning_rate_bounds_imply_tuning_it():
    space = search_space.build_space({"learning_rate": "2e-4,5e-3"}, tune_learning_rate=False)
    assert (space["learning_rate"].low, space["learning_rate"].high) == (2e-4, 5e-3)
    assert space["learning_rate"].log


def test_embedding_l2_is_searched_only_when_asked_for():
    asked = search_space.build_space({}, tune_embedding_l2=True)["embedding_l2"]
    assert (asked.low, asked.high, asked.log) == (1e-5, 1e-3, True)
    given = search_space.build_space({"embedding_l2": "1e-4,3e-4"})["embedding_l2"]
    assert (given.low, given.high, given.log) == (1e-4, 3e-4, True)
    assert "learning_rate" not in search_space.build_space({"embedding_l2": "1e-4,3e-4"})


@pytest.mark.parametrize(
    "name, text, words",
    [("dropout", "0.4,0.1", "wrong order"), ("dropout", "0.2,0.2", "wrong order"),
     ("dropout", "0.1", "two numbers"), ("dropout", "a,b", "two numbers"),
     ("dropout", "0.1,1.5", "must lie in"), ("weight_decay", "0,1e-4", "log scale"),
     ("label_smoothing", "-0.1,0.1", "must lie in"), ("embedding_l2", "0,1e-3", "log scale"),
     ("embedding_l2", "1e-4,2", "must lie in")],
)
def test_bad_bounds_name_the_flag(name, text, words):
    with pytest.raises(ConfigError) as info:
        search_space.parse_bounds(name, text)
    message = str(info.value)
    assert message.startswith("--" + name.replace("_", "-")) and words in message


def test_hypermodel_samples_within_bounds_and_sets_config_fields():
    space = search_space.build_space({"dropout": "0.2,0.3"}, tune_learning_rate=True,
                                     tune_embedding_l2=True)
    base_model, base_train = make_config("mdaf", {"hidden_dim": 16}), TrainConfig(epochs=2)
    hypermodel = RegularisationHyperModel(base_model, base_train, space)
    hp = kt.HyperParameters()
    hypermodel.build(hp)  # declares the space
    for name, bounds in space.items():
        declared = hp._hps[name][0]
        assert (declared.min_value, declared.max_value) == (bounds.low, bounds.high)
        assert declared.sampling == ("log" if bounds.log else "linear")
    values = {"dropout": 0.21, "weight_decay": 2e-5, "label_smoothing": 0.07,
              "learning_rate": 4e-4, "embedding_l2": 3e-4}
    model_config, train_config = hypermodel.configs(values)
    assert model_config.dropout == 0.21 and model_config.hidden_dim == 16
    assert model_config.embedding_l2 == 3e-4
    assert (train_config.weight_decay, train_config.label_smoothing,
            train_config.learning_rate, train_config.epochs) == (2e-5, 0.07, 4e-4, 2)


def test_random_samples_cover_the_log_range():
    space = search_space.build_space({}, tune_learning_rate=False)
    hypermodel = RegularisationHyperModel(make_config("mdaf"), TrainConfig(), space)
    hp = kt.HyperParameters()
    hypermodel.build(hp)
    decays = [hp.space[1].random_sample(seed) for seed in range(400)]
    assert all(1e-5 <= d <= 1e-4 for d in decays)
    # Log-uniform: about half the samples fall below the geometric mean.
    below = sum(d < math.sqrt(1e-5 * 1e-4) for d in decays) / len(decays)
    assert 0.4 < below < 0.6
