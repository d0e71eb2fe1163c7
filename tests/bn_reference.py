"""An independent float64 numpy implementation of BatchNorm, and the inputs the BN
tests give both it and the module.

The reference is plain numpy written from Algorithms 1 and 2 of Ioffe & Szegedy (2015)
and their explicit backprop formulas; bn_repro.batch_norm is never used to produce
one. tests/test_batch_norm.py (Algorithm 1) and tests/test_batch_norm_inference.py
(Algorithm 2) use it.
"""

import math

import numpy as np

# Larger than the default so that a misplaced ε is visible at the tests' tolerances.
EPS = 1e-2

# Tolerances: every expected value is float64, so only the module's float32 rounding
# shows. Values are O(1-30) (sums over at most 96 values); the largest error measured
# was 21·eps32·max|expected| (∂ℓ/∂x), at most a fifth of any assertion's tolerance.
# rtol = atol = 1e-5 (84 eps32 at 1.0) is that rounding with a 5× margin.

# (input shape, feature_axes): dense BN, convolutional BN (one statistic per channel
# over N·H·W) and per-activation BN on a convolutional input.
LAYOUTS = {
    "dense": ((16, 5), (-1,)),
    "conv": ((8, 4, 3, 6), (-1,)),
    "conv_per_activation": ((8, 2, 3, 4), (-3, -2, -1)),
}
LAYOUT_IDS = list(LAYOUTS)


# ----------------------------------------------------------------------------------
# Numpy reference (float64)
# ----------------------------------------------------------------------------------


def reduce_axes(ndim, feature_axes):
    """Axes the statistics are taken over: every axis that is not a feature axis."""
    features = {a % ndim for a in feature_axes}
    return tuple(a for a in range(ndim) if a not in features)


def np_moments(x, axes):
    """Algorithm 1, steps 1-2: μ_B and the biased σ²_B (kept broadcastable)."""
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    return mu, var


def np_bn_forward(x, gamma, beta, axes, eps):
    """Algorithm 1: y = γ (x − μ_B) / sqrt(σ²_B + ε) + β."""
    mu, var = np_moments(x, axes)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def np_bn_backward(x, gamma, dy, axes, eps):
    """The paper's backprop formulas; returns ∂ℓ/∂x, ∂ℓ/∂γ, ∂ℓ/∂β."""
    m = math.prod(x.shape[a] for a in axes)
    mu, var = np_moments(x, axes)
    xc = x - mu
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = xc * inv_std

    def total(v):
        return v.sum(axis=axes, keepdims=True)

    d_xhat = dy * gamma
    d_var = total(d_xhat * xc) * -0.5 * (var + eps) ** -1.5
    d_mu = total(-d_xhat * inv_std) + d_var * total(-2.0 * xc) / m
    d_x = d_xhat * inv_std + d_var * 2.0 * xc / m + d_mu / m
    d_gamma = (dy * x_hat).sum(axis=axes)
    d_beta = dy.sum(axis=axes)
    return d_x, d_gamma, d_beta


def np_groups(x, group_size):
    """Consecutive groups of `group_size` examples (the whole batch for None)."""
    g = len(x) if group_size is None else group_size
    return [x[i : i + g] for i in range(0, len(x), g)]


def np_inference(x, gamma, beta, mean, var, eps):
    """Algorithm 2, step 3: the fixed affine map of inference."""
    scale = gamma / np.sqrt(var + eps)
    return scale * x + (beta - scale * mean)


# ----------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------


def f64(a):
    return np.asarray(a, dtype=np.float64)


def random_input(rng, shape, feature_axes):
    """float32 input with a different, non-trivial mean and scale per feature."""
    feature_shape = shape[len(shape) - len(feature_axes) :]
    loc = rng.uniform(-3.0, 3.0, feature_shape)
    scale = rng.uniform(0.5, 3.0, feature_shape)
    return (loc + scale * rng.standard_normal(shape)).astype(np.float32)


def random_variables(rng, feature_shape):
    """float32 params (γ of both signs, β ≠ 0) and non-trivial batch_stats."""
    sign = rng.choice([-1.0, 1.0], feature_shape)
    return {
        "params": {
            "scale": (sign * rng.uniform(0.5, 2.0, feature_shape)).astype(np.float32),
            "bias": rng.normal(0.0, 1.0, feature_shape).astype(np.float32),
        },
        "batch_stats": {
            "mean": rng.normal(0.0, 2.0, feature_shape).astype(np.float32),
            "var": rng.uniform(0.3, 4.0, feature_shape).astype(np.float32),
        },
    }


def setup(layout, seed=0):
    shape, feature_axes = LAYOUTS[layout]
    rng = np.random.default_rng(seed)
    feature_shape = shape[len(shape) - len(feature_axes) :]
    x = random_input(rng, shape, feature_axes)
    return rng, x, feature_axes, random_variables(rng, feature_shape)


def np_train_forward(x, variables, feature_axes, group_size):
    axes = reduce_axes(x.ndim, feature_axes)
    gamma, beta = f64(variables["params"]["scale"]), f64(variables["params"]["bias"])
    groups = np_groups(f64(x), group_size)
    return np.concatenate([np_bn_forward(xg, gamma, beta, axes, EPS) for xg in groups])
