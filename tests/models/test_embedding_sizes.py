import dataclasses

import pytest
from declared_data import DECLARED, SIZES

from mdaf_tf.data import schema
from mdaf_tf.models import build_model, embedding_sizes
from mdaf_tf.models.config import ModelConfig
from mdaf_tf.models.embedding_sizes import width_cap, with_width_rule

# The many-users log of README: 3,500 users, 8,000 items, 60 categories (+ PAD and OOV rows).
MANY_USERS = ModelConfig(vocab_sizes={"user": 3502, "item": 8002, "cate": 62})


@pytest.mark.parametrize(("train_examples", "rows", "width"), [
    (147_000, 3502, 16),     # 42 examples a user: 21 -> 16
    (147_000, 8002, 8),      # 18.4 an item: 9.2 -> 8
    (147_000, 30002, 4),     # 4.9 an item: 2.5 -> the floor of 4
    (25_200, 202, 56),       # the synthetic default's items: 126 a row -> 63 -> 56
    (25_200, 102, 120),      # its users: 252 a row -> 126 -> 120
    (16_000, 1002, 8),       # 16 a row: exactly 8
    (0, 10, 4),              # no examples at all: the floor
])
def test_width_cap_is_half_the_examples_per_row_down_to_a_multiple_of_8(
        train_examples, rows, width):
    assert width_cap(train_examples, rows) == width


def test_width_cap_grows_with_the_data_in_steps_of_8_from_4():
    sizes = range(0, 3_000_000, 7_919)
    caps = [width_cap(n, 1002) for n in sizes]
    assert caps == sorted(caps)
    assert all(c == 4 or c % 8 == 0 for c in caps)
    # at least 2 training examples a row for each dimension it gets, beyond the floor
    assert all(c == 4 or n / 1000 >= 2 * c for n, c in zip(sizes, caps, strict=True))


def test_the_rule_narrows_rare_ids_and_keeps_the_seed_widths_of_frequent_ones():
    narrowed, chosen = with_width_rule(MANY_USERS, 147_000)
    # Users and items are seen 42 and 18 times: 16 and 8; a category 2,450 times: the seed's 32.
    assert (narrowed.embedding_dims["user"], narrowed.embedding_dims["item"],
            narrowed.embedding_dims["cate"]) == (16, 8, 32)
    assert chosen == {schema.USER_VOCAB: 16, schema.ITEM_VOCAB: 8, schema.CATE_VOCAB: 32}
    thesis_sized, _ = with_width_rule(MANY_USERS, 100_000_000)
    assert (thesis_sized.embedding_dims["user"], thesis_sized.embedding_dims["item"],
            thesis_sized.embedding_dims["cate"]) == (80, 64, 32)


def test_a_width_the_config_sets_is_kept_and_not_reported_as_chosen():
    config = dataclasses.replace(MANY_USERS, embedding_dims={"user": 80, "cate": 8})
    narrowed, chosen = with_width_rule(config, 147_000)
    assert narrowed.embedding_dims["user"] == 80 and narrowed.embedding_dims["item"] == 8
    assert embedding_sizes.embedding_dim(narrowed, schema.CATE_VOCAB, 62) == 8
    assert chosen == {schema.ITEM_VOCAB: 8}


def test_declared_vocabularies_get_the_smaller_of_the_fourth_root_rule_and_the_cap():
    config = ModelConfig(features=DECLARED, vocab_sizes={
        v: n + schema.FIRST_ID for v, n in SIZES.items()})
    few, chosen = with_width_rule(config, 0)
    assert set(chosen) == set(SIZES) and set(chosen.values()) == {4}
    many, chosen = with_width_rule(config, 10**9)
    for vocab, n in SIZES.items():
        base = embedding_sizes.SEED_WIDTHS.get(vocab)
        # 6 * V^(1/4) up to a multiple of 8 in [8, 64] for the declared vocabularies
        expected = base or min(64, max(8, -(-6 * (n + schema.FIRST_ID) ** 0.25 // 8) * 8))
        assert chosen[vocab] == expected, vocab
    _, _, dims = embedding_sizes.resolved(few)
    assert all(dims[v] == 4 for v in SIZES)


def test_a_model_built_from_the_narrowed_config_has_tables_of_those_widths():
    narrowed, _ = with_width_rule(MANY_USERS, 147_000)
    model = build_model("dnn", narrowed)
    shapes = {tuple(w.shape) for w in model.weights if len(w.shape) == 2}
    assert {(3502, 16), (8002, 8), (62, 32)} <= shapes


def test_a_config_that_leaves_widths_open_builds_the_seed_widths_without_data():
    model = build_model("dnn", MANY_USERS)
    shapes = {tuple(w.shape) for w in model.weights if len(w.shape) == 2}
    assert {(3502, 80), (8002, 64), (62, 32)} <= shapes
