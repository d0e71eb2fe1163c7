"""BatchNorm in training mode (Algorithm 1) against an independent float64 numpy
implementation of the paper (tests/bn_reference.py): the forward pass, the gradients,
``group_size``, the moving averages, and a batch sharded over 8 devices.

Every expected value comes from plain numpy written from Algorithm 1 of Ioffe &
Szegedy (2015) and its explicit backprop formulas; the module under test is never used
to produce a reference. Algorithm 2: tests/test_batch_norm_inference.py.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from bn_repro.batch_norm import DEFAULT_MOMENTUM, BatchNorm, minibatch_moments
from tests.bn_reference import (
    EPS,
    LAYOUT_IDS,
    f64,
    np_bn_backward,
    np_groups,
    np_moments,
    np_train_forward,
    random_input,
    random_variables,
    reduce_axes,
    setup,
)

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
# 5. Batch sharded over 8 devices: cross-replica statistics
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
