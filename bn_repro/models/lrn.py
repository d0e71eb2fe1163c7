"""Local response normalization as GoogLeNet (Caffe) computes it, across channels.

GoogLeNet places it after the first max pool and after the 3×3 stem convolution;
the Inception baseline of the paper keeps it (``use_lrn``), BN-x* remove it. Size
n = 5, α = 1e-4, β = 0.75, on an activation a with C channels:
    b_c = a_c · (1 + (α / n) · Σ_{c' = max(0, c−2)}^{min(C−1, c+2)} a_{c'}²)^(−β).
Note α / n: Caffe scales α by the window size; tf.nn.local_response_normalization
does not.

The constants were set for GoogLeNet's Caffe inputs, pixels in 0-255. LRN is not
scale-invariant: on inputs in [0, 1] a network without BN has activations ~255×
smaller, (α/n)·Σa² stays ~0 and the divisor ~1, so LRN does nothing (evaluation logs
the divisor's range). ``pixel_scale`` s computes the layer as it acts on activations s
times larger, LRN(s·a)/s, i.e. α·s² in place of α: s = 255 restores GoogLeNet's
regime for [0, 1] inputs.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

LRN_SIZE = 5
LRN_ALPHA = 1e-4
LRN_BETA = 0.75


class LocalResponseNorm(nn.Module):
    """GoogLeNet's across-channel LRN, the formula of the module docstring."""

    pixel_scale: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        half = LRN_SIZE // 2
        window_sum = jax.lax.reduce_window(
            jnp.square(x),
            0.0,
            jax.lax.add,
            window_dimensions=(1,) * (x.ndim - 1) + (LRN_SIZE,),
            window_strides=(1,) * x.ndim,
            padding=((0, 0),) * (x.ndim - 1) + ((half, half),),
        )
        alpha = LRN_ALPHA * self.pixel_scale**2
        divisor = (1.0 + (alpha / LRN_SIZE) * window_sum) ** LRN_BETA
        # Evaluation logs its range: with inputs in [0, 1] it may stay at ~1 (a no-op).
        self.sow("intermediates", "divisor_max", jnp.max(divisor, axis=range(1, x.ndim)))
        return x / divisor
