"""Small shared pieces for the tests."""

import jax
import ml_collections
import numpy as np

from bn_repro.configs import mnist_bn

EPS32 = float(np.finfo(np.float32).eps)  # 2⁻²³ ≈ 1.19e-7, one float32 ulp at 1.0


def small_mnist_config(**overrides) -> ml_collections.ConfigDict:
    """The MNIST-with-BN config shrunk to a few hundred steps."""
    config = mnist_bn.get_config()
    config.total_steps = 200
    config.steps_per_loop = 50
    config.eval_every_steps = 100
    config.checkpoint_every_steps = 100
    config.log_every_steps = 50
    config.eval_batch_size = 2000
    config.batch_size = 64  # divisible by the 8 fake devices
    for key, value in overrides.items():
        config[key] = value
    return config


def assert_trees_equal(a, b) -> None:
    """Bitwise equality of two pytrees of arrays."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def assert_close_f32(actual, expected, k: float) -> None:
    """|actual − expected| ≤ k · eps32 · max|expected|, for every element.

    The rounding of a float32 sum or matrix product scales with its terms, not with
    its result: a small entry computed next to large ones carries their error, so the
    tolerance is absolute and scaled to the largest expected value (a relative one
    fails on near-zero entries). The caller states why its k explains the rounding.
    """
    expected = np.asarray(expected, np.float64)
    atol = k * EPS32 * float(np.max(np.abs(expected), initial=0.0))
    np.testing.assert_allclose(
        np.asarray(actual, np.float64), expected, rtol=0, atol=atol, err_msg=f"k={k}"
    )
