"""A dataset's declared features: the one schema the writer, reader, models and serving use.

A dataset directory declares its features in ``metadata.json`` under ``"schema"``
(``schema_version`` 3)::

    {"static": [{"name": "user_id", "kind": "categorical", "vocabulary": "user"},
                {"name": "hour", "kind": "categorical"},
                {"name": "price", "kind": "numeric", "mean": 83.1, "std": 41.7}],
     "sequence": [{"name": "hist_item_id", "static": "item_id"}, ...]}

* A **categorical** static field holds dense int64 ids of its vocabulary (its own, named
  after the field, or one it shares with other fields, e.g. ``item``); row 0 is padding,
  row 1 out-of-vocabulary (``mdaf_tf.data.schema``).
* A **numeric** static field holds the raw float32 value; NaN means missing. The models
  standardise it with the training split's ``mean`` and ``std`` inside their graph, so a
  served model takes the raw value.
* A **sequence** field is a fixed-length ``(max_seq_len,)`` history of ids aligned by
  position with the other sequence fields (most recent last, left-padded with 0). It
  shares the vocabulary and embedding table of the categorical static field ``static``;
  a behaviour token is the concatenation of its sequence fields' embeddings and the target
  token the concatenation of the matching static fields' embeddings. A history-only field
  (``{"name": "hist_btag", "vocabulary": "btag"}``: a behaviour type, which the target has
  no value of) has its own vocabulary, and the target token holds a learned vector in its
  place. Position t is valid where the first sequence field is not padding.

Directories of schema version 2 declare nothing and have ``DEFAULT`` (user, item,
category; a history of item and category).
"""

from __future__ import annotations

import dataclasses

from mdaf_tf.data import schema

CATEGORICAL = "categorical"
NUMERIC = "numeric"
KINDS = (CATEGORICAL, NUMERIC)
# Features every record has besides the declared ones (never model inputs but hist_len).
RESERVED = (schema.LABEL, schema.HIST_LEN, schema.TIMESTAMP, schema.USER_KEY)


class SchemaError(ValueError):
    """A feature declaration that cannot be used; the message names the field."""


@dataclasses.dataclass(frozen=True)
class StaticField:
    """One per-example field: a categorical id or a numeric value (see the module docstring)."""

    name: str
    kind: str = CATEGORICAL
    vocabulary: str | None = None  # categorical: None = a vocabulary named after the field
    mean: float = 0.0  # numeric: the training split's mean and standard deviation
    std: float = 1.0

    @property
    def vocab(self) -> str | None:
        if self.kind != CATEGORICAL:
            return None
        return self.vocabulary or self.name


@dataclasses.dataclass(frozen=True)
class SequenceField:
    """One behaviour-history field: aligned with the categorical static field ``static``
    (sharing its vocabulary), or, with ``static`` None, a history-only field (e.g. the
    behaviour type) on its own ``vocabulary`` (default: the field's name)."""

    name: str
    static: str | None = None
    vocabulary: str | None = None


@dataclasses.dataclass(frozen=True)
class FeatureSchema:
    """The declared static and sequence fields of a dataset (see the module docstring)."""

    static: tuple[StaticField, ...]
    sequence: tuple[SequenceField, ...]

    def __post_init__(self):
        _check(self)

    @property
    def static_by_name(self) -> dict[str, StaticField]:
        return {f.name: f for f in self.static}

    @property
    def vocabularies(self) -> tuple[str, ...]:
        """Distinct vocabulary names, in declaration order (static fields' first)."""
        return tuple(dict.fromkeys([*(f.vocab for f in self.static if f.vocab),
                                    *(self.sequence_vocab(f) for f in self.sequence)]))

    def sequence_vocab(self, field: SequenceField) -> str:
        if field.static is None:
            return field.vocabulary or field.name
        return self.static_by_name[field.static].vocab

    def record_features(self) -> tuple[schema.Feature, ...]:
        """Every feature of a record: label, the declared fields, hist_len, timestamp and
        user_key (the default schema gives exactly ``schema.FEATURES``)."""
        static = tuple(
            schema.Feature(f.name, vocabulary=f.vocab,
                           dtype="int64" if f.kind == CATEGORICAL else "float32")
            for f in self.static)
        sequence = tuple(schema.Feature(f.name, sequence=True, vocabulary=self.sequence_vocab(f))
                         for f in self.sequence)
        by_name = schema.FEATURES_BY_NAME
        return ((by_name[schema.LABEL],) + static + sequence
                + tuple(by_name[n] for n in RESERVED[1:]))

    def model_inputs(self) -> tuple[schema.Feature, ...]:
        return tuple(f for f in self.record_features() if f.model_input)

    def to_dict(self) -> dict:
        def static(f):
            out = {"name": f.name, "kind": f.kind}
            if f.kind == CATEGORICAL:
                out["vocabulary"] = f.vocab
            else:
                out.update(mean=f.mean, std=f.std)
            return out

        def sequence(f):
            if f.static is None:
                return {"name": f.name, "vocabulary": self.sequence_vocab(f)}
            return {"name": f.name, "static": f.static}

        return {"static": [static(f) for f in self.static],
                "sequence": [sequence(f) for f in self.sequence]}

    @classmethod
    def from_dict(cls, declared: dict, where: str = "schema") -> FeatureSchema:
        """The schema a ``to_dict`` form declares; SchemaError naming ``where`` and the field."""
        try:
            static = tuple(_static_field(d, where) for d in declared["static"])
            sequence = tuple(_sequence_field(d, where) for d in declared.get("sequence", ()))
        except (KeyError, TypeError) as e:
            raise SchemaError(f"{where}: malformed feature declaration ({e!r})") from None
        try:
            return cls(static=static, sequence=sequence)
        except SchemaError as e:
            raise SchemaError(f"{where}: {e}") from None


