"""Small shared pieces for the tests."""

import jax
import ml_collections
import numpy as np

from configs import mnist_bn


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
