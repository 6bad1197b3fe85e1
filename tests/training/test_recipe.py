"""The size rule (``mdaf_tf.training.recipe``) against hand-computed values."""

import json

import pytest

from mdaf_tf.config import ConfigError, TrainConfig, check_positive
from mdaf_tf.training import config_file, recipe
from mdaf_tf.training.optimizer import build_optimizer


@pytest.mark.parametrize("examples, batch", [
    (100, 256), (25_200, 256), (147_000, 256), (255_999, 256), (256_000, 512),
    (511_999, 512), (512_000, 1024), (1_023_999, 1024), (1_024_000, 2048),
    (1_052_081, 2048), (25_000_000, 2048)])
def test_batch_size_leaves_500_steps_an_epoch_between_256_and_2048(examples, batch):
    assert recipe.batch_size_for(examples) == batch


@pytest.mark.parametrize("batch, rate", [
    # Three halvings of the batch (2048 -> 256) multiply the rate by 10 / 3, so each one by
    # (10 / 3) ** (1 / 3); clipped outside [256, 2048].
    (2048, 3e-4), (1024, 3e-4 * (10 / 3) ** (1 / 3)), (512, 3e-4 * (10 / 3) ** (2 / 3)),
    (256, 1e-3), (64, 1e-3), (8192, 3e-4)])
def test_learning_rate_is_log_linear_between_the_two_anchors(batch, rate):
    assert recipe.learning_rate_for(batch) == pytest.approx(rate, rel=1e-12)


def test_the_seed_recipe_on_a_thesis_sized_split():
    resolved, chose = recipe.resolve(TrainConfig(), 1_052_081)
    assert (resolved.batch_size, resolved.learning_rate, resolved.warmup_epochs) == (
        2048, 3e-4, 2.0)
    assert chose["chose"] == {"batch_size": 2048, "learning_rate": 3e-4, "warmup_epochs": 2.0}
    assert chose["train_examples"] == 1_052_081


def test_given_fields_are_kept_and_the_rate_follows_the_given_batch():
    given = TrainConfig(epochs=5, batch_size=1024, warmup_epochs=0.5)
    resolved, chose = recipe.resolve(given, 147_000)
    assert resolved.batch_size == 1024 and resolved.warmup_epochs == 0.5
    assert resolved.learning_rate == pytest.approx(3e-4 * (10 / 3) ** (1 / 3), rel=1e-5)
    assert chose["chose"] == {"learning_rate": resolved.learning_rate}
    everything = TrainConfig(batch_size=64, learning_rate=0.1, warmup_epochs=0.0)
    assert recipe.resolve(everything, 10)[0] == everything


def test_the_optimizer_schedule_uses_the_rule_where_the_config_leaves_it():
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    optimizer = build_optimizer(TrainConfig(epochs=5, batch_size=256), model, steps_per_epoch=100)
    schedule = optimizer._learning_rate  # the WarmupCosineDecay it was given
    assert schedule.peak_learning_rate == pytest.approx(1e-3)
    assert schedule.warmup_steps == 100 and schedule.total_steps == 500
    with pytest.raises(ValueError, match="batch_size is unset"):
        build_optimizer(TrainConfig(), model, steps_per_epoch=100)


def test_unset_fields_round_trip_through_a_config_file_as_null(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"train": {"batch_size": None, "learning_rate": 0.01}}))
    _, train = config_file.load(path)
    assert train.batch_size is None and train.learning_rate == 0.01
    path.write_text(json.dumps({"train": {"learning_rate": "fast"}}))
    with pytest.raises(ConfigError, match="'learning_rate' must be a number"):
        config_file.load(path)


def test_check_positive_skips_unset_fields_and_names_the_flag():
    check_positive(TrainConfig(), ("epochs", "batch_size"))
    with pytest.raises(ConfigError, match="^--batch-size must be >= 1, got 0$"):
        check_positive(TrainConfig(batch_size=0), ("epochs", "batch_size"), as_flags=True)


def test_the_synthetic_default_gets_the_values_its_figures_were_measured_with():
    # Its 25,200 training examples and 5 epochs: batch 256 and 1 warmup epoch from the rule,
    # lr 3e-3 from the preset: what README's main-command figures were measured with.
    from mdaf_tf.data import source as data_source

    preset = TrainConfig(**data_source.SYNTHETIC_DEFAULT_TRAIN)
    resolved, _ = recipe.resolve(preset, 25_200)
    assert (resolved.epochs, resolved.batch_size, resolved.learning_rate,
            resolved.warmup_epochs) == (5, 256, 3e-3, 1.0)
