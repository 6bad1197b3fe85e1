"""``ClickTrainer``: the ``keras.Model`` that ``fit`` trains, around a click model.

The click models return a dict (``logit``, ``probability`` and, for MDAF, ``gate``); Keras's
compiled loss wants one tensor. ``ClickTrainer`` returns the logit, so the loss is the
numerically stable ``BinaryCrossentropy(from_logits=True)``, and shares every variable with
the click model, which is what is exported and evaluated.

It changes two things in Keras's ``train_step``, both only when they apply:

* **global clip-norm across replicas**: Keras 3 clips each replica's gradients before it sums
  them, so ``clipnorm`` would depend on the replica count. Under a multi-replica strategy the
  replicas' gradients of their local mean loss are averaged here (the gradient of the global
  batch's mean), clipped by their global norm and divided by the replica count before the
  optimizer (whose own clipping is off) sums the identical copies again. Keras 3.15's
  ``compute_loss`` returns the local mean unscaled, and its own ``train_step`` multiplies the
  tracked loss by the replica count, logging twice the loss under two replicas; the tracked loss
  here is the local mean, aggregated over replicas by the tracker. Under loss scaling
  (``LossScaleOptimizer``, float16) the gradients are of the scaled loss and the clip-norm is
  scaled with them. Variables without a gradient
  (an embedding table a model never reads) are left out rather than all-reduced as ``None``.
* **several workers**: under ``MultiWorkerMirroredStrategy`` the train function is a plain
  ``strategy.run`` of ``train_step`` (see ``_multi_worker_train_function``);
* **steps already trained** (``skip_steps``): a run resumed in the middle of an epoch reads and
  discards that many batches at the start of its first epoch without training on them, so
  the remaining batches, the step indices the callbacks see and the epoch boundaries are
  those of the uninterrupted run (``TrainingBackup`` sets it).

Example:

```python
import keras
from mdaf_tf.training import ClickTrainer

inputs = keras.Input((4,))
logit = keras.layers.Dense(1)(inputs)
click_model = keras.Model(inputs, {"logit": logit, "probability": keras.ops.sigmoid(logit)})
trainer = ClickTrainer(click_model)
trainer.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True))
trainer.fit(keras.random.normal((8, 4)), keras.ops.ones((8,)), epochs=1, verbose=0)
```
"""

from __future__ import annotations

import keras
import tensorflow as tf

from mdaf_tf.internal_apis import loss_tracker


@keras.saving.register_keras_serializable(package="mdaf_tf")
class ClickTrainer(keras.Model):
    """Trains ``click_model`` (a model with a ``"logit"`` output) through ``fit``.

    Args:
        click_model: the model to train; its variables are this model's variables.
        cross_replica_clipnorm: the global clip-norm applied after the cross-replica sum
            (0: none). Used only under a strategy with more than one replica, where the
            optimizer's own ``global_clipnorm`` must then be None.
    """

    def __init__(self, click_model: keras.Model, cross_replica_clipnorm: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.click_model = click_model
        self.cross_replica_clipnorm = float(cross_replica_clipnorm)
        self.skip_steps = 0
        self.last_step_skipped = False

    def call(self, features, training=False):
        return keras.ops.squeeze(self.click_model(features, training=training)["logit"], -1)

    def make_train_function(self, force=False):
        if self.train_function is not None and not force:
            return self.train_function
        super().make_train_function(force=force)
        step = self.train_function
        if isinstance(self.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
            step = self._multi_worker_train_function()

        def function(iterator):
            self.last_step_skipped = self.skip_steps > 0
            if not self.last_step_skipped:
                return step(iterator)
            self.skip_steps -= 1
            iterator.get_next()  # the batch the interrupted run trained on already
            return self.get_metrics_result()

        self.train_function = function
        return function

    def _multi_worker_train_function(self):
        """One ``strategy.run`` of ``train_step`` per call, returning the first local
        replica's logs. Keras 3.15's own train function reduces the per-replica logs with
        ``strategy.reduce("SUM", ...)``, which fails on scalars under
        ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585); the per-step logs only feed
        progress output, and ``fit``'s epoch logs read the metrics across replicas anyway."""
        strategy = self.distribute_strategy

        @tf.function
        def one_step(iterator):
            outputs = strategy.run(self.train_step, args=(next(iterator),))
            return {k: strategy.experimental_local_results(v)[0] for k, v in outputs.items()}

        return one_step

    def build_metrics(self) -> None:
        """Create the compiled metrics' variables (Keras creates them at the first update) by
        updating them with an empty batch, so a resumed run can restore them before its
        first step."""
        empty = tf.zeros((0,), "float32")
        self.compute_metrics(None, empty, empty)

    def train_step(self, data):
        if self.distribute_strategy.num_replicas_in_sync == 1:
            return super().train_step(data)
        features, labels = data
        with tf.GradientTape() as tape:
            logits = self(features, training=True)
            loss = self.compute_loss(x=features, y=labels, y_pred=logits, training=True)
            scaled_loss = self.optimizer.scale_loss(loss)
        loss_tracker(self).update_state(loss, sample_weight=tf.shape(labels)[0])
        pairs = [(g, v) for g, v in zip(tape.gradient(scaled_loss, self.trainable_variables),
                                        self.trainable_variables, strict=True)
                 if g is not None]
        self.optimizer.apply_gradients(self._cross_replica_clipped(pairs))
        return self.compute_metrics(features, labels, logits)

    def _cross_replica_clipped(self, pairs):
        replicas = self.distribute_strategy.num_replicas_in_sync
        # Embedding gradients arrive as IndexedSlices, whose all-reduce concatenates the
        # replicas' rows; the optimizer's update is dense anyway, so densify first.
        grads = [tf.convert_to_tensor(g) for g, _ in pairs]
        grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN, grads)
        if self.cross_replica_clipnorm > 0:
            # A LossScaleOptimizer unscales in apply_gradients; clipping the scaled gradients
            # at the scaled norm is clipping the true ones at the norm.
            scale = getattr(self.optimizer, "dynamic_scale", 1.0)
            grads, _ = tf.clip_by_global_norm(grads, self.cross_replica_clipnorm * scale)
        return [(g / replicas, v) for g, (_, v) in zip(grads, pairs, strict=True)]

    def get_config(self):
        return {
            **super().get_config(),
            "click_model": keras.saving.serialize_keras_object(self.click_model),
            "cross_replica_clipnorm": self.cross_replica_clipnorm,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["click_model"] = keras.saving.deserialize_keras_object(config["click_model"])
        return cls(**config)
