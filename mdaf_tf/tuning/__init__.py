"""Hyperparameter search for ``python -m mdaf_tf.tune`` (Keras Tuner over the training runner)."""
