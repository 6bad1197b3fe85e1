import numpy as np
import pytest

from mdaf_tf.data import schema
from mdaf_tf.models import registry
from mdaf_tf.models.config import ModelConfig


def tiny_config(name: str = "mdaf", **overrides) -> ModelConfig:
    """Model ``name``'s config at a small size that keeps every structural choice of the
    default one (the sizes below that ``name`` reads, and ``overrides``, each a field it
    reads)."""
    values = dict(
        vocab_sizes={"user": 30, "item": 40, "cate": 8},
        max_seq_len=12,
        embedding_dims={"user": 10, "item": 8, "cate": 4},
        hidden_dim=16,
        d_state=4,
        gate_hidden=16,
        output_hidden=(8,),
        dropout=0.1,
        scan="auto",
        deep_hidden=(16, 8),
        autoint_attention_dim=8,
        bst_heads=2,
    )
    unread = sorted(set(overrides) - registry.config_fields(name))
    assert not unread, f"{name} does not read {unread}"
    values.update(overrides)
    return registry.make_config(name, values, strict=False)


def random_batch(config: ModelConfig, batch: int, seed: int = 0, max_seq_len=None) -> dict:
    """Schema inputs with left-padded histories of random lengths (0 included)."""
    rng = np.random.default_rng(seed)
    length = max_seq_len or config.max_seq_len
    hist_len = rng.integers(0, length + 1, size=batch)
    hist_len[0] = 0
    items = rng.integers(schema.FIRST_ID, config.vocab_sizes["item"], size=(batch, length))
    cates = rng.integers(schema.FIRST_ID, config.vocab_sizes["cate"], size=(batch, length))
    pad = np.arange(length)[None, :] < (length - hist_len)[:, None]
    items[pad] = schema.PAD_ID
    cates[pad] = schema.PAD_ID
    return {
        schema.USER_ID: rng.integers(schema.FIRST_ID, config.vocab_sizes["user"], size=batch),
        schema.ITEM_ID: rng.integers(schema.FIRST_ID, config.vocab_sizes["item"], size=batch),
        schema.CATE_ID: rng.integers(schema.FIRST_ID, config.vocab_sizes["cate"], size=batch),
        schema.HIST_ITEM_ID: items,
        schema.HIST_CATE_ID: cates,
        schema.HIST_LEN: hist_len,
    }


@pytest.fixture
def config():
    return tiny_config()
