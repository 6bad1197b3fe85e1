"""Numpy float64 reference of the DCNv3 cross layers, written from the formulas of issue 3."""

from __future__ import annotations

import numpy as np


def cross_network(x0, kernels, biases, norms, kind, eps=1e-5):
    """kernels[l] (d, d/2); biases[l] (d,); norms[l] = (gamma, beta) or None (no LayerNorm).

    c = x_l W; mask = ReLU(LN(c)) or ReLU(c); H = [c, c * mask];
    LCN: x_{l+1} = x_0 * (H + b) + x_l;  ECN: x_{l+1} = x_l * (H + b) + x_l.
    """
    x = np.asarray(x0, dtype=np.float64)
    x0 = x
    for kernel, bias, norm in zip(kernels, biases, norms, strict=True):
        c = x @ kernel
        if norm is None:
            gate_input = c
        else:
            gamma, beta = norm
            mean = c.mean(axis=-1, keepdims=True)
            var = ((c - mean) ** 2).mean(axis=-1, keepdims=True)
            gate_input = (c - mean) / np.sqrt(var + eps) * gamma + beta
        h = np.concatenate([c, c * np.maximum(gate_input, 0.0)], axis=-1)
        multiplicand = x0 if kind == "linear" else x
        x = multiplicand * (h + bias) + x
    return x


def layer_parameters(layer):
    """Numpy copies of a built cross-network layer's parameters, in the reference's format."""
    kernels = [np.asarray(p.kernel) for p in layer.projections]
    biases = [np.asarray(b) for b in layer.biases]
    if layer.use_layer_norm:
        norms = [(np.asarray(n.gamma), np.asarray(n.beta)) for n in layer.layer_norms]
    else:
        norms = [None] * layer.num_layers
    return kernels, biases, norms


def randomize(layer, rng, scale=0.5):
    """Non-trivial parameters (LN starts at gamma=1, beta=0)."""
    for p in layer.projections:
        p.kernel.assign(rng.normal(scale=scale, size=p.kernel.shape))
    for b in layer.biases:
        b.assign(rng.normal(scale=scale, size=b.shape))
    for n in layer.layer_norms:
        n.gamma.assign(1.0 + rng.normal(scale=0.2, size=n.gamma.shape))
        n.beta.assign(rng.normal(scale=0.2, size=n.beta.shape))
