"""Keras 3 layers of MDAF and the baselines (one public class per file)."""
