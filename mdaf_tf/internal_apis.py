"""The private TensorFlow / Keras APIs this package uses, isolated in one module.

Neither has a public equivalent in TensorFlow 2.21 / Keras 3. Callers go through the wrappers
below, so an upgrade that moves one of them means changing this module only.
"""

from __future__ import annotations

import tensorflow as tf

# Private (``tensorflow.python``): TensorFlow exposes no public way to ask whether the trace in
# progress is for an XLA compilation; this is the check its own control-flow code makes.
from tensorflow.python.ops import control_flow_util


def tracing_under_xla() -> bool:
    """Whether the graph being traced will be compiled by XLA (``jit_compile=True``).

    The selective scan resolves ``impl="auto"`` with it (the CPU custom op has no XLA kernel)
    and ``MambaBlock`` picks its convolution form by it."""
    graph = tf.compat.v1.get_default_graph()
    return bool(control_flow_util.GraphOrParentsInXlaContext(graph))


def nested_layers(model) -> list:
    """Every layer inside ``model``, recursively (``model`` itself excluded).

    Private (``Layer._flatten_layers``): Keras 3 has no public recursive walk -- ``layers``
    lists only direct children, and e.g. ``MambaBlock`` sits inside an encoder layer -- so this
    uses the one Keras itself uses (its trainers' "every layer built" checks)."""
    return list(model._flatten_layers(include_self=False))


def loss_tracker(model):
    """The ``keras.metrics.Mean`` behind ``fit``'s ``loss`` log.

    Private (``Trainer._loss_tracker``): a ``train_step`` override that computes the loss
    itself (``ClickTrainer`` under several replicas) must update the same tracker Keras's own
    ``train_step`` does, or ``loss`` disappears from the logs; Keras exposes it only through
    ``model.metrics``, where nothing names it."""
    return model._loss_tracker


def set_initial_epoch(model, epoch: int | None) -> None:
    """Make the next ``fit`` start at ``epoch`` (0-based) whatever ``initial_epoch`` says.

    Private (``Trainer._initial_epoch``): the hook ``keras.callbacks.BackupAndRestore`` itself
    uses to resume; a subclass of it has no public alternative."""
    model._initial_epoch = epoch


class UniqueTextFileInitializer(tf.lookup.TextFileInitializer):
    """``tf.lookup.TextFileInitializer`` whose table gets a name no other table in the process
    has.

    Private (``TextFileInitializer._shared_name``): the stock name is built from the file
    argument, for an asset its ``repr`` (a memory address a later export may reuse, with
    another key dtype), and a table of the same name in the same process is the same table.
    Anonymous tables avoid that but are not initialised by the SavedModel's init op, so TF
    Serving's session loader reports "Table not initialized"; this keeps a named table and
    makes the name unique instead."""

    _created = 0

    @property
    def _shared_name(self):
        UniqueTextFileInitializer._created += 1
        return f"{super()._shared_name}_{UniqueTextFileInitializer._created}"
