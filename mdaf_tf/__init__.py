"""mdaf-tf: MDAF (Mamba-DCN with Adaptive Fusion) for CTR prediction in TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"
