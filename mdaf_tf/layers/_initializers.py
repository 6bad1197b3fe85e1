"""A fresh initializer per weight (private helper of the layers)."""

from __future__ import annotations


def fresh(initializer):
    """A new instance of ``initializer`` built from its config.

    Keras 3 draws an unseeded initializer's seed once, when the instance is made, so one
    instance shared by several weights gives same-shaped weights identical values (and
    differently shaped ones the same leading draws). Keras's own MultiHeadAttention clones its
    initializers per sub-layer for this reason; a layer that hands its initializer to several
    weights does the same through this function. An explicitly seeded initializer stays
    seeded: the clone repeats its values, as the caller asked.
    """
    if initializer is None:
        return None
    return type(initializer).from_config(initializer.get_config())
