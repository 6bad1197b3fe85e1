"""DCNv3's Exponential Cross Network (ECN)."""

from __future__ import annotations

import keras

from mdaf_tf.layers._cross_network import CrossNetworkBase


@keras.saving.register_keras_serializable(package="mdaf_tf")
class ExponentialCrossNetwork(CrossNetworkBase):
    """Exponential Cross Network of DCNv3 / FCN (Li et al. 2024, arXiv:2407.13349).

    Per layer l = 0..num_layers-1, with x_0 the input::

        c       = W_l x_l                          (d -> d/2, no bias)
        mask    = ReLU(LayerNorm(c))               (ReLU(c) if use_layer_norm=False)
        H       = concat[c, c * mask]              (d)
        x_{l+1} = x_l * (H + b_l) + x_l
        x_{l+1} = Dropout(x_{l+1})

    Both factors of x_l * W_l x_l carry the interaction order of x_l, so the order doubles
    per layer (2^l after l layers, counting the mask as a selection) -- hence "exponential".

    Difference from the seed thesis: it writes the ECN layer as x_l * (W x_0 + b) + x_l.
    There W sees the first-order x_0 only, so each layer raises the order by one, exactly
    like LCN; that is not exponential. This layer follows the DCNv3 paper (W x_l).

    Input: (B, d) with d even. Output: (B, d).

    Args: as ``LinearCrossNetwork``.

    Example:

    ```python
    import keras
    from mdaf_tf.layers import ExponentialCrossNetwork

    x = keras.random.normal((4, 16))  # (batch, d), d even
    ecn = ExponentialCrossNetwork(num_layers=3, dropout=0.1)
    y = ecn(x, training=True)
    print(y.shape)  # (4, 16)
    ```
    """

    def _multiplicand(self, x0, x):
        return x
