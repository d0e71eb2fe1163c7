"""Where convolution and pooling windows sit: TensorFlow's SAME or Caffe's rules.

Two ``padding`` modes, the one network option behind which they live:

* ``"same"`` (the default, TF-slim): output size ⌈size / stride⌉; a convolution's
  zero padding is split with the extra pixel at the end; max pools pad with −∞ and
  average pools divide by the number of in-image values.
* ``"caffe"`` (the Caffe model that pretrainedmodels' BNInception ports): a k×k
  convolution pads k // 2 zeros on both sides and rounds the output size down;
  pools round it up (``ceil_mode``), with no padding at stride 2 and k // 2 at
  stride 1, and an average pool divides by its window clipped to the padded input
  (``count_include_pad``: padding zeros count, the ceil overhang does not).

At 224 px the two agree on every pool of BN-Inception (all sizes are even), but
not on the stride-2 convolutions: SAME starts the 7×7/2 window at row −2, Caffe at
−3, so the first layer sees a shifted grid.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

PADDINGS = ("same", "caffe")


def conv_pads(size: int, kernel: int, stride: int, padding: str) -> tuple[int, int]:
    """Zeros before and after one spatial axis of a convolution's input."""
    if padding == "caffe":
        return kernel // 2, kernel // 2
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _caffe_pool_axis(size: int, window: int, stride: int) -> tuple[int, int, int]:
    """(output size, padding before, padding after) of a ceil-mode pool, PyTorch's rule."""
    pad = window // 2 if stride == 1 else 0
    out = math.ceil((size + 2 * pad - window) / stride) + 1
    if (out - 1) * stride >= size + pad:  # the last window must start inside the input
        out -= 1
    return out, pad, max((out - 1) * stride + window - size - pad, 0)


def _caffe_window_sizes(size: int, window: int, stride: int) -> np.ndarray:
    """Divisors of count_include_pad along one axis: windows clipped to the padded input."""
    out, pad, _ = _caffe_pool_axis(size, window, stride)
    starts = np.arange(out) * stride - pad
    return np.minimum(starts + window, size + pad) - starts


def _caffe_reduce(x: jax.Array, init: float, op, window: int, stride: int) -> jax.Array:
    (out_h, top, bottom), (out_w, left, right) = (
        _caffe_pool_axis(n, window, stride) for n in x.shape[1:3]
    )
    y = jax.lax.reduce_window(
        x,
        jnp.asarray(init, x.dtype),
        op,
        (1, window, window, 1),
        (1, stride, stride, 1),
        ((0, 0), (top, bottom), (left, right), (0, 0)),
    )
    return y[:, :out_h, :out_w]


def max_pool(x: jax.Array, window: int, stride: int, padding: str) -> jax.Array:
    if padding == "caffe":
        return _caffe_reduce(x, -jnp.inf, jax.lax.max, window, stride)
    return nn.max_pool(x, (window, window), strides=(stride, stride), padding="SAME")


def avg_pool(x: jax.Array, window: int, stride: int, padding: str) -> jax.Array:
    if padding == "caffe":
        total = _caffe_reduce(x, 0.0, jax.lax.add, window, stride)
        rows, cols = (_caffe_window_sizes(n, window, stride) for n in x.shape[1:3])
        return total / jnp.asarray(np.outer(rows, cols)[:, :, None], x.dtype)
    return nn.avg_pool(
        x, (window, window), strides=(stride, stride), padding="SAME", count_include_pad=False
    )
