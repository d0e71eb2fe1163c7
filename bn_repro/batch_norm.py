"""Batch Normalization, Algorithms 1 and 2 of Ioffe & Szegedy (2015).

The module keeps the paper's quantities in three Flax collections:

* ``params``: the learned scale γ (``scale``) and shift β (``bias``).
* ``batch_stats``: the ``mean`` and ``var`` that inference uses. While training
  they are exponential moving averages ("Using moving averages instead, we can
  track the accuracy of a model as it trains"); `population_statistics` replaces
  them with Algorithm 2's averages over training mini-batches.
* ``batch_moments``: μ_B and σ²_B of the last training call, recorded only when
  the caller makes this collection mutable. Algorithm 2 averages them.

Inference (``use_running_average=True``) applies the fixed affine map
y = γ / sqrt(Var[x] + ε) · x + (β − γ E[x] / sqrt(Var[x] + ε)), so one
example's output never depends on the other examples in its batch.
"""

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

# ε: the paper gives no value. 1e-3 is what the authors' TF-slim Inception code uses
# (inception_utils.batch_norm_epsilon) and is large enough to keep rsqrt well
# conditioned in float32 and bfloat16.
DEFAULT_EPSILON = 1e-3
# EMA momentum: only used to track accuracy while training (final numbers use
# Algorithm 2). 0.99 forgets a bad early estimate within a few hundred steps, which
# matters for short runs; TF-slim's 0.9997 suits multi-million-step runs.
DEFAULT_MOMENTUM = 0.99

BATCH_STATS = "batch_stats"
BATCH_MOMENTS = "batch_moments"


