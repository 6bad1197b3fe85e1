"""The comparison of models over seeds behind ``python -m mdaf_tf.compare``."""
