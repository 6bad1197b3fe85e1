"""DCNv3's Linear Cross Network (LCN)."""

from __future__ import annotations

import keras

from mdaf_tf.layers._cross_network import CrossNetworkBase


@keras.saving.register_keras_serializable(package="mdaf_tf")
class LinearCrossNetwork(CrossNetworkBase):
    """Linear Cross Network of DCNv3 / FCN (Li et al. 2024, arXiv:2407.13349).

    Per layer l = 0..num_layers-1, with x_0 the input::

        c       = W_l x_l                          (d -> d/2, no bias)
        mask    = ReLU(LayerNorm(c))               (ReLU(c) if use_layer_norm=False)
        H       = concat[c, c * mask]              (d)
        x_{l+1} = x_0 * (H + b_l) + x_l
        x_{l+1} = Dropout(x_{l+1})

    Every layer multiplies by the first-order x_0, so the interaction order grows by one per
    layer (order l + 1 after l layers, counting the mask as a selection).

    Input: (B, d) with d even. Output: (B, d).

    Args:
        num_layers: number of cross layers (3).
        dropout: dropout rate after each layer.
        use_layer_norm: LayerNorm inside the self-mask (True, as in DCNv3).
        kernel_initializer, bias_initializer, kernel_regularizer: for W_l and b_l
            (b_l starts uniform on [0, 1), as in the DCNv3 authors' code).
        layer_norm_epsilon: epsilon of the mask's LayerNorm (1e-5).

    Example:

    ```python
    import keras
    from mdaf_tf.layers import LinearCrossNetwork

    x = keras.random.normal((4, 16))  # (batch, d), d even
    lcn = LinearCrossNetwork(num_layers=3)
    y = lcn(x)
    print(y.shape)  # (4, 16)
    ```
    """

    def _multiplicand(self, x0, x):
        return x0
