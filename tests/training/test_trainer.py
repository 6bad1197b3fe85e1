"""ClickTrainer and Keras's EarlyStopping driven through fit."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from mdaf_tf.training import ClickTrainer


def click_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3,), name="x")
    logit = keras.layers.Dense(1, name="head")(inputs)
    return keras.Model(inputs, {"logit": logit, "probability": keras.ops.sigmoid(logit)})


def batches(n=64, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype("float32")
    y = (x[:, 0] + 0.3 * rng.normal(size=n) > 0).astype("float32")
    return x, y


def test_loss_is_label_smoothed_cross_entropy_from_logits():
    trainer = ClickTrainer(click_model())
    trainer.compile(optimizer="sgd", loss=keras.losses.BinaryCrossentropy(
        from_logits=True, label_smoothing=0.1))
    x, y = batches(16)
    z = trainer(x).numpy()
    assert z.shape == (16,)
    target = y * 0.9 + 0.05
    expected = np.mean(np.maximum(z, 0) - z * target + np.log1p(np.exp(-np.abs(z))))
    got = float(trainer.compute_loss(x=x, y=tf.constant(y), y_pred=tf.constant(z)))
    assert got == pytest.approx(expected, rel=1e-5)


def test_early_stopping_through_fit_restores_the_best_epoch_of_a_scripted_sequence():
    script = [0.60, 0.70, 0.65, 0.68, 0.95, 0.99]
    weights_after = []

    class Scripted(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_auc"] = script[epoch]
            weights_after.append([w.copy() for w in self.model.get_weights()])

    trainer = ClickTrainer(click_model())
    trainer.compile(optimizer=keras.optimizers.SGD(0.1),
                    loss=keras.losses.BinaryCrossentropy(from_logits=True))
    stop = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=2,
                                         restore_best_weights=True)
    x, y = batches()
    history = trainer.fit(x, y, batch_size=16, epochs=len(script), verbose=0,
                          callbacks=[Scripted(), stop])
    # Best 0.70 at epoch 2; 0.65 and 0.68 do not beat it; stopped after epoch 4.
    assert len(history.history["loss"]) == 4 and stop.best_epoch == 1
    for got, want in zip(trainer.get_weights(), weights_after[1], strict=True):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(weights_after[1][0], weights_after[3][0])


def test_skipped_steps_read_their_batches_but_do_not_train():
    x, y = batches(64)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    reference = ClickTrainer(click_model())
    reference.compile(optimizer=keras.optimizers.SGD(0.1),
                      loss=keras.losses.BinaryCrossentropy(from_logits=True))
    reference.fit(dataset.skip(2), epochs=1, verbose=0, shuffle=False)
    resumed = ClickTrainer(click_model())
    resumed.compile(optimizer=keras.optimizers.SGD(0.1),
                    loss=keras.losses.BinaryCrossentropy(from_logits=True))
    resumed.build_metrics()
    resumed.skip_steps = 2
    resumed.fit(dataset, epochs=1, verbose=0, shuffle=False)
    assert resumed.skip_steps == 0
    assert int(resumed.optimizer.iterations.numpy()) == 2
    for got, want in zip(resumed.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_keras_round_trip(tmp_path):
    trainer = ClickTrainer(click_model(), cross_replica_clipnorm=1.0)
    x, _ = batches(8)
    before = trainer(x).numpy()
    trainer.save(tmp_path / "trainer.keras")
    loaded = keras.saving.load_model(tmp_path / "trainer.keras")
    assert isinstance(loaded, ClickTrainer) and loaded.cross_replica_clipnorm == 1.0
    np.testing.assert_allclose(loaded(x).numpy(), before, rtol=1e-6)
