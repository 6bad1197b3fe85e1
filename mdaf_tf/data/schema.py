"""The record layout shared by the writer, the reader, the models and serving.

A dataset's features are declared in its metadata (``mdaf_tf.data.feature_schema``); this
module holds the ids' conventions, the features every record has, and the default
declaration's features (a dataset of schema version 2 has exactly these), all int64:

==================  =====================  ==========================================
name                shape                  meaning
==================  =====================  ==========================================
``label``           ()                     1 = click / positive behaviour, 0 = negative
``user_id``         ()                     dense user index
``item_id``         ()                     dense target item index
``cate_id``         ()                     dense target category index
``hist_item_id``    (max_seq_len,)         behaviour items, most recent last, left-padded
``hist_cate_id``    (max_seq_len,)         behaviour categories, aligned with items
``hist_len``        ()                     number of valid (non-padding) behaviours
``timestamp``       ()                     Unix seconds of the target event
``user_key``        ()                     the user's raw id (for string ids, its index in
                                           the dataset's sorted distinct ids); unlike
                                           ``user_id`` it stays distinct for users outside
                                           the vocabulary, so per-user metrics (gAUC)
                                           group by it
==================  =====================  ==========================================

Splits: ``train``, ``val`` and ``test``, by time (``SPLITS``).

Dense ids: ``PAD_ID`` (0) is padding, ``OOV_ID`` (1) is out-of-vocabulary, real ids
start at ``FIRST_ID`` (2). Vocabularies are built from the training split only.
"""

from __future__ import annotations

import dataclasses

SCHEMA_VERSION = 3
# version 3 declares its features in metadata.json ("schema", mdaf_tf.data.feature_schema);
# version 2 declared none and has the default ones listed above; version 1 had no test
# split and no user_key, and such directories must be rebuilt
READABLE_SCHEMA_VERSIONS = (2, 3)
SPLITS = ("train", "val", "test")
SPLIT_LABELS = {"train": "train", "val": "validation", "test": "test"}  # in reports
EVAL_SPLITS = ("val", "test")
DEFAULT_MAX_SEQ_LEN = 50

PAD_ID = 0
OOV_ID = 1
FIRST_ID = 2

LABEL = "label"
USER_ID = "user_id"
ITEM_ID = "item_id"
CATE_ID = "cate_id"
HIST_ITEM_ID = "hist_item_id"
HIST_CATE_ID = "hist_cate_id"
HIST_LEN = "hist_len"
TIMESTAMP = "timestamp"
USER_KEY = "user_key"

# Vocabulary names; the item and category vocabularies serve target and history alike.
USER_VOCAB = "user"
ITEM_VOCAB = "item"
CATE_VOCAB = "cate"
VOCABULARIES = (USER_VOCAB, ITEM_VOCAB, CATE_VOCAB)


@dataclasses.dataclass(frozen=True)
class Feature:
    """One feature of the example (int64, or float32 for numeric fields).

    Attributes:
        name: feature key in the ``tf.train.Example`` and in the model's input dict.
        sequence: True for the fixed-length ``(max_seq_len,)`` history features.
        vocabulary: the vocabulary that maps raw ids to this feature's dense ids,
            or None for features that are not ids.
        model_input: whether the models consume this feature.
        dtype: ``"int64"`` or ``"float32"``.
    """

    name: str
    sequence: bool = False
    vocabulary: str | None = None
    model_input: bool = True
    dtype: str = "int64"

    def shape(self, max_seq_len: int) -> tuple[int, ...]:
        return (max_seq_len,) if self.sequence else ()


FEATURES: tuple[Feature, ...] = (
    Feature(LABEL, model_input=False),
    Feature(USER_ID, vocabulary=USER_VOCAB),
    Feature(ITEM_ID, vocabulary=ITEM_VOCAB),
    Feature(CATE_ID, vocabulary=CATE_VOCAB),
    Feature(HIST_ITEM_ID, sequence=True, vocabulary=ITEM_VOCAB),
    Feature(HIST_CATE_ID, sequence=True, vocabulary=CATE_VOCAB),
    Feature(HIST_LEN),
    Feature(TIMESTAMP, model_input=False),
    Feature(USER_KEY, model_input=False),
)
FEATURES_BY_NAME = {f.name: f for f in FEATURES}
FEATURE_NAMES = tuple(f.name for f in FEATURES)
MODEL_INPUTS = tuple(f for f in FEATURES if f.model_input)
MODEL_INPUT_NAMES = tuple(f.name for f in MODEL_INPUTS)
ID_FEATURES = tuple(f for f in FEATURES if f.vocabulary is not None)


def parse_spec(max_seq_len: int = DEFAULT_MAX_SEQ_LEN, features=FEATURES) -> dict:
    """``tf.io.parse_example`` spec of ``features`` (a record's, ``FeatureSchema.
    record_features()``): fixed-length features, static shapes for XLA."""
    import tensorflow as tf

    return {f.name: tf.io.FixedLenFeature(f.shape(max_seq_len), tf.as_dtype(f.dtype))
            for f in features}


def model_input_specs(max_seq_len: int = DEFAULT_MAX_SEQ_LEN, batch_size=None,
                      features=FEATURES) -> dict:
    """``tf.TensorSpec`` per model input among ``features``, keyed by feature name."""
    import tensorflow as tf

    return {
        f.name: tf.TensorSpec((batch_size, *f.shape(max_seq_len)), tf.as_dtype(f.dtype),
                              name=f.name)
        for f in features if f.model_input
    }


def keras_inputs(max_seq_len: int = DEFAULT_MAX_SEQ_LEN, features=FEATURES) -> dict:
    """Symbolic ``keras.Input`` per model input among ``features``, keyed by feature name."""
    import keras

    return {
        f.name: keras.Input(shape=f.shape(max_seq_len), dtype=f.dtype, name=f.name)
        for f in features if f.model_input
    }
