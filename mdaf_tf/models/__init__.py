"""Models: MDAF, its ablations and the baselines, built by name from a ModelConfig."""
