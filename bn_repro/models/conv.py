"""The convolution every layer of BN-Inception uses, and its CPU-only form.

`Conv` is an NHWC convolution with an HWIO kernel, SAME-padded or padded as in
Caffe (bn_repro/models/geometry.py). The mathematics is
the same on every platform; only the way XLA is asked to compute it differs, behind
one switch, ``cpu_matmuls``: on for training steps when JAX runs on CPU
(`cpu_matmuls_default`; the layers pass ``train``), where XLA's convolution gradients
are slow. Inference has no gradients, and there XLA's own convolutions are faster. On
GPU and TPU, XLA's convolutions are the fast path and are used as written. The
measurements behind this switch, and their commands: docs/measurements.md.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from bn_repro.models.geometry import conv_pads


def cpu_matmuls_default() -> bool:
    """The platform switch: matrix-product convolutions exactly when JAX runs on CPU."""
    return jax.default_backend() == "cpu"


def _dense_kernel(kernel: jax.Array, in_channels: int, groups: int) -> jax.Array:
    """A grouped convolution's kernel as a dense one, zero between groups."""
    out_channels = kernel.shape[-1]
    group_of_input = jnp.arange(in_channels) // (in_channels // groups)
    group_of_output = jnp.arange(out_channels) // (out_channels // groups)
    same_group = group_of_input[:, None] == group_of_output[None, :]
    return jnp.tile(kernel, (1, 1, groups, 1)) * same_group


def _im2col(x: jax.Array, k: int, stride: int, pads: tuple) -> jax.Array:
    """The k×k patches of x padded by ``pads`` side by side: (N, H', W', k·k·C), HWIO order."""
    x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    out_h, out_w = ((n - k) // stride + 1 for n in x.shape[1:3])
    rows, cols = (out_h - 1) * stride + 1, (out_w - 1) * stride + 1
    patches = [
        x[:, i : i + rows : stride, j : j + cols : stride, :] for i in range(k) for j in range(k)
    ]
    return jnp.concatenate(patches, axis=-1)


class Conv(nn.Module):
    """An NHWC convolution with an HWIO ``kernel`` (nn.Conv's layout).

    ``padding``: "same" or "caffe" (bn_repro/models/geometry.py).

    ``cpu_matmuls`` computes the same sums as 2-D matrix products, the one form that
    XLA's CPU backend runs fast everywhere:

    * a 1×1 stride-1 convolution is (N·H·W, C_in) × (C_in, C_out);
    * a k×k convolution is im2col: the input's k×k patches side by side, times the
      kernel as a (k·k·C_in, C_out) matrix;
    * a grouped convolution (the depthwise half of the separable first layer) first
      becomes a dense one whose kernel is zero between groups: 3× that small layer's
      multiply-adds, but XLA's grouped-convolution gradient is slower still.

    Why: XLA's CPU convolution gradients are far slower inside a loop (the trainer's
    `lax.scan` over steps) than outside it, while matrix products run at the same
    speed in both; outside a loop too, the matrix products are faster.

    On GPU and TPU XLA's convolutions are the fast path, and they are used as written.

    ``dtype`` is the compute dtype (bn_repro/models/precision.py): the input and the
    float32 kernel are cast to it, so a bfloat16 layer keeps float32 parameters.
    """

    features: int
    kernel_size: int
    stride: int = 1
    feature_group_count: int = 1
    use_bias: bool = True
    init_scale: float = 1.0
    cpu_matmuls: bool = False
    padding: str = "same"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, stride, groups = self.kernel_size, self.stride, self.feature_group_count
        # TF-slim's variance_scaling_initializer: truncated normal, variance 2 / fan-in.
        kernel_init = nn.initializers.variance_scaling(
            2.0 * self.init_scale**2, "fan_in", "truncated_normal"
        )
        shape = (k, k, x.shape[-1] // groups, self.features)
        kernel = self.param("kernel", kernel_init, shape, jnp.float32).astype(self.dtype)
        x = x.astype(self.dtype)
        pads = tuple(conv_pads(n, k, stride, self.padding) for n in x.shape[1:3])
        if self.cpu_matmuls:
            if groups > 1:
                kernel = _dense_kernel(kernel, x.shape[-1], groups)
            patches = _im2col(x, k, stride, pads)  # x itself for a 1×1 stride-1 convolution
            y = patches.reshape(-1, patches.shape[-1]) @ kernel.reshape(-1, self.features)
            y = y.reshape(*patches.shape[:-1], self.features)
        else:
            y = jax.lax.conv_general_dilated(
                x,
                kernel,
                window_strides=(stride, stride),
                padding=pads,
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                feature_group_count=groups,
            )
        if self.use_bias:
            bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
            y = y + bias.astype(self.dtype)
        return y
