"""config.dtype: bfloat16 compute with float32 parameters, BN statistics and loss."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from bn_repro import data, models, step_chunks, train
from bn_repro.batch_norm import BATCH_MOMENTS, BATCH_STATS
from bn_repro.models import conv_layer
from bn_repro.models.conv import Conv
from tests.helpers import small_mnist_config
from tests.inception_helpers import SMALL, make_config


def _train_steps(config, dataset, steps):
    trainer = train.Trainer(config, dataset)
    chunk = trainer.to_device(step_chunks.take_chunk(dataset.train_batches(0), steps), stacked=True)
    state, metrics = trainer.train_loop(trainer.state, chunk)
    return jax.device_get(state), jax.device_get(metrics)


def _float_dtypes(tree) -> set:
    return {
        leaf.dtype for leaf in jax.tree.leaves(tree) if jnp.issubdtype(leaf.dtype, jnp.floating)
    }


@pytest.fixture(scope="module")
def mnist_dataset():
    return data.create_dataset(small_mnist_config())


def test_bf16_mnist_with_bn_trains_like_float32(mnist_dataset):
    """200 SGD steps: the bf16 loss curve stays within 0.05 of float32's (loss ~0.5-2)."""
    runs = {
        dtype: _train_steps(small_mnist_config(dtype=dtype), mnist_dataset, steps=200)
        for dtype in ("float32", "bfloat16")
    }
    (f32, m32), (b16, m16) = runs["float32"], runs["bfloat16"]
    for state in (f32, b16):
        assert _float_dtypes((state.params, state.batch_stats, state.opt_state)) == {
            np.dtype("float32")
        }
    # Means over 50-step windows: single-step losses differ by batch noise alone.
    l32, l16 = (m["loss"].reshape(4, 50).mean(axis=1) for m in (m32, m16))
    assert l32[-1] < 0.6 * l32[0]  # it trained
    np.testing.assert_allclose(l16, l32, atol=0.05)
    # Not vacuous: bf16 rounding makes the runs differ.
    assert not np.array_equal(m16["loss"], m32["loss"])


@pytest.mark.slow  # compiling BN-Inception's init and step takes minutes on 2 loaded cores
def test_bf16_small_inception_trains_like_float32():
    """30 steps of a width-0.25 small-stem BN-Inception: same loss within 0.1 (of ~2)."""
    losses = {}
    for dtype in ("float32", "bfloat16"):
        config = small_mnist_config(model="inception", dtype=dtype, learning_rate=0.05)
        config.update(SMALL)
        config.batch_size = 32
        _, metrics = _train_steps(config, data.create_dataset(config), steps=30)
        losses[dtype] = metrics["loss"]
    l32, l16 = (x.reshape(3, 10).mean(axis=1) for x in (losses["float32"], losses["bfloat16"]))
    assert l32[-1] < l32[0]
    np.testing.assert_allclose(l16, l32, atol=0.1)
    assert not np.array_equal(losses["float32"], losses["bfloat16"])


def _moments_and_bn_inputs(model, x, bn_input_of):
    """A bf16 training forward: its output, and each BN layer's batch_moments and input."""
    variables = jax.jit(lambda: model.init(jax.random.key(0), x, train=False))()

    def forward(v):
        return model.apply(
            v,
            x,
            train=True,
            mutable=[BATCH_STATS, BATCH_MOMENTS, "intermediates"],
            capture_intermediates=lambda module, _: isinstance(module, nn.Dense | Conv),
            rngs={"dropout": jax.random.key(0)},
        )

    result, collections = jax.jit(forward)(variables)
    outputs = traverse_util.flatten_dict(collections["intermediates"])
    moments = traverse_util.flatten_dict(collections[BATCH_MOMENTS])
    layers = {path[:-1] for path in moments}
    pairs = []
    for layer in sorted(layers):
        activations = outputs[bn_input_of(layer, outputs)][0]
        pairs.append((moments[(*layer, "mean")], moments[(*layer, "var")], activations))
    return result, pairs


def _assert_float32_statistics_of(pairs):
    for mean, var, activations in pairs:
        assert activations.dtype == jnp.bfloat16  # the layer did compute in bf16
        assert mean.dtype == var.dtype == jnp.float32
        a = np.asarray(activations, np.float64).reshape(-1, activations.shape[-1])
        # float32 sums of bf16 values: a few float32 ulps of the largest magnitude.
        tolerance = 1e-5 * np.abs(a).max()
        np.testing.assert_allclose(mean.reshape(-1), a.mean(axis=0), atol=tolerance)
        np.testing.assert_allclose(var.reshape(-1), a.var(axis=0), atol=tolerance * np.abs(a).max())


def test_bn_statistics_of_a_bf16_forward_are_float32_statistics_mlp():
    model = models.create_model(small_mnist_config(dtype="bfloat16"))
    x = jax.random.uniform(jax.random.key(1), (64, 28, 28, 1))

    def dense_before(layer, _):  # BatchNorm_i normalises the output of Dense_i
        return (f"Dense_{layer[-1].split('_')[1]}", "__call__")

    logits, pairs = _moments_and_bn_inputs(model, x, dense_before)
    assert logits.dtype == jnp.float32 and len(pairs) == 3
    _assert_float32_statistics_of(pairs)


@pytest.mark.parametrize("cpu_matmuls", [False, True])
@pytest.mark.parametrize("depth_multiplier", [0, 2])
def test_bn_statistics_of_a_bf16_forward_are_float32_statistics_conv(cpu_matmuls, depth_multiplier):
    """One Inception "convolution" (plain or separable, both forms of `Conv`)."""
    options = conv_layer.LayerOptions(cpu_matmuls=cpu_matmuls, dtype=jnp.bfloat16)
    layer = conv_layer.ConvLayer(16, 3, options, depth_multiplier=depth_multiplier)
    x = jax.random.uniform(jax.random.key(1), (8, 14, 14, 4))

    def conv_before(layer, outputs):  # BN follows the conv, or the separable pointwise
        name = "pointwise" if ("pointwise", "__call__") in outputs else "conv"
        return (name, "__call__")

    _, pairs = _moments_and_bn_inputs(layer, x, conv_before)
    assert len(pairs) == 1
    _assert_float32_statistics_of(pairs)


def test_bf16_inception_keeps_float32_variables_and_logits():
    """The whole network, shapes only: float32 variables, float32 logits."""
    model = models.create_model(make_config(**SMALL, dtype="bfloat16"))
    x = jax.ShapeDtypeStruct((2, 28, 28, 1), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    assert _float_dtypes(variables) == {np.dtype("float32")}
    logits = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
    assert logits.dtype == jnp.float32


def test_bad_dtype_is_a_clear_error():
    with pytest.raises(ValueError, match=r"Unknown dtype 'float16'; valid choices: \['float32'"):
        models.create_model(small_mnist_config(dtype="float16"))
