"""Evaluation: how a model's scores on a split are computed and checked.

``predictions`` (one in-order prediction pass over a split: AUC, gAUC, log loss, calibration
and gate statistics from it), ``calibration`` (expected calibration error, the reliability
table), ``exact`` (``ExactEvaluation``, the Keras callback that writes the exact validation
figures into ``fit``'s logs every epoch) and ``serving_check.py`` (an export run the way TF
Serving runs it, as a script in a process without mdaf_tf). ``python -m mdaf_tf.evaluate``
drives them on an export; the trainer on a model being trained.
"""
