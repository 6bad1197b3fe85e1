"""Model sections written before each model had its own config.

Until 2026-12-08 one ``ModelConfig`` of 41 fields described every model, and ``config.json``,
``best_config.json``, ``.keras`` files, compare's ``result.json`` and exports hold all 41. Such
a section is recognised by the user / item / category fields it alone has, and converted:

* ``user_vocab_size`` (item, cate) -> ``vocab_sizes["user"]`` unless that is already set;
  ``user_embedding_dim`` (item, cate) -> ``embedding_dims["user"]`` where not None;
* the legacy fields the model's own config lacks are dropped: the model never read them (the
  old config held every model's fields).

A section without those six fields is a current one and is left as it is.
"""

from __future__ import annotations

from mdaf_tf.data import schema

_OWN_FIELDS = {schema.USER_VOCAB: ("user_vocab_size", "user_embedding_dim"),
               schema.ITEM_VOCAB: ("item_vocab_size", "item_embedding_dim"),
               schema.CATE_VOCAB: ("cate_vocab_size", "cate_embedding_dim")}
REMOVED_FIELDS = frozenset(name for pair in _OWN_FIELDS.values() for name in pair)
# The old ModelConfig's fields.
LEGACY_FIELDS = REMOVED_FIELDS | frozenset({
    "features", "vocab_sizes", "max_seq_len", "embedding_dims", "embedding_l2", "hidden_dim",
    "num_cross_layers", "cross_layer_norm", "num_mamba_layers", "d_state", "d_conv", "expand",
    "ffn_multiplier", "pooling", "scan", "target_in_sequence", "target_match", "fusion",
    "fixed_gate_weight", "gate_hidden", "output_hidden", "dropout", "autoint_layers",
    "autoint_heads", "autoint_attention_dim", "dcnv2_layers", "dcnv2_low_rank",
    "dcnv2_num_experts", "deep_hidden", "bst_heads", "bst_layers", "din_attention_hidden",
    "din_attention_activation", "din_use_softmax", "precision",
})


def is_legacy(values: dict) -> bool:
    return not REMOVED_FIELDS.isdisjoint(values)


def convert(values: dict, fields: set[str] | frozenset[str]) -> dict:
    """``values`` as a section of a config with ``fields``: converted if it is a legacy
    section, else unchanged."""
    if not is_legacy(values):
        return values
    out = dict(values)
    vocab_sizes = dict(out.get("vocab_sizes") or {})
    embedding_dims = dict(out.get("embedding_dims") or {})
    for vocab, (size_field, dim_field) in _OWN_FIELDS.items():
        size, dim = out.pop(size_field, 0), out.pop(dim_field, None)
        if size and vocab not in vocab_sizes:
            vocab_sizes[vocab] = size
        if dim is not None and vocab not in embedding_dims:
            embedding_dims[vocab] = dim
    out["vocab_sizes"], out["embedding_dims"] = vocab_sizes, embedding_dims
    return {k: v for k, v in out.items() if k in fields or k not in LEGACY_FIELDS}