def minibatch_moments(
    x: jax.Array, feature_axes: Sequence[int], group_size: int | None
) -> tuple[jax.Array, jax.Array, int]:
    """Algorithm 1, steps 1-2: mini-batch mean μ_B and *biased* variance σ²_B.

    Statistics are taken over every axis that is not a feature axis: the batch for
    dense inputs, batch × height × width for convolutions (one statistic per feature
    map). With ``group_size=g`` the batch is split into consecutive groups of g
    examples, each normalised by its own statistics (a worker's mini-batch).

    Returns μ_B and σ²_B, shaped to broadcast against ``x`` split into groups
    (``(groups, g, ...)`` with the reduced axes kept as size 1), and m, the number of
    values behind each statistic.
    """
    batch = x.shape[0]
    g = batch if group_size is None else group_size
    if batch % g:
        raise ValueError(
            f"BatchNorm group_size={g} does not divide the batch of {batch} examples; "
            "choose a group size that divides the per-step batch (or leave it unset "
            "for statistics over the whole batch)."
        )
    features = {a % x.ndim for a in feature_axes}
    grouped = x.reshape((batch // g, g) + x.shape[1:])
    # Axis i of x is axis i + 1 of `grouped`; axis 0 of `grouped` indexes groups.
    reduce = (1,) + tuple(a + 1 for a in range(1, x.ndim) if a not in features)
    m = g * math.prod(x.shape[a - 1] for a in reduce[1:])
    x32 = grouped.astype(jnp.float32)
    mean = jnp.mean(x32, axis=reduce, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=reduce, keepdims=True)
    return mean, var, m


class BatchNorm(nn.Module):
    """The BN transform y = γ x̂ + β with x̂ = (x − μ) / sqrt(σ² + ε).

    Attributes:
      use_running_average: if True, normalise with ``batch_stats`` (inference);
        if False, with the statistics of the current mini-batch (Algorithm 1).
      momentum: decay of the moving averages kept for tracking accuracy.
      epsilon: ε added to the variance.
      group_size: examples per statistic; None means the whole (global) batch.
      feature_axes: axes with their own γ, β and statistics. (-1,) is the
        convolutional BN of the paper (per feature map); all non-batch axes give
        per-activation BN.
      use_scale, use_bias: learn γ and β.
    """

    use_running_average: bool | None = None
    momentum: float = DEFAULT_MOMENTUM
    epsilon: float = DEFAULT_EPSILON
    group_size: int | None = None
    feature_axes: Sequence[int] = (-1,)
    use_scale: bool = True
    use_bias: bool = True
    scale_init: Callable[..., jax.Array] = nn.initializers.ones
    bias_init: Callable[..., jax.Array] = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jax.Array, use_running_average: bool | None = None) -> jax.Array:
        use_running_average = nn.merge_param(
            "use_running_average", self.use_running_average, use_running_average
        )
        features = {a % x.ndim for a in self.feature_axes}
        feature_shape = tuple(x.shape[a] for a in sorted(features))
        # Shape that broadcasts a per-feature vector against x.
        broadcast = tuple(x.shape[a] if a in features else 1 for a in range(x.ndim))

        ema_mean = self.variable(BATCH_STATS, "mean", jnp.zeros, feature_shape, jnp.float32)
        ema_var = self.variable(BATCH_STATS, "var", jnp.ones, feature_shape, jnp.float32)

        if use_running_average:
            mean = ema_mean.value.reshape(broadcast)
            var = ema_var.value.reshape(broadcast)
            y = x.astype(jnp.float32)
        else:
            batch_mean, batch_var, m = minibatch_moments(x, tuple(features), self.group_size)
            group_means = batch_mean.reshape((-1,) + feature_shape)
            group_vars = batch_var.reshape((-1,) + feature_shape)
            if self.is_mutable_collection(BATCH_STATS) and not self.is_initializing():
                unbiased = m / max(m - 1, 1) * jnp.mean(group_vars, axis=0)
                ema_mean.value = jax.lax.stop_gradient(
                    self.momentum * ema_mean.value
                    + (1 - self.momentum) * jnp.mean(group_means, axis=0)
                )
                ema_var.value = jax.lax.stop_gradient(
                    self.momentum * ema_var.value + (1 - self.momentum) * unbiased
                )
            if self.is_mutable_collection(BATCH_MOMENTS):
                self.put_variable(BATCH_MOMENTS, "mean", jax.lax.stop_gradient(group_means))
                self.put_variable(BATCH_MOMENTS, "var", jax.lax.stop_gradient(group_vars))
                self.put_variable(BATCH_MOMENTS, "count", jnp.asarray(m, jnp.float32))
            mean, var = batch_mean, batch_var
            y = x.astype(jnp.float32).reshape(batch_mean.shape[:1] + (-1,) + x.shape[1:])

        # x̂ = (x − μ) / sqrt(σ² + ε);  y = γ x̂ + β, folded into one multiply-add.
        multiplier = jax.lax.rsqrt(var + self.epsilon)
        if self.use_scale:
            gamma = self.param("scale", self.scale_init, feature_shape, jnp.float32)
            multiplier = multiplier * gamma.reshape(broadcast)
        y = (y - mean) * multiplier
        if self.use_bias:
            beta = self.param("bias", self.bias_init, feature_shape, jnp.float32)
            y = y + beta.reshape(broadcast)
        return y.reshape(x.shape).astype(x.dtype)


def population_statistics(batch_moments_fn: Callable[[Any], Any], batches: Iterable[Any]) -> Any:
    """Algorithm 2, step 2: population statistics from K training mini-batches.

    Args:
      batch_moments_fn: runs the model in training mode on one batch and returns
        its ``batch_moments`` collection (μ_B, σ²_B and m of every BN layer).
      batches: the training batches. Each group of ``group_size`` examples in a
        batch is one mini-batch B of the paper.

    Returns:
      A ``batch_stats`` tree with E[x] = mean of the μ_B and
      Var[x] = m / (m − 1) · mean of the σ²_B, ready for inference.
    """
    total = None
    for batch in batches:
        summed = jax.tree.map(_sum_over_groups, batch_moments_fn(batch), is_leaf=_is_layer)
        total = summed if total is None else jax.tree.map(_add, total, summed, is_leaf=_is_layer)
    if total is None:
        raise ValueError("population_statistics needs at least one training batch (K >= 1).")
    return jax.tree.map(_expectations, total, is_leaf=_is_layer)


def _is_layer(node: Any) -> bool:
    return isinstance(node, dict) and "count" in node


def _sum_over_groups(layer: dict) -> dict:
    return {
        "mean": jnp.sum(layer["mean"], axis=0),
        "var": jnp.sum(layer["var"], axis=0),
        "count": layer["count"],
        "groups": layer["mean"].shape[0],
    }


def _add(a: dict, b: dict) -> dict:
    if float(a["count"]) != float(b["count"]):
        raise ValueError(
            f"population_statistics got mini-batches of different sizes (m={float(a['count']):g}"
            f" and m={float(b['count']):g} values per statistic); Algorithm 2 averages batches of"
            " one size m. Drop the smaller remainder batch."
        )
    return {
        "mean": a["mean"] + b["mean"],
        "var": a["var"] + b["var"],
        "count": b["count"],
        "groups": a["groups"] + b["groups"],
    }


def _expectations(layer: dict) -> dict:
    m, k = layer["count"], layer["groups"]
    if float(m) < 2:
        raise ValueError(
            "population_statistics needs at least 2 values per statistic (m >= 2) for the "
            "unbiased variance m/(m-1)·σ²; use a larger group_size."
        )
    return {"mean": layer["mean"] / k, "var": m / (m - 1) * layer["var"] / k}
