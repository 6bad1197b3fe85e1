"""The declared feature schema: validation, the default and the metadata round trip."""

import pytest

from mdaf_tf.data import feature_schema, schema
from mdaf_tf.data.feature_schema import (
    DEFAULT,
    FeatureSchema,
    SchemaError,
    SequenceField,
    StaticField,
)

DECLARED = {
    "static": [
        {"name": "user_id", "kind": "categorical", "vocabulary": "user"},
        {"name": "item_id", "kind": "categorical", "vocabulary": "item"},
        {"name": "cate_id", "kind": "categorical", "vocabulary": "cate"},
        {"name": "brand", "kind": "categorical", "vocabulary": "brand"},
        {"name": "price", "kind": "numeric", "mean": 12.5, "std": 3.0},
    ],
    "sequence": [{"name": "hist_item_id", "static": "item_id"},
                 {"name": "hist_brand", "static": "brand"}],
}


def test_the_default_declares_exactly_todays_three_fields_and_records():
    assert DEFAULT.record_features() == schema.FEATURES
    assert DEFAULT.vocabularies == schema.VOCABULARIES
    assert feature_schema.from_metadata({"schema_version": 2}) is DEFAULT
    assert feature_schema.from_config(None) is DEFAULT


def test_a_declaration_round_trips_and_derives_records_and_inputs():
    s = FeatureSchema.from_dict(DECLARED)
    assert FeatureSchema.from_dict(s.to_dict()) == s and s.to_dict() == DECLARED
    assert s.vocabularies == ("user", "item", "cate", "brand")
    by_name = {f.name: f for f in s.record_features()}
    assert by_name["price"].dtype == "float32" and by_name["price"].vocabulary is None
    assert by_name["hist_brand"].sequence and by_name["hist_brand"].vocabulary == "brand"
    assert [f.name for f in s.record_features()] == [
        "label", "user_id", "item_id", "cate_id", "brand", "price", "hist_item_id",
        "hist_brand", "hist_len", "timestamp", "user_key"]
    assert [f.name for f in s.model_inputs()] == [
        "user_id", "item_id", "cate_id", "brand", "price", "hist_item_id", "hist_brand",
        "hist_len"]


def _with(**changes):
    d = {"static": [dict(f) for f in DECLARED["static"]],
         "sequence": [dict(f) for f in DECLARED["sequence"]]}
    for key, value in changes.items():
        d[key] = value(d[key])
    return d


@pytest.mark.parametrize("declared,message", [
    (_with(static=lambda s: s + [{"name": "brand"}]), "'brand' is empty, reserved"),
    (_with(static=lambda s: s + [{"name": "label"}]), "'label' is empty, reserved"),
    (_with(static=lambda s: s + [{"name": "x", "kind": "text"}]), "kind 'text'"),
    (_with(static=lambda s: s + [{"name": "x", "kind": "numeric", "std": 0}]),
     "numeric field 'x': std must be > 0"),
    (_with(sequence=lambda q: q + [{"name": "hist_price", "static": "price"}]),
     "history field 'hist_price' has no matching categorical static field 'price'"),
    (_with(sequence=lambda q: q + [{"name": "hist_shop", "static": "shop"}]),
     "history field 'hist_shop' has no matching"),
    (_with(sequence=lambda q: []), "no sequence (history) field declared"),
    (_with(static=lambda s: s + [{"name": "x", "colour": "red"}]), "unknown key(s) ['colour']"),
    (_with(sequence=lambda q: q + [{"name": "hist_x"}]), "needs exactly one of 'static' and"),
    (_with(sequence=lambda q: q + [{"name": "hist_x", "static": "brand", "vocabulary": "x"}]),
     "needs exactly one of 'static' and"),
    ({"sequence": []}, "malformed feature declaration"),
])
def test_bad_declarations_are_one_line_errors_naming_the_field(declared, message):
    with pytest.raises(SchemaError) as info:
        FeatureSchema.from_dict(declared, "data/metadata.json")
    text = str(info.value)
    assert text.startswith("data/metadata.json: ") and message in text and "\n" not in text


def test_a_history_only_field_declares_its_own_vocabulary():
    declared = _with(sequence=lambda q: q + [{"name": "hist_btag", "vocabulary": "btag"}])
    s = FeatureSchema.from_dict(declared)
    assert FeatureSchema.from_dict(s.to_dict()) == s and s.to_dict() == declared
    assert s.vocabularies == ("user", "item", "cate", "brand", "btag")
    assert {f.name: f.vocabulary for f in s.record_features()}["hist_btag"] == "btag"


def test_fields_are_frozen_values():
    field = StaticField("brand")
    assert field.vocab == "brand" and StaticField("p", kind="numeric").vocab is None
    with pytest.raises(AttributeError):
        field.name = "other"
    assert SequenceField("hist_brand", "brand") == SequenceField("hist_brand", "brand")
