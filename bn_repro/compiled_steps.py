"""A run's jitted training loop and evaluation step, built for a target platform.

The trainer (bn_repro/train.py) calls them on its devices; scripts/aot_compile.py and
the tests lower and compile the very same functions for a TPU or GPU from a CPU host,
with abstract inputs (`abstract_state`, `batch_specs`) that allocate nothing.

Layout: a one-axis mesh ("data"); the state is replicated and the global batch is
sharded over the axis. Under `jax.jit` a mean over the batch axis is a mean over the
global batch, so BN's statistics are cross-replica without any extra code.
"""

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from bn_repro import cpu_compiler_options, platforms
from bn_repro.data import distortions, pixels
from bn_repro.steps import Batch, eval_step, train_loop
from bn_repro.train_state import TrainState, create_train_state, initial_variables


@dataclasses.dataclass(frozen=True)
class Layout:
    """The mesh of one run and the shardings of its state and batches."""

    mesh: jax.sharding.Mesh
    replicated: NamedSharding  # the train state
    batch: NamedSharding  # one global batch, split on its first axis
    stacked_batch: NamedSharding  # a stack of batches: (steps, batch, ...)


def data_layout(devices: Sequence[jax.Device]) -> Layout:
    mesh = jax.make_mesh(
        (len(devices),), ("data",), axis_types=(jax.sharding.AxisType.Auto,), devices=devices
    )
    return Layout(
        mesh,
        NamedSharding(mesh, P()),
        NamedSharding(mesh, P("data")),
        NamedSharding(mesh, P(None, "data")),
    )


def jit_steps(
    config: ml_collections.ConfigDict,
    layout: Layout,
    platform: str,
    learning_rate_fn: optax.Schedule,
) -> tuple[Any, Any]:
    """The jitted training loop (bn_repro/steps.py, the state donated) and evaluation
    step, traced under ``config.matmul_precision`` and compiled with the options of a
    ``platform`` target (bn_repro/cpu_compiler_options.py)."""
    options = cpu_compiler_options.for_steps(config, platform)
    input_range = pixels.input_range_of(config)
    loop = functools.partial(
        train_loop,
        learning_rate_fn=learning_rate_fn,
        dropout_key=jax.random.key(config.seed + 1),
        input_range=input_range,
        distort=distortions.from_config(config),
    )
    jitted_loop = platforms.jit(
        loop,
        config,
        in_shardings=(layout.replicated, layout.stacked_batch),
        out_shardings=(layout.replicated, layout.replicated),
        donate_argnums=0,
        compiler_options=options,
    )
    jitted_eval = platforms.jit(
        functools.partial(eval_step, input_range=input_range),
        config,
        out_shardings=layout.replicated,
        compiler_options=options,
    )
    return jitted_loop, jitted_eval


def abstract_state(
    model: Any,
    config: ml_collections.ConfigDict,
    image_shape: tuple[int, ...],
    learning_rate_fn: optax.Schedule,
    sharding: jax.sharding.Sharding,
) -> TrainState:
    """The train state as shapes and dtypes with ``sharding``: nothing is allocated."""

    def state() -> TrainState:
        # No CPU options: initialisation is traced inside this function, not compiled.
        variables = initial_variables(model, config, image_shape, platform=None)
        return create_train_state(model, config, variables, learning_rate_fn)

    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), jax.eval_shape(state)
    )


def batch_specs(
    config: ml_collections.ConfigDict,
    image_shape: tuple[int, ...],
    layout: Layout,
    steps: int = 1,
) -> tuple[Batch, Batch]:
    """Abstract inputs of the training loop (``steps`` stacked batches) and of the
    evaluation step (one batch of ``config.eval_batch_size``), the images uint8 as
    every dataset sends them (bn_repro/data/pixels.py)."""

    def spec(shape: tuple, dtype: jnp.dtype, sharding: NamedSharding) -> jax.ShapeDtypeStruct:
        return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)

    stack, eval_size = (steps, config.batch_size), (config.eval_batch_size,)
    train = {
        "image": spec((*stack, *image_shape), pixels.HOST_DTYPE, layout.stacked_batch),
        "label": spec(stack, jnp.int32, layout.stacked_batch),
    }
    evaluation = {
        "image": spec((*eval_size, *image_shape), pixels.HOST_DTYPE, layout.batch),
        "label": spec(eval_size, jnp.int32, layout.batch),
        "mask": spec(eval_size, jnp.bool_, layout.batch),
    }
    return train, evaluation
