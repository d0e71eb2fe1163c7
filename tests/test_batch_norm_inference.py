"""BatchNorm's Algorithm 2 against an independent float64 numpy implementation of the
paper (tests/bn_reference.py): population statistics, and inference as a fixed affine
map.

Every expected value comes from plain numpy written from Algorithms 1 and 2 of Ioffe &
Szegedy (2015); the module under test is never used to produce a reference. Algorithm
1 (training mode): tests/test_batch_norm.py.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bn_repro.batch_norm import DEFAULT_EPSILON, BatchNorm, population_statistics
from tests.bn_reference import (
    EPS,
    LAYOUT_IDS,
    LAYOUTS,
    f64,
    np_bn_forward,
    np_groups,
    np_inference,
    np_moments,
    random_input,
    random_variables,
    reduce_axes,
    setup,
)

# ----------------------------------------------------------------------------------
# 1. Algorithm 2: population statistics
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


# ----------------------------------------------------------------------------------
# 2. Inference
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
