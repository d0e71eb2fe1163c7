"""BN-Inception's layers (bn_repro/models/inception.py, conv_layer.py, lrn.py, conv.py):
BN before every nonlinearity, the sigmoid, LRN and dropout, Algorithm 2's moments,
per-activation BN, initial weights, and convolutions as matrix products on CPU.

What runs uses 28-32 px inputs and width 0.25; the rest is shape-only
(`jax.eval_shape`, `jax.make_jaxpr`). Figure 5's structure and counts:
tests/test_inception.py.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bn_repro import models
from bn_repro.batch_norm import BATCH_MOMENTS, BATCH_STATS, BatchNorm
from bn_repro.models import inception
from bn_repro.models import summary as model_summary
from bn_repro.models.activations import Nonlinearity
from bn_repro.models.conv import Conv
from tests.helpers import assert_close_f32
from tests.inception_helpers import (
    SMALL,
    abstract_init,
    make_config,
    small_model_and_variables,
    train_forward,
)


def called_modules(model: nn.Module, variables: dict, x: jax.Array) -> list[str]:
    """Class names of every module method a training forward pass calls (shapes only)."""
    calls = []

    def record(next_fun, args, kwargs, context):
        calls.append(type(context.module).__name__)
        return next_fun(*args, **kwargs)

    def forward(v, x):
        with nn.intercept_methods(record):
            return model.apply(
                v, x, train=True, mutable=[BATCH_STATS], rngs={"dropout": jax.random.key(0)}
            )

    jax.eval_shape(forward, variables, x)
    return calls


def test_no_lrn_and_no_dropout_when_disabled():
    model, variables, x = small_model_and_variables(use_lrn=False, dropout_rate=0.0)
    calls = called_modules(model, variables, x)
    assert "LocalResponseNorm" not in calls and "Dropout" not in calls
    forward = train_forward(model)
    a = forward(variables, x, jax.random.key(1))
    np.testing.assert_array_equal(a, forward(variables, x, jax.random.key(2)))


def test_lrn_and_dropout_when_enabled():
    model, variables, x = small_model_and_variables(use_lrn=True, dropout_rate=0.4)
    calls = called_modules(model, variables, x)
    assert calls.count("LocalResponseNorm") == 2 and calls.count("Dropout") == 1
    forward = train_forward(model)
    a = forward(variables, x, jax.random.key(1))
    assert not np.allclose(a, forward(variables, x, jax.random.key(2)))


def test_lrn_formula():
    x = np.asarray(jax.random.normal(jax.random.key(0), (2, 3, 3, 7))) * 30
    x64 = x.astype(np.float64)  # the reference in float64: only the module rounds
    expected = np.empty_like(x64)
    for c in range(7):
        window = np.sum(x64[..., max(0, c - 2) : min(7, c + 3)] ** 2, axis=-1)
        expected[..., c] = x64[..., c] / (1 + 1e-4 / 5 * window) ** 0.75
    got = inception.LocalResponseNorm().apply({}, jnp.asarray(x))
    # Elementwise, no cancellation (a sum of 5 squares, then 1 + ·, a power, a product):
    # the float32 error is a few ulps of each value itself, so a relative rtol (84 ulps).
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_bn_feeds_every_nonlinearity():
    """Traces a training forward pass, keeping what BN returns and what feeds each g."""
    model = models.create_model(make_config(**SMALL))
    x = jax.ShapeDtypeStruct((4, 28, 28, 1), jnp.float32)
    bn_outputs, g_inputs = [], []

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if isinstance(context.module, BatchNorm):
            bn_outputs.append(out)
        elif isinstance(context.module, Nonlinearity):
            g_inputs.append(args[0])
        return out

    def forward(v, x):
        with nn.intercept_methods(record):
            return model.apply(v, x, train=True, mutable=[BATCH_STATS])

    jax.eval_shape(forward, abstract_init(model, x.shape), x)
    assert len(bn_outputs) == len(g_inputs) == 69
    # The very value BN returned, with nothing in between.
    assert all(any(g is bn for bn in bn_outputs) for g in g_inputs)


def primitive_counts(model: nn.Module, variables: dict, x: jax.Array) -> dict[str, int]:
    """How often each primitive occurs in the training forward pass, sub-jaxprs included."""
    counts: dict[str, int] = {}

    def walk(node) -> None:
        if hasattr(node, "jaxpr"):  # a closed jaxpr
            node = node.jaxpr
        if hasattr(node, "eqns"):
            for eqn in node.eqns:
                counts[eqn.primitive.name] = counts.get(eqn.primitive.name, 0) + 1
                for value in eqn.params.values():
                    walk(value)
        elif isinstance(node, (tuple, list)):
            for item in node:
                walk(item)

    def forward(v):
        return model.apply(v, x, train=True, mutable=[BATCH_STATS])

    walk(jax.make_jaxpr(forward)(variables).jaxpr)
    return counts


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_sigmoid_replaces_every_relu(norm):
    x = jnp.zeros((2, 28, 28, 1))
    counts = {}
    for activation in ("relu", "sigmoid"):
        model = models.create_model(make_config(**SMALL, norm=norm, activation=activation))
        counts[activation] = primitive_counts(model, abstract_init(model, x.shape), x)
    # relu is max(x, 0); max pooling is reduce_window_max, a different primitive.
    assert counts["relu"].get("max", 0) == 69 and counts["relu"].get("logistic", 0) == 0
    assert counts["sigmoid"].get("logistic", 0) == 69 and counts["sigmoid"].get("max", 0) == 0


def test_inference_gives_each_example_the_same_output_alone_or_in_a_batch():
    model, variables, x = small_model_and_variables()
    infer = jax.jit(lambda v, x: model.apply(v, x, train=False))
    batched = infer(variables, x)
    alone = jnp.concatenate([infer(variables, x[i : i + 1]) for i in range(4)])
    # Batches of 4 and of 1 take different matrix-product blockings. Against a float64
    # run of this net each float32 pass was off by up to 7.2·eps32·max|logits| (|logits|
    # ≤ 70), so the two passes may differ by twice that; k = 64 leaves 4× for other CPUs.
    assert_close_f32(batched, alone, k=64)


def test_every_bn_layer_records_group_moments_for_algorithm_2():
    config = make_config(**SMALL)
    config.bn.group_size = 2
    model = models.create_model(config)
    x = jax.ShapeDtypeStruct((4, 28, 28, 1), jnp.float32)
    variables = abstract_init(model, x.shape)

    def moments(v, batch):
        _, out = model.apply(v, batch, train=True, mutable=[BATCH_MOMENTS])
        return out[BATCH_MOMENTS]

    recorded = jax.eval_shape(moments, variables, x)
    layers = {path[:-1] for path, _ in model_summary._leaves(recorded)}
    assert layers == {path[:-1] for path, _ in model_summary._leaves(variables[BATCH_STATS])}
    assert len(layers) == 69
    layer = recorded["inception_3a"]["conv_1x1"]["BatchNorm_0"]
    assert layer["mean"].shape == (2, 16)  # two groups of two examples, 16 maps


def test_per_activation_bn_on_the_last_hidden_layer():
    model = models.create_model(make_config(**SMALL, per_activation_bn_last=True))
    variables = abstract_init(model, (4, 28, 28, 1))
    last = variables[BATCH_STATS]["inception_5b"]
    for name in ("conv_1x1", "conv_3x3", "conv_double_3x3_b", "pool_proj"):
        assert last[name]["BatchNorm_0"]["mean"].ndim == 3  # (4, 4, channels)
    for name in ("conv_3x3_reduce", "conv_double_3x3_a"):
        assert last[name]["BatchNorm_0"]["mean"].ndim == 1  # per feature map
    assert variables[BATCH_STATS]["inception_5a"]["conv_1x1"]["BatchNorm_0"]["mean"].ndim == 1
    assert model_summary.count_bn_layers(variables) == 69


def test_conv_init_scale_multiplies_every_initial_convolution():
    x, key = jnp.zeros((1, 5, 5, 32)), jax.random.key(0)
    base = Conv(64, 3).init(key, x)["params"]["kernel"]
    scaled = Conv(64, 3, init_scale=3.0).init(key, x)["params"]["kernel"]
    np.testing.assert_allclose(np.std(base), math.sqrt(2 / (3 * 3 * 32)), rtol=0.03)  # He
    np.testing.assert_allclose(scaled, 3 * base, rtol=1e-6)

    model = models.create_model(make_config(**SMALL, conv_init_scale=3.0))
    scales = []

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, Conv):
            scales.append(context.module.init_scale)
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        abstract_init(model, (1, 28, 28, 1))
    assert scales == [3.0] * 70  # 69 layers, the first separable (two convolutions)


@pytest.mark.parametrize(
    "kernel, stride, groups, size, cin, cout",
    [
        (1, 1, 1, 7, 16, 8),  # 1×1: (N·H·W, C_in) × (C_in, C_out)
        (3, 1, 1, 56, 4, 8),  # 3×3 by im2col
        (3, 2, 1, 57, 4, 8),  # odd size, stride 2: asymmetric SAME padding
        (3, 2, 1, 14, 8, 8),
        (7, 2, 3, 56, 3, 24),  # separable's depthwise half: dense kernel, then im2col
        (7, 2, 3, 13, 3, 24),
    ],
)
def test_cpu_matmuls_compute_the_same_convolution(kernel, stride, groups, size, cin, cout):
    x = jax.random.normal(jax.random.key(0), (2, size, size, cin))
    conv = Conv(cout, kernel, stride=stride, feature_group_count=groups)
    variables = conv.init(jax.random.key(1), x)

    def value_and_grads(module):
        def loss(v, x):
            y = module.apply(v, x)
            return jnp.sum(y * jnp.sin(y)), y

        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(variables, x)

    (_, y_conv), grads_conv = value_and_grads(conv)
    (_, y_matmul), grads_matmul = value_and_grads(conv.clone(cpu_matmuls=True))
    # Two summation orders of the same products. Against float64, each path was off by
    # up to 2.2·eps32·max|y| (fan-in ≤ 147) and 7.2·eps32·max|grad| (the kernel gradient
    # sums over N·H·W ≤ 6272 positions); k leaves 3-4× over the sum of the two.
    assert_close_f32(y_matmul, y_conv, k=16)
    for a, b in zip(jax.tree.leaves(grads_matmul), jax.tree.leaves(grads_conv), strict=True):
        assert_close_f32(a, b, k=64)


def test_lrn_pixel_scale_is_lrn_of_scaled_activations_scaled_back():
    # LRN is not scale-invariant: pixel_scale s must give LRN(s·a)/s, the layer as it acts
    # on a network fed pixels s times larger.
    x = np.asarray(jax.random.normal(jax.random.key(0), (2, 3, 3, 7)))
    scaled = inception.LocalResponseNorm().apply({}, jnp.asarray(x * 255.0)) / 255.0
    got = inception.LocalResponseNorm(pixel_scale=255.0).apply({}, jnp.asarray(x))
    np.testing.assert_allclose(got, scaled, rtol=1e-5)
    # And on these O(1) activations the unscaled layer is nearly the identity.
    np.testing.assert_allclose(
        inception.LocalResponseNorm().apply({}, jnp.asarray(x)), x, rtol=1e-3
    )
