"""Small BN-Inception models for the tests: configs, shape-only initialisation and
random variables filled in numpy (no compiled init)."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from bn_repro import models
from bn_repro.batch_norm import BATCH_STATS
from bn_repro.configs import default


def make_config(**overrides):
    config = default.get_config()
    config.model = "inception"
    config.update(overrides)
    return config


SMALL = {"stem": "small", "width_multiplier": 0.25, "num_classes": 10}
IMAGENET = {"image_size": 224, "num_classes": 1000}


def abstract_init(model: nn.Module, shape: tuple) -> dict:
    return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape), train=False))


def random_variables(model: nn.Module, shape: tuple) -> dict:
    """Variables of ``model`` filled in numpy: He-scaled kernels, γ, β and population
    statistics away from their initial values. (Compiling the real init takes ~20 s.)"""
    rng = np.random.default_rng(0)

    def fill(path, leaf):
        name, size = path[-1].key, leaf.shape
        if name == "kernel":
            value = rng.normal(size=size) * math.sqrt(2 / math.prod(size[:-1]))
        elif name in ("scale", "var"):
            value = 1 + rng.uniform(size=size)
        else:  # β, biases, means
            value = 0.1 * rng.normal(size=size)
        return jnp.asarray(value, jnp.float32)

    return jax.tree_util.tree_map_with_path(fill, abstract_init(model, shape))


def small_model_and_variables(**overrides) -> tuple:
    """A width-0.25 small-stem model, random variables and four 28×28×1 images."""
    model = models.create_model(make_config(**{**SMALL, **overrides}))
    x = jax.random.uniform(jax.random.key(1), (4, 28, 28, 1))
    return model, random_variables(model, x.shape), x


def train_forward(model: nn.Module):
    """The training-mode forward pass, compiled, with the dropout key as an argument."""

    def forward(variables, x, key):
        logits, _ = model.apply(
            variables, x, train=True, mutable=[BATCH_STATS], rngs={"dropout": key}
        )
        return logits

    return jax.jit(forward)
