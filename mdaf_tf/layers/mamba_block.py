"""``MambaBlock``: the selective state-space block of Mamba (Gu & Dao, arXiv:2312.00752).

For an input ``x`` of shape (batch, length, d_model), with ``d_inner = expand * d_model``,
``N = d_state`` and ``R = dt_rank``::

    [x_in, z]    = x W_in                                   (d_model -> 2 d_inner, no bias)
    u            = SiLU(causal_depthwise_conv(x_in) + b_conv) (kernel d_conv, left zero padding)
    [dt, B, C]   = u W_x                                    (d_inner -> R + 2N, no bias)
    delta        = softplus(dt W_dt + b_dt)                 (R -> d_inner)
    A            = -exp(A_log)                              (d_inner, N)
    h_t          = exp(delta_t A) h_{t-1} + delta_t B_t u_t  (h_0 = 0)
    y_t          = (C_t . h_t + D u_t) * SiLU(z_t)
    out          = y W_out                                  (d_inner -> d_model, no bias)

Initialisation follows the paper's reference code: ``A_log[d, n] = log(n + 1)``, ``D = 1``,
``b_dt = softplus^-1(dt)`` with ``dt`` log-uniform in [dt_min, dt_max] (floored at
``dt_init_floor``) and ``W_dt ~ U(-R^-1/2, R^-1/2)``. All of them are initializers, so a
symbolic build never needs ``assign``.

Padding: ``mask`` (batch, length), True at valid positions. The convolution input, ``u`` and
``delta`` are zeroed at padded positions, so the state carried past them is untouched
(exp(0 * A) = 1, no input) and a left-padded sequence gives the same outputs at its valid
positions whatever the padding length or the padded values. Outputs at padded positions are
finite but meaningless; callers mask them.

Precision: under a mixed dtype policy ``W_in`` and ``W_out`` (the block's large matmuls, 89%
of its matmul FLOPs at the defaults) run in the compute dtype (bfloat16 or float16); everything
between them -- convolution, SiLU, ``W_x``, ``W_dt``, softplus, the recurrence and the gate --
runs in float32 on unrounded weights. They decide the recurrence's coefficients (delta, B, C)
and its state, and a bfloat16 state would lose the small per-step increments over the
sequence. The block's output has the compute dtype.

The recurrence runs in :func:`mdaf_tf.ops.selective_scan.selective_scan`; ``scan`` names the
implementation and is passed through unchanged. When it resolves to ``"fast"`` (the CPU custom
op, read at call time so an export can switch it), the block runs its fused CPU path instead: one
op for the convolution + bias + SiLU + mask, one for softplus + scan + D skip + SiLU(z) gate
(:mod:`mdaf_tf.ops.fast_scan`), and 2-D matmuls on kernel slices in between, so no
(batch, length, d_inner) elementwise intermediate is materialised. Same formulas, same weights.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from mdaf_tf.internal_apis import tracing_under_xla
from mdaf_tf.ops import fast_scan
from mdaf_tf.ops.selective_scan import resolve_impl, selective_scan
from mdaf_tf.precision import float32_at_least


@keras.saving.register_keras_serializable(package="mdaf_tf")
class _ALogInitializer(keras.initializers.Initializer):
    """``A_log[d, n] = log(n + 1)`` for a (d_inner, d_state) weight (S4D-real init)."""

    def __call__(self, shape, dtype=None):
        d_state = shape[-1]
        row = keras.ops.log(keras.ops.arange(1, d_state + 1, dtype="float32"))
        return keras.ops.cast(keras.ops.broadcast_to(row, shape), dtype or "float32")

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="mdaf_tf")
class _DtBiasInitializer(keras.initializers.Initializer):
    """Inverse softplus of ``dt``, ``dt`` log-uniform in [dt_min, dt_max], floored."""

    def __init__(self, dt_min=1e-3, dt_max=1e-1, dt_init_floor=1e-4, seed=None):
        self.dt_min = dt_min
        self.dt_max = dt_max
        self.dt_init_floor = dt_init_floor
        self.seed = seed

    def __call__(self, shape, dtype=None):
        log_dt = keras.random.uniform(
            shape,
            minval=math.log(self.dt_min),
            maxval=math.log(self.dt_max),
            dtype="float32",
            seed=self.seed,
        )
        dt = keras.ops.maximum(keras.ops.exp(log_dt), self.dt_init_floor)
        # softplus^-1(dt) = log(exp(dt) - 1) = dt + log(1 - exp(-dt)), stable for small dt.
        bias = dt + keras.ops.log(-keras.ops.expm1(-dt))
        return keras.ops.cast(bias, dtype or "float32")

    def get_config(self):
        return {
            "dt_min": self.dt_min,
            "dt_max": self.dt_max,
            "dt_init_floor": self.dt_init_floor,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="mdaf_tf")
class MambaBlock(keras.layers.Layer):
    """Mamba selective SSM block; (batch, length, d_model) -> (batch, length, d_model).

    Args:
        d_model: input and output width.
        d_state: SSM state size N.
        d_conv: causal convolution kernel width.
        expand: ``d_inner = expand * d_model``.
        dt_rank: rank of the delta projection; ``"auto"`` is ``ceil(d_model / 16)``.
        dt_min, dt_max, dt_init_floor: range and floor of the initial step size.
        scan: selective-scan implementation name, passed to ``selective_scan(impl=...)``.
        seed: optional integer seed for the random initializers.

    Call: ``block(x, mask=None, training=None)``; ``mask`` is (batch, length) bool (or 0/1),
    True at valid positions. Weight attributes: ``in_proj_kernel`` (d_model, 2 d_inner),
    ``conv_kernel`` (d_conv, d_inner), ``conv_bias`` (d_inner,), ``x_proj_kernel``
    (d_inner, R + 2N), ``dt_proj_kernel`` (R, d_inner), ``dt_proj_bias`` (d_inner,),
    ``A_log`` (d_inner, N), ``D`` (d_inner,), ``out_proj_kernel`` (d_inner, d_model).

    Example:

    ```python
    import keras
    from mdaf_tf.layers import MambaBlock

    x = keras.random.normal((4, 10, 32))  # (batch, length, d_model)
    block = MambaBlock(d_model=32, d_state=8)
    y = block(x)
    print(y.shape)  # (4, 10, 32)
    ```
    """

    def __init__(
        self,
        d_model,
        d_state=16,
        d_conv=4,
        expand=2,
        dt_rank="auto",
        dt_min=1e-3,
        dt_max=1e-1,
        dt_init_floor=1e-4,
        scan="auto",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if dt_rank != "auto" and (not isinstance(dt_rank, int) or dt_rank < 1):
            raise ValueError(f"MambaBlock dt_rank must be 'auto' or an int >= 1, got {dt_rank!r}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"MambaBlock needs 0 < dt_min <= dt_max, got {dt_min}, {dt_max}")
        self.d_model = int(d_model)
        self.d_state = int(d_state)
        self.d_conv = int(d_conv)
        self.expand = int(expand)
        self.dt_rank = dt_rank
        self.dt_min = dt_min
        self.dt_max = dt_max
        self.dt_init_floor = dt_init_floor
        self.scan = scan
        self.seed = seed
        self.d_inner = self.expand * self.d_model
        self.rank = math.ceil(self.d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.supports_masking = True

    def _seed(self, offset):
        return None if self.seed is None else self.seed + offset

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] != self.d_model:
            raise ValueError(
                f"MambaBlock(d_model={self.d_model}) got inputs of width {input_shape[-1]}"
            )
        d, e, n, r = self.d_model, self.d_inner, self.d_state, self.rank
        glorot = keras.initializers.GlorotUniform
        self.in_proj_kernel = self.add_weight(
            name="in_proj_kernel", shape=(d, 2 * e), initializer=glorot(self._seed(0))
        )
        conv_bound = 1.0 / math.sqrt(self.d_conv)  # fan_in of a depthwise kernel is d_conv
        self.conv_kernel = self.add_weight(
            name="conv_kernel",
            shape=(self.d_conv, e),
            initializer=keras.initializers.RandomUniform(-conv_bound, conv_bound, self._seed(1)),
            autocast=False,
        )
        self.conv_bias = self.add_weight(
            name="conv_bias",
            shape=(e,),
            initializer=keras.initializers.RandomUniform(-conv_bound, conv_bound, self._seed(2)),
            autocast=False,
        )
        self.x_proj_kernel = self.add_weight(
            name="x_proj_kernel", shape=(e, r + 2 * n), initializer=glorot(self._seed(3)),
            autocast=False,
        )
        dt_std = r**-0.5
        self.dt_proj_kernel = self.add_weight(
            name="dt_proj_kernel",
            shape=(r, e),
            initializer=keras.initializers.RandomUniform(-dt_std, dt_std, self._seed(4)),
            autocast=False,
        )
        self.dt_proj_bias = self.add_weight(
            name="dt_proj_bias",
            shape=(e,),
            initializer=_DtBiasInitializer(
                self.dt_min, self.dt_max, self.dt_init_floor, self._seed(5)
            ),
            autocast=False,
        )
        # Not autocast: the scan reads these in float32 whatever the compute dtype, and a
        # bfloat16 round trip would lose their low bits (the layer casts where it needs to).
        self.A_log = self.add_weight(name="A_log", shape=(e, n), initializer=_ALogInitializer(),
                                     autocast=False)
        self.D = self.add_weight(name="D", shape=(e,), initializer="ones", autocast=False)
        self.out_proj_kernel = self.add_weight(
            name="out_proj_kernel", shape=(e, d), initializer=glorot(self._seed(6))
        )

    def _causal_conv(self, x):
        """Depthwise causal conv1d over time with left zero padding, plus bias."""
        kernel = tf.cast(self.conv_kernel, x.dtype)
        bias = tf.cast(self.conv_bias, x.dtype)
        if tracing_under_xla():
            # XLA fuses the pad, shifted slices and multiply-adds into one loop, while its
            # depthwise convolution is several times slower (measured on CPU).
            length = x.shape[1] if x.shape[1] is not None else tf.shape(x)[1]
            padded = tf.pad(x, [[0, 0], [self.d_conv - 1, 0], [0, 0]])
            out = bias
            for k in range(self.d_conv):
                out = out + padded[:, k : k + length, :] * kernel[k]
            return out
        # Without XLA every shifted slice is a separate pass; the depthwise kernel is one.
        out = tf.nn.depthwise_conv2d(
            x[:, None],
            kernel[None, :, :, None],
            strides=[1, 1, 1, 1],
            padding=[[0, 0], [0, 0], [self.d_conv - 1, 0], [0, 0]],
        )
        return tf.nn.bias_add(out[:, 0], bias)

    def _uses_fused_ops(self):
        under_xla = tracing_under_xla()
        impl = resolve_impl(self.scan, jit_compile=under_xla and self.scan == "auto")
        return impl == "fast"

    def _fused_call(self, x, mask):
        """The block through the fused CPU ops (module docstring); same result as ``call``.

        in_proj and out_proj run in the input's dtype; everything between them in float32
        (module docstring, "Precision")."""
        dtype = x.dtype
        inner = float32_at_least(dtype)
        e, d, n, r = self.d_inner, self.d_model, self.d_state, self.rank
        batch, length = tf.shape(x)[0], tf.shape(x)[1]
        if mask is None:
            valid = tf.ones(tf.stack([batch, length]), tf.bool)
        else:
            valid = tf.cast(mask, tf.bool)
            x = tf.where(valid[..., None], x, tf.zeros_like(x))

        def rows(t, width):
            return tf.reshape(t, tf.stack([-1, width]))

        def sequences(t, width, cast_to=inner):
            return tf.cast(tf.reshape(t, tf.stack([batch, length, width])), cast_to)

        x2 = rows(x, d)
        in_kernel = tf.cast(self.in_proj_kernel, dtype)
        x_in = sequences(tf.matmul(x2, in_kernel[:, :e]), e)
        z = sequences(tf.matmul(x2, in_kernel[:, e:]), e)
        u = fast_scan.causal_conv_silu(
            x_in, tf.cast(self.conv_kernel, inner), tf.cast(self.conv_bias, inner), valid
        )
        u2 = rows(u, e)
        x_kernel = tf.cast(self.x_proj_kernel, inner)
        dt = tf.matmul(tf.matmul(u2, x_kernel[:, :r]), tf.cast(self.dt_proj_kernel, inner))
        bc = tf.matmul(u2, x_kernel[:, r:])
        A = -tf.exp(tf.cast(self.A_log, inner))
        y = fast_scan.gated_scan(
            u,
            sequences(dt, e),
            tf.cast(self.dt_proj_bias, inner),
            A,
            sequences(bc, 2 * n),
            tf.cast(self.D, inner),
            z,
            valid,
        )
        out = tf.matmul(rows(tf.cast(y, dtype), e), tf.cast(self.out_proj_kernel, dtype))
        return sequences(out, d, dtype)

    def call(self, x, mask=None):
        if self._uses_fused_ops():
            return self._fused_call(x, mask)
        dtype = x.dtype
        e, n, r = self.d_inner, self.d_state, self.rank
        valid = None
        if mask is not None:
            # Zeroing x zeroes both halves of in_proj (no bias) at padded positions; tf.where
            # rather than a multiply so that non-finite padded values cannot leak through.
            valid = tf.cast(mask, tf.bool)[..., None]
            x = tf.where(valid, x, tf.zeros_like(x))
        in_kernel = tf.cast(self.in_proj_kernel, dtype)
        inner = float32_at_least(dtype)
        # Two matmuls on kernel halves instead of slicing a (B, L, 2 d_inner) activation; from
        # here to out_proj in float32 whatever the compute dtype, as the fused path computes.
        x_in = tf.cast(tf.einsum("bld,de->ble", x, in_kernel[:, :e]), inner)
        z = tf.cast(tf.einsum("bld,de->ble", x, in_kernel[:, e:]), inner)
        u = tf.nn.silu(self._causal_conv(x_in))
        if valid is not None:
            u = tf.where(valid, u, tf.zeros_like(u))
        x_dbl = tf.einsum("ble,ef->blf", u, tf.cast(self.x_proj_kernel, inner))
        dt_low, B, C = x_dbl[..., :r], x_dbl[..., r : r + n], x_dbl[..., r + n :]
        delta = tf.nn.softplus(
            tf.nn.bias_add(
                tf.einsum("blr,re->ble", dt_low, tf.cast(self.dt_proj_kernel, inner)),
                tf.cast(self.dt_proj_bias, inner),
            )
        )
        if valid is not None:
            delta = tf.where(valid, delta, tf.zeros_like(delta))
        A = -tf.exp(tf.cast(self.A_log, inner))
        y = selective_scan(u, delta, A, B, C, tf.cast(self.D, inner), impl=self.scan)
        y = tf.cast(y * tf.nn.silu(z), dtype)
        return tf.einsum("ble,ed->bld", y, tf.cast(self.out_proj_kernel, dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "d_model": self.d_model,
                "d_state": self.d_state,
                "d_conv": self.d_conv,
                "expand": self.expand,
                "dt_rank": self.dt_rank,
                "dt_min": self.dt_min,
                "dt_max": self.dt_max,
                "dt_init_floor": self.dt_init_floor,
                "scan": self.scan,
                "seed": self.seed,
            }
        )
        return config
