"""Keras 3 layers of MDAF and the baselines (one public class per file).

Every layer is registered for Keras serialization under the package name ``mdaf_tf``.
Modules whose name starts with ``_`` are private helpers.
"""

from mdaf_tf.layers.dcnv3 import DCNv3
from mdaf_tf.layers.dice import Dice
from mdaf_tf.layers.exponential_cross_network import ExponentialCrossNetwork
from mdaf_tf.layers.feature_embedding import FeatureEmbedding
from mdaf_tf.layers.field_self_attention import FieldSelfAttention
from mdaf_tf.layers.gated_fusion import GatedFusion
from mdaf_tf.layers.linear_cross_network import LinearCrossNetwork
from mdaf_tf.layers.mamba4rec_encoder import Mamba4RecEncoder
from mdaf_tf.layers.mamba_block import MambaBlock
from mdaf_tf.layers.mlp import MLP
from mdaf_tf.layers.position_embedding import PositionEmbedding
from mdaf_tf.layers.target_attention import TargetAttention
from mdaf_tf.layers.target_history_match import TargetHistoryMatch
from mdaf_tf.layers.transformer_encoder import TransformerEncoder

__all__ = [
    "DCNv3",
    "Dice",
    "ExponentialCrossNetwork",
    "FeatureEmbedding",
    "FieldSelfAttention",
    "GatedFusion",
    "LinearCrossNetwork",
    "MLP",
    "Mamba4RecEncoder",
    "MambaBlock",
    "PositionEmbedding",
    "TargetAttention",
    "TargetHistoryMatch",
    "TransformerEncoder",
]