def _sequence_field(declared: dict, where: str) -> SequenceField:
    unknown = set(declared) - {"name", "static", "vocabulary"}
    if unknown or ("static" in declared) == ("vocabulary" in declared):
        raise SchemaError(f"{where}: history field {declared.get('name')!r} needs exactly one "
                          "of 'static' and 'vocabulary'"
                          + (f" (unknown key(s) {sorted(unknown)})" if unknown else ""))
    static = declared.get("static")
    return SequenceField(name=str(declared["name"]),
                         static=None if static is None else str(static),
                         vocabulary=declared.get("vocabulary"))


def _static_field(declared: dict, where: str) -> StaticField:
    unknown = set(declared) - {"name", "kind", "vocabulary", "mean", "std"}
    if unknown:
        raise SchemaError(f"{where}: static field {declared.get('name')!r} has unknown "
                          f"key(s) {sorted(unknown)}")
    return StaticField(name=str(declared["name"]), kind=declared.get("kind", CATEGORICAL),
                       vocabulary=declared.get("vocabulary"),
                       mean=float(declared.get("mean", 0.0)), std=float(declared.get("std", 1.0)))


def _check(s: FeatureSchema) -> None:
    names = [f.name for f in s.static] + [f.name for f in s.sequence]
    for name in names:
        if not name or name in RESERVED or names.count(name) > 1:
            raise SchemaError(f"field name {name!r} is empty, reserved ({', '.join(RESERVED)}) "
                              "or declared twice")
    for f in s.static:
        if f.kind not in KINDS:
            raise SchemaError(f"static field '{f.name}': kind {f.kind!r} is not one of {KINDS}")
        if f.kind == NUMERIC and not f.std > 0:
            raise SchemaError(f"numeric field '{f.name}': std must be > 0, got {f.std}")
    if not s.static:
        raise SchemaError("no static field declared")
    categorical = {f.name for f in s.static if f.kind == CATEGORICAL}
    for f in s.sequence:
        if f.static is not None and f.static not in categorical:
            raise SchemaError(f"history field '{f.name}' has no matching categorical static "
                              f"field '{f.static}'")
    if not s.sequence:
        raise SchemaError("no sequence (history) field declared")


DEFAULT = FeatureSchema(
    static=(StaticField(schema.USER_ID, vocabulary=schema.USER_VOCAB),
            StaticField(schema.ITEM_ID, vocabulary=schema.ITEM_VOCAB),
            StaticField(schema.CATE_ID, vocabulary=schema.CATE_VOCAB)),
    sequence=(SequenceField(schema.HIST_ITEM_ID, schema.ITEM_ID),
              SequenceField(schema.HIST_CATE_ID, schema.CATE_ID)),
)


def from_config(features: dict | None) -> FeatureSchema:
    """A model config's ``features`` as a schema (None: ``DEFAULT``)."""
    return DEFAULT if features is None else FeatureSchema.from_dict(features, "features")


def from_metadata(meta: dict, where: str = "metadata.json") -> FeatureSchema:
    """A dataset's schema: its declaration (version 3) or ``DEFAULT`` (version 2)."""
    declared = meta.get("schema")
    return DEFAULT if declared is None else FeatureSchema.from_dict(declared, where)
