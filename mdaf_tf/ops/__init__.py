"""Numerical kernels behind the layers (the selective scan and its implementations)."""
