"""The "convolution" of BN-Inception's table (Figure 5): z = g(BN(W ∗ u)), or
z = g(W ∗ u + b) without BN, and the options every such layer of a network shares.

bn_repro/models/inception.py builds the network from these layers.
"""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from bn_repro.batch_norm import DEFAULT_EPSILON, DEFAULT_MOMENTUM, BatchNorm
from bn_repro.models.activations import Nonlinearity
from bn_repro.models.conv import Conv

# Per-activation BN: statistics, γ and β for every (height, width, channel).
PER_ACTIVATION_AXES = (-3, -2, -1)
PER_FEATURE_MAP_AXES = (-1,)


@dataclasses.dataclass(frozen=True)
class LayerOptions:
    """What every convolution layer of one network shares."""

    norm: str = "batch"
    activation: str = "relu"
    bn_epsilon: float = DEFAULT_EPSILON
    bn_momentum: float = DEFAULT_MOMENTUM
    bn_group_size: int | None = None
    conv_init_scale: float = 1.0
    # Variants of the published weights (inception_config.py); the defaults are Figure 5's.
    bn_scale: bool = True
    conv_bias_with_bn: bool = False
    padding: str = "same"
    # The platform switch of bn_repro/models/conv.py; inception_config.create sets it.
    cpu_matmuls: bool = False
    dtype: jnp.dtype = jnp.float32  # compute dtype (bn_repro/models/precision.py)


class ConvLayer(nn.Module):
    """One "convolution" of Figure 5: z = g(BN(W ∗ u)), or g(W ∗ u + b) without BN.

    ``depth_multiplier > 0`` makes it separable: a depthwise convolution with that
    many maps per input channel, then a 1×1 convolution to ``features``.
    ``batch_norm=False`` leaves out BN in a BN network (TF-slim's first layer).
    """

    features: int
    kernel_size: int
    options: LayerOptions
    stride: int = 1
    depth_multiplier: int = 0
    per_activation_bn: bool = False
    batch_norm: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        opts = self.options
        use_bn = opts.norm == "batch" and self.batch_norm
        use_bias = not use_bn or opts.conv_bias_with_bn
        # Matrix products only where they help: in training (see bn_repro/models/conv.py).
        conv = functools.partial(
            Conv,
            init_scale=opts.conv_init_scale,
            cpu_matmuls=opts.cpu_matmuls and train,
            padding=opts.padding,
            dtype=opts.dtype,
        )
        if self.depth_multiplier:
            channels = x.shape[-1]
            x = conv(
                channels * self.depth_multiplier,
                self.kernel_size,
                stride=self.stride,
                feature_group_count=channels,
                use_bias=False,
                name="depthwise",
            )(x)
            x = conv(self.features, 1, use_bias=use_bias, name="pointwise")(x)
        else:
            x = conv(
                self.features,
                self.kernel_size,
                stride=self.stride,
                use_bias=use_bias,
                name="conv",
            )(x)
        if use_bn:
            axes = PER_ACTIVATION_AXES if self.per_activation_bn else PER_FEATURE_MAP_AXES
            x = BatchNorm(
                use_running_average=not train,
                momentum=opts.bn_momentum,
                epsilon=opts.bn_epsilon,
                group_size=opts.bn_group_size,
                feature_axes=axes,
                use_scale=opts.bn_scale,
            )(x)
        return Nonlinearity(opts.activation)(x)
