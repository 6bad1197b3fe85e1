"""Numpy float64 reference of DIN's Dice and local activation unit, written from the formulas
of Zhou et al. 2018 (arXiv:1706.06978) and FuxiCTR's DIN_Attention, one position at a time."""

from __future__ import annotations

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def dice(s, alpha, mean, var, eps):
    """f(s) = p s + alpha (1 - p) s, p = sigmoid((s - mean) / sqrt(var + eps))."""
    p = sigmoid((s - mean) / np.sqrt(var + eps))
    return p * s + alpha * (1.0 - p) * s


def masked_moments(s, mask):
    """Mean and (biased) variance per unit over the valid rows of s (B, T, h)."""
    rows = s[mask]
    return rows.mean(axis=0), rows.var(axis=0)


def dice_parameters(layer):
    """alpha, moving mean, moving variance and epsilon of a ``Dice`` layer."""
    bn = layer.normalization
    return (np.asarray(layer.alpha), np.asarray(bn.moving_mean),
            np.asarray(bn.moving_variance), layer.epsilon)


def randomize_dice(layer, rng):
    """Non-trivial Dice state (alpha starts at 0, the moving moments at 0 and 1)."""
    bn = layer.normalization
    layer.alpha.assign(rng.normal(scale=0.5, size=layer.alpha.shape))
    bn.moving_mean.assign(rng.normal(scale=0.5, size=bn.moving_mean.shape))
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, size=bn.moving_variance.shape))


def target_attention(layer, query, keys, mask, activation=None, training=False):
    """DIN's local activation unit with ``layer``'s weights.

    a_t = MLP([q, k_t, q - k_t, q * k_t]) for valid t (0 at padding), optionally softmax over
    the valid t; out = sum_t a_t k_t. ``activation`` (numpy) replaces Dice when the layer
    does not use it. With ``training`` Dice normalises with the moments of the valid
    positions of this batch, else with its moving moments.
    """
    query, keys = np.asarray(query, np.float64), np.asarray(keys, np.float64)
    batch, length, _ = keys.shape
    h = np.stack([
        np.stack([np.concatenate([query[b], keys[b, t], query[b] - keys[b, t],
                                  query[b] * keys[b, t]]) for t in range(length)])
        for b in range(batch)
    ])  # (B, T, 4d)
    for i, dense in enumerate(layer.dense_layers):
        h = h @ np.asarray(dense.kernel) + np.asarray(dense.bias)
        if layer.use_dice:
            alpha, mean, var, eps = dice_parameters(layer.dice_layers[i])
            if training:
                mean, var = masked_moments(h, mask)
            h = dice(h, alpha, mean, var, eps)
        else:
            h = activation(h)
    score = (h @ np.asarray(layer.score_layer.kernel) + np.asarray(layer.score_layer.bias))[..., 0]
    out = np.zeros((batch, keys.shape[-1]))
    for b in range(batch):
        valid = [t for t in range(length) if mask[b, t]]
        weights = np.array([score[b, t] for t in valid])
        if layer.use_softmax and valid:
            weights = np.exp(weights - weights.max())
            weights = weights / weights.sum()
        for w, t in zip(weights, valid, strict=True):
            out[b] += w * keys[b, t]
    return out
