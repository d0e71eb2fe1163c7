"""The train state, and a run's first one: the optimizer (SGD with momentum, L2 on
kernels) and the model's initial variables, ``params`` and BN's ``batch_stats``."""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from bn_repro import cpu_compiler_options
from bn_repro.batch_norm import BATCH_STATS
from bn_repro.config_checks import check_choice

OPTIMIZERS = ("sgd",)  # with config.momentum; 0 is plain SGD


class TrainState(train_state.TrainState):
    """Flax's train state plus BN's moving averages, which are not trained by SGD."""

    batch_stats: Any = None


def is_kernel(params: Any) -> Any:
    """True for the weights L2 acts on: convolution and classifier kernels."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: getattr(path[-1], "key", None) == "kernel", params
    )


def kernel_norm(params: Any) -> jax.Array:
    """The Euclidean norm of all kernels together (what L2 shrinks)."""
    masks = jax.tree.leaves(is_kernel(params))
    kernels = [p for p, kernel in zip(jax.tree.leaves(params), masks, strict=True) if kernel]
    return jnp.sqrt(sum(jnp.sum(jnp.square(k.astype(jnp.float32))) for k in kernels))


def create_optimizer(
    config: ml_collections.ConfigDict, learning_rate_fn: optax.Schedule
) -> optax.GradientTransformation:
    check_choice("optimizer", config.optimizer, OPTIMIZERS)
    # L2 weight cost λ/2·|W|² on kernels only, added to the gradient before momentum.
    return optax.chain(
        optax.add_decayed_weights(config.weight_decay, mask=is_kernel),
        optax.sgd(learning_rate_fn, momentum=config.momentum or None, nesterov=config.nesterov),
    )


def initial_variables(
    model: nn.Module,
    config: ml_collections.ConfigDict,
    image_shape: tuple[int, ...],
    platform: str | None,
) -> dict[str, Any]:
    """The model's initial ``params`` and ``batch_stats`` for ``config.seed``, compiled
    for the devices of ``platform``; None when traced inside another function (under
    `jax.eval_shape` or an outer jit, where compiler options are refused)."""
    dummy = jnp.zeros((1, *image_shape), jnp.float32)
    # Compiled: running a deep network's initialisation op by op takes minutes on CPU.
    options = cpu_compiler_options.for_initialisation(platform) if platform else None
    init = jax.jit(functools.partial(model.init, train=False), compiler_options=options)
    return init(jax.random.key(config.seed), dummy)


def create_train_state(
    model: nn.Module,
    config: ml_collections.ConfigDict,
    variables: dict[str, Any],
    learning_rate_fn: optax.Schedule,
) -> TrainState:
    return TrainState.create(
        apply_fn=model.apply,
        params=variables["params"],
        batch_stats=variables.get(BATCH_STATS, {}),
        tx=create_optimizer(config, learning_rate_fn),
    )
