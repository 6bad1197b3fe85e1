"""mdaf-tf: MDAF (Mamba-DCN with Adaptive Fusion) for CTR prediction in TensorFlow 2 / Keras 3."""

from mdaf_tf.runtime import use_bfc_cpu_allocator

use_bfc_cpu_allocator()

__version__ = "0.1.0"
