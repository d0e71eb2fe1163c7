"""BatchNorm against an independent float64 numpy implementation of the paper.

Every expected value below comes from plain numpy written from Algorithms 1 and 2 of
Ioffe & Szegedy (2015) and their explicit backprop formulas; the module under test is
never used to produce a reference.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from bn_repro.batch_norm import (
    DEFAULT_EPSILON,
    DEFAULT_MOMENTUM,
    BatchNorm,
    minibatch_moments,
    population_statistics,
)

# Larger than the default so that a misplaced ε is visible at the tolerances below.
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


# ----------------------------------------------------------------------------------
# 1. Training-mode forward pass (Algorithm 1)
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUT_IDS)
def test_training_forward_matches_numpy(layout):
    _, x, feature_axes, variables = setup(layout)
    model = BatchNorm(use_running_average=False, epsilon=EPS, feature_axes=feature_axes)
    y = model.apply(variables, jnp.asarray(x))
    assert y.shape == x.shape and y.dtype == jnp.float32
    expected = np_train_forward(x, variables, feature_axes, None)
    np.testing.assert_allclose(f64(y), expected, rtol=1e-5, atol=1e-5)


def test_conv_statistics_span_batch_and_space():
    """m = N·H·W for convolutional BN; one statistic per channel."""
    x = random_input(np.random.default_rng(1), (8, 4, 3, 6), (-1,))
    mean, var, m = minibatch_moments(jnp.asarray(x), (-1,), None)
    assert m == 8 * 4 * 3
    mu, sigma2 = np_moments(f64(x), (0, 1, 2))
    np.testing.assert_allclose(f64(mean).reshape(6), mu.reshape(6), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f64(var).reshape(6), sigma2.reshape(6), rtol=1e-5)


def test_init_creates_identity_params_and_does_not_update_stats():
    x = random_input(np.random.default_rng(2), (8, 4, 3, 6), (-1,))
    variables = BatchNorm(use_running_average=False).init(jax.random.key(0), jnp.asarray(x))
    np.testing.assert_array_equal(variables["params"]["scale"], np.ones(6))
    np.testing.assert_array_equal(variables["params"]["bias"], np.zeros(6))
    # x has mean far from 0 and variance far from 1: initialisation must not use it.
    np.testing.assert_array_equal(variables["batch_stats"]["mean"], np.zeros(6))
    np.testing.assert_array_equal(variables["batch_stats"]["var"], np.ones(6))


# ----------------------------------------------------------------------------------
# 2. Gradients against the paper's backprop formulas
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("group_size", [None, 2])
@pytest.mark.parametrize("layout", LAYOUT_IDS)
def test_gradients_match_paper_formulas(layout, group_size):
    rng, x, feature_axes, variables = setup(layout)
    weights = rng.standard_normal(x.shape).astype(np.float32)
    model = BatchNorm(
        use_running_average=False, epsilon=EPS, feature_axes=feature_axes, group_size=group_size
    )

    def loss(params, x):
        y = model.apply({"params": params, "batch_stats": variables["batch_stats"]}, x)
        return jnp.sum(y * weights)

    d_params, d_x = jax.jit(jax.grad(loss, argnums=(0, 1)))(variables["params"], jnp.asarray(x))

    axes = reduce_axes(x.ndim, feature_axes)
    gamma = f64(variables["params"]["scale"])
    per_group = [
        np_bn_backward(xg, gamma, dyg, axes, EPS)
        for xg, dyg in zip(
            np_groups(f64(x), group_size), np_groups(f64(weights), group_size), strict=True
        )
    ]
    expected_dx = np.concatenate([dx for dx, _, _ in per_group])
    expected_dgamma = sum(dg for _, dg, _ in per_group)
    expected_dbeta = sum(db for _, _, db in per_group)

    np.testing.assert_allclose(f64(d_x), expected_dx, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(f64(d_params["scale"]), expected_dgamma, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(f64(d_params["bias"]), expected_dbeta, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------
# 3. group_size
# ----------------------------------------------------------------------------------


# Dense BN needs g >= 2 (m = g); convolutional BN works with g = 1 (m = H·W).
@pytest.mark.parametrize(
    "layout, group_size", [("dense", 2), ("dense", 4), ("dense", 8), ("conv", 1), ("conv", 4)]
)
def test_group_statistics_equal_per_group_numpy(layout, group_size):
    _, x, feature_axes, variables = setup(layout)
    model = BatchNorm(
        use_running_average=False, epsilon=EPS, feature_axes=feature_axes, group_size=group_size
    )
    y = model.apply(variables, jnp.asarray(x))
    expected = np_train_forward(x, variables, feature_axes, group_size)
    np.testing.assert_allclose(f64(y), expected, rtol=1e-5, atol=1e-5)


def test_grouped_output_differs_from_whole_batch():
    """Guards the test above: groups really change the result for this data."""
    _, x, feature_axes, variables = setup("conv")
    whole = np_train_forward(x, variables, feature_axes, None)
    grouped = np_train_forward(x, variables, feature_axes, 2)
    assert np.max(np.abs(whole - grouped)) > 1e-2


@pytest.mark.parametrize("group_size, batch", [(3, 8), (16, 8), (5, 12)])
def test_group_size_not_dividing_batch_raises(group_size, batch):
    x = jnp.ones((batch, 2, 2, 3))
    model = BatchNorm(use_running_average=False, group_size=group_size)
    with pytest.raises(ValueError, match=rf"group_size={group_size}\b.*\b{batch} examples"):
        model.init(jax.random.key(0), x)


# ----------------------------------------------------------------------------------
# 4. Moving averages
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("momentum", [DEFAULT_MOMENTUM, 0.7])
@pytest.mark.parametrize("group_size", [None, 2])
@pytest.mark.parametrize("layout", LAYOUT_IDS)
def test_ema_update_uses_unbiased_variance(layout, group_size, momentum):
    _, x, feature_axes, variables = setup(layout)
    model = BatchNorm(
        use_running_average=False,
        epsilon=EPS,
        momentum=momentum,
        feature_axes=feature_axes,
        group_size=group_size,
    )
    y, updates = model.apply(variables, jnp.asarray(x), mutable=["batch_stats"])

    axes = reduce_axes(x.ndim, feature_axes)
    moments = [np_moments(xg, axes) for xg in np_groups(f64(x), group_size)]
    m = math.prod(np_groups(x, group_size)[0].shape[a] for a in axes)
    batch_mean = np.mean([mu for mu, _ in moments], axis=0).squeeze(axes)
    batch_var = m / (m - 1) * np.mean([v for _, v in moments], axis=0).squeeze(axes)
    old = variables["batch_stats"]
    expected_mean = momentum * f64(old["mean"]) + (1 - momentum) * batch_mean
    expected_var = momentum * f64(old["var"]) + (1 - momentum) * batch_var

    np.testing.assert_allclose(f64(updates["batch_stats"]["mean"]), expected_mean, rtol=1e-5)
    np.testing.assert_allclose(f64(updates["batch_stats"]["var"]), expected_var, rtol=1e-5)
    # The output still uses the mini-batch statistics, not the moving averages.
    expected_y = np_train_forward(x, variables, feature_axes, group_size)
    np.testing.assert_allclose(f64(y), expected_y, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------
# 5. Algorithm 2: population statistics
# ----------------------------------------------------------------------------------

# (layout, group_size, K): per-channel and per-activation BN, with and without groups.
POPULATION_CASES = [
    ("dense", None, 40),
    ("dense", 4, 40),
    ("conv", None, 20),
    ("conv", 2, 20),
    ("conv_per_activation", None, 60),
    ("conv_per_activation", 4, 60),
]


def sample_batches(rng, shape, feature_axes, k):
    """K batches from N(loc, scale²), with loc and scale known per feature."""
    feature_shape = shape[len(shape) - len(feature_axes) :]
    loc = rng.uniform(-3.0, 3.0, feature_shape)
    scale = rng.uniform(0.5, 3.0, feature_shape)
    batches = [(loc + scale * rng.standard_normal(shape)).astype(np.float32) for _ in range(k)]
    return batches, loc, scale**2


@pytest.mark.parametrize("layout, group_size, k", POPULATION_CASES)
def test_population_statistics(layout, group_size, k):
    shape, feature_axes = LAYOUTS[layout]
    rng = np.random.default_rng(3)
    batches, true_mean, true_var = sample_batches(rng, shape, feature_axes, k)
    feature_shape = true_mean.shape
    model = BatchNorm(feature_axes=feature_axes, group_size=group_size)
    variables = random_variables(rng, feature_shape)

    @jax.jit
    def batch_moments_fn(batch):
        _, state = model.apply(
            variables, batch, use_running_average=False, mutable=["batch_moments"]
        )
        return state["batch_moments"]

    stats = population_statistics(batch_moments_fn, (jnp.asarray(b) for b in batches))

    # Exact: average μ_B and σ²_B over all K·groups mini-batches, Var = m/(m−1)·E[σ²_B].
    axes = reduce_axes(len(shape), feature_axes)
    groups = [xg for b in batches for xg in np_groups(f64(b), group_size)]
    m = math.prod(groups[0].shape[a] for a in axes)
    moments = [np_moments(xg, axes) for xg in groups]
    expected_mean = np.mean([mu for mu, _ in moments], axis=0).squeeze(axes)
    expected_var = m / (m - 1) * np.mean([v for _, v in moments], axis=0).squeeze(axes)
    assert stats["mean"].shape == stats["var"].shape == feature_shape
    np.testing.assert_allclose(f64(stats["mean"]), expected_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f64(stats["var"]), expected_var, rtol=1e-5)

    # Approximate: within 5 standard errors of the true parameters.
    n = k * math.prod(shape[a] for a in axes)
    np.testing.assert_array_less(np.abs(expected_mean - true_mean), 5 * np.sqrt(true_var / n))
    np.testing.assert_array_less(
        np.abs(expected_var - true_var), 5 * true_var * np.sqrt(2 / (n - 1))
    )

    # The result is a drop-in batch_stats collection for inference.
    inference_vars = {"params": variables["params"], "batch_stats": stats}
    y = model.apply(inference_vars, jnp.asarray(batches[0]), use_running_average=True)
    p = variables["params"]
    expected_y = np_inference(
        f64(batches[0]),
        f64(p["scale"]),
        f64(p["bias"]),
        expected_mean,
        expected_var,
        DEFAULT_EPSILON,
    )
    np.testing.assert_allclose(f64(y), expected_y, rtol=1e-5, atol=1e-5)


class TwoBatchNorms(nn.Module):
    """Two BN layers with different inputs and group sizes."""

    @nn.compact
    def __call__(self, x):
        h = BatchNorm(use_running_average=False, name="bn_a")(x)
        return BatchNorm(use_running_average=False, group_size=4, name="bn_b")(3.0 * h + 1.0)


class Nested(nn.Module):
    @nn.compact
    def __call__(self, x):
        return TwoBatchNorms(name="block")(x)


def test_population_statistics_nested_layers():
    """Each BN layer of a model gets its own Algorithm 2 statistics and its own m."""
    rng = np.random.default_rng(4)
    batches = [rng.normal(1.0, 2.0, (8, 3)).astype(np.float32) for _ in range(3)]
    model = Nested()
    variables = model.init(jax.random.key(0), jnp.asarray(batches[0]))

    def batch_moments_fn(batch):
        _, state = model.apply(variables, batch, mutable=["batch_moments"])
        return state["batch_moments"]

    stats = population_statistics(batch_moments_fn, [jnp.asarray(b) for b in batches])

    # bn_a sees x (one group, m = 8); bn_b sees 3·BN(x) + 1 in groups of 4 (m = 4).
    inputs_a = [f64(b) for b in batches]
    inputs_b = [3.0 * np_bn_forward(a, 1.0, 0.0, (0,), DEFAULT_EPSILON) + 1.0 for a in inputs_a]
    for name, inputs, group_size in (("bn_a", inputs_a, None), ("bn_b", inputs_b, 4)):
        groups = [xg for b in inputs for xg in np_groups(b, group_size)]
        m = len(groups[0])
        expected_mean = np.mean([xg.mean(axis=0) for xg in groups], axis=0)
        expected_var = m / (m - 1) * np.mean([xg.var(axis=0) for xg in groups], axis=0)
        layer = stats["block"][name]
        np.testing.assert_allclose(f64(layer["mean"]), expected_mean, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(f64(layer["var"]), expected_var, rtol=1e-4)


def test_population_statistics_needs_a_batch():
    with pytest.raises(ValueError, match="at least one"):
        population_statistics(lambda batch: {}, [])


# ----------------------------------------------------------------------------------
# 6. Inference
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUT_IDS)
def test_inference_is_fixed_affine_map(layout):
    _, x, feature_axes, variables = setup(layout)
    model = BatchNorm(use_running_average=True, epsilon=EPS, feature_axes=feature_axes)
    y = model.apply(variables, jnp.asarray(x))
    p, s = variables["params"], variables["batch_stats"]
    expected = np_inference(
        f64(x), f64(p["scale"]), f64(p["bias"]), f64(s["mean"]), f64(s["var"]), EPS
    )
    np.testing.assert_allclose(f64(y), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layout", LAYOUT_IDS)
def test_inference_example_independent_of_batch(layout):
    rng, x, feature_axes, variables = setup(layout)
    # group_size does not apply at inference: a batch of 1 must work.
    model = BatchNorm(
        use_running_average=True, epsilon=EPS, feature_axes=feature_axes, group_size=4
    )
    others = 10.0 * random_input(rng, x.shape, feature_axes)
    others[3] = x[3]
    alone = model.apply(variables, jnp.asarray(x[3:4]))
    in_batch = model.apply(variables, jnp.asarray(x))[3:4]
    in_other_batch = model.apply(variables, jnp.asarray(others))[3:4]
    np.testing.assert_array_equal(alone, in_batch)
    np.testing.assert_array_equal(alone, in_other_batch)


def test_inference_does_not_touch_batch_stats():
    _, x, feature_axes, variables = setup("conv")
    model = BatchNorm(use_running_average=True, feature_axes=feature_axes)
    _, updates = model.apply(variables, jnp.asarray(x), mutable=["batch_stats"])
    for key in ("mean", "var"):
        np.testing.assert_array_equal(updates["batch_stats"][key], variables["batch_stats"][key])


# ----------------------------------------------------------------------------------
# 7. Batch sharded over 8 devices: cross-replica statistics
# ----------------------------------------------------------------------------------

SHARDED_LAYOUTS = {"dense": ((32, 5), (-1,)), "conv": ((16, 4, 3, 6), (-1,))}


@pytest.mark.parametrize("group_size", [None, 2, 8])
@pytest.mark.parametrize("layout", list(SHARDED_LAYOUTS))
def test_sharded_training_matches_unsharded(layout, group_size):
    assert jax.device_count() == 8
    shape, feature_axes = SHARDED_LAYOUTS[layout]
    rng = np.random.default_rng(5)
    x = random_input(rng, shape, feature_axes)
    variables = random_variables(rng, shape[-1:])
    model = BatchNorm(
        use_running_average=False, epsilon=EPS, feature_axes=feature_axes, group_size=group_size
    )

    @jax.jit
    def train_step(variables, x):
        return model.apply(variables, x, mutable=["batch_stats"])

    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    x_sharded = jax.device_put(jnp.asarray(x), NamedSharding(mesh, P("data")))
    assert len(x_sharded.addressable_shards) == 8
    y_sharded, stats_sharded = train_step(variables, x_sharded)
    y_plain, stats_plain = train_step(variables, jnp.asarray(x))

    np.testing.assert_allclose(f64(y_sharded), f64(y_plain), rtol=1e-5, atol=1e-5)
    for key in ("mean", "var"):
        np.testing.assert_allclose(
            f64(stats_sharded["batch_stats"][key]),
            f64(stats_plain["batch_stats"][key]),
            rtol=1e-5,
            atol=1e-6,
        )
    # Both equal the numpy reference over the global batch (not per-device statistics).
    expected = np_train_forward(x, variables, feature_axes, group_size)
    np.testing.assert_allclose(f64(y_sharded), expected, rtol=1e-5, atol=1e-5)


def test_population_statistics_refuses_mixed_batch_sizes():
    """Algorithm 2 averages mini-batches of one size m; a remainder batch is an error."""
    rng = np.random.default_rng(0)
    big = jnp.asarray(rng.normal(size=(8, 3)), jnp.float32)
    small = jnp.asarray(rng.normal(size=(2, 3)), jnp.float32)
    model = BatchNorm(use_running_average=False)
    variables = model.init(jax.random.key(0), big)

    def moments(x):
        return model.apply(variables, x, mutable=["batch_moments"])[1]["batch_moments"]

    for order in ([big, small], [small, big]):
        with pytest.raises(ValueError, match="m=8 and m=2|m=2 and m=8"):
            population_statistics(moments, order)
