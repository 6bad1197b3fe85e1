import numpy as np
import pytest

from mdaf_tf import schema
from mdaf_tf.config import ModelConfig


def tiny_config(**overrides) -> ModelConfig:
    """A small model that keeps every structural choice of the default one."""
    values = dict(
        user_vocab_size=30,
        item_vocab_size=40,
        cate_vocab_size=8,
        max_seq_len=12,
        user_embedding_dim=10,
        item_embedding_dim=8,
        cate_embedding_dim=4,
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
    values.update(overrides)
    return ModelConfig(**values)


def random_batch(config: ModelConfig, batch: int, seed: int = 0, max_seq_len=None) -> dict:
    """Schema inputs with left-padded histories of random lengths (0 included)."""
    rng = np.random.default_rng(seed)
    length = max_seq_len or config.max_seq_len
    hist_len = rng.integers(0, length + 1, size=batch)
    hist_len[0] = 0
    items = rng.integers(schema.FIRST_ID, config.item_vocab_size, size=(batch, length))
    cates = rng.integers(schema.FIRST_ID, config.cate_vocab_size, size=(batch, length))
    pad = np.arange(length)[None, :] < (length - hist_len)[:, None]
    items[pad] = schema.PAD_ID
    cates[pad] = schema.PAD_ID
    return {
        schema.USER_ID: rng.integers(schema.FIRST_ID, config.user_vocab_size, size=batch),
        schema.ITEM_ID: rng.integers(schema.FIRST_ID, config.item_vocab_size, size=batch),
        schema.CATE_ID: rng.integers(schema.FIRST_ID, config.cate_vocab_size, size=batch),
        schema.HIST_ITEM_ID: items,
        schema.HIST_CATE_ID: cates,
        schema.HIST_LEN: hist_len,
    }


@pytest.fixture
def config():
    return tiny_config()
