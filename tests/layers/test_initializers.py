import keras
import numpy as np

from mdaf_tf.layers._initializers import fresh


def test_unseeded_clone_draws_anew_and_keeps_the_distribution():
    keras.utils.set_random_seed(0)
    shared = keras.initializers.RandomUniform(0.0, 1.0)
    first, again = np.asarray(shared((256,))), np.asarray(shared((256,)))
    np.testing.assert_array_equal(first, again)  # the Keras behaviour fresh() works around
    clone = fresh(shared)
    values = np.asarray(clone((256,)))
    assert not np.array_equal(values, first)
    assert values.min() >= 0.0 and values.max() < 1.0
    assert clone.get_config() == shared.get_config()


def test_seeded_clone_repeats_its_values_and_none_stays_none():
    seeded = keras.initializers.GlorotUniform(seed=7)
    np.testing.assert_array_equal(np.asarray(fresh(seeded)((4, 3))), np.asarray(seeded((4, 3))))
    assert fresh(None) is None
