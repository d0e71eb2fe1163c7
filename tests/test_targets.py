"""Platform decisions follow the target, not this CPU machine: the real training and
evaluation steps of a small Inception, lowered for TPU and CUDA from here.

The references are independent of the code under test: the number of convolution
layers is read from the parameters (one 4-D kernel each), and the form each target
should get is the one XLA runs fast there (bn_repro/models/conv.py).
"""

import re

import jax
import pytest

from bn_repro import aot, cpu_compiler_options, models, platforms
from bn_repro.configs import small_table2
from bn_repro.models import summary
from tests.helpers import small_mnist_config


def _config(**overrides):
    config = small_table2.get_config("bn_x5")
    config.batch_size, config.eval_batch_size = 32, 16  # divisible by the 8 fake devices
    config.update(overrides)
    return config


def _lowered(config, platform: str):
    """The trainer's jitted steps for ``platform``, lowered with abstract inputs
    (bn_repro/aot.py, as scripts/aot_compile.py builds them), and the number of
    convolution layers: one 4-D kernel each in the parameters."""
    train, evaluation = aot.abstract_steps(config, jax.devices(), platform)
    targets = (platform,)
    train_text = train.lower(lowering_platforms=targets).as_text()
    eval_text = evaluation.lower(lowering_platforms=targets).as_text()
    variables = summary.abstract_variables(models.create_model(config), summary.input_shape(config))
    convs = sum(leaf.ndim == 4 for leaf in jax.tree.leaves(variables["params"]))
    return train_text, eval_text, convs


def _count(op: str, text: str) -> int:
    return len(re.findall(rf"= stablehlo\.{op}\b", text))


@pytest.mark.parametrize("platform", ["tpu", "cuda"])
def test_accelerator_steps_keep_xla_convolutions_and_shard_the_batch(platform):
    train_text, eval_text, convs = _lowered(_config(), platform)
    # Forward, kernel gradient, and input gradient of every layer but the first.
    assert _count("convolution", train_text) == 3 * convs - 1
    assert _count("convolution", eval_text) == convs
    # The classifier's forward product and its two gradients; in training also the
    # distortions' bilinear resize, one product per image axis (bn_repro/data/distortions.py).
    assert _count("dot_general", train_text) == 3 + 2
    assert _count("dot_general", eval_text) == 1
    for text in (train_text, eval_text):
        assert "custom_call" not in text
    # Shardy annotations: the uint8 images, (steps, batch, 28, 28, 1) stacked for the
    # loop and (batch, 28, 28, 1) for evaluation, split on the batch axis over "data".
    for text in (train_text, eval_text):
        assert 'sdy.mesh @mesh = <["data"=8]>' in text
    sharded = r"\{sdy\.sharding = #sdy\.sharding<@mesh, "
    assert re.search(
        r"tensor<1x32x28x28x1xui8> " + sharded + r'\[\{\}, \{"data"\}, \{\}', train_text
    )
    assert re.search(r"tensor<16x28x28x1xui8> " + sharded + r'\[\{"data"\}, \{\}', eval_text)


def test_a_cpu_target_gets_the_matmul_form_and_conv_impl_overrides():
    train_text, _, _ = _lowered(_config(), "cpu")
    assert _count("convolution", train_text) == 0
    train_text, _, convs = _lowered(_config(conv_impl="xla"), "cpu")
    assert _count("convolution", train_text) == 3 * convs - 1
    train_text, _, _ = _lowered(_config(conv_impl="matmul"), "tpu")
    assert _count("convolution", train_text) == 0


@pytest.mark.parametrize("platform", ["tpu", "cuda", "gpu", "rocm"])
def test_cpu_compiler_options_are_off_for_accelerator_targets(platform):
    mlp, inception = small_mnist_config(), _config()
    assert cpu_compiler_options.for_steps(mlp, "cpu") == cpu_compiler_options.NO_YNNPACK
    assert cpu_compiler_options.for_initialisation("cpu") == cpu_compiler_options.INITIALISATION
    assert cpu_compiler_options.for_steps(mlp, platform) is None
    assert cpu_compiler_options.for_steps(inception, platform) is None
    assert cpu_compiler_options.for_initialisation(platform) is None
    assert not models.create_model(inception, platform).options.cpu_matmuls


@pytest.mark.parametrize("precision", ["high", "highest"])
def test_matmul_precision_reaches_every_convolution_and_product(precision):
    # Without the distortions: their resize is data preparation, always at HIGHEST.
    config = _config(matmul_precision=precision, distortions="none")
    train_text, eval_text, _ = _lowered(config, "tpu")
    name = precision.upper()
    for text in (train_text, eval_text):
        ops = re.findall(r"= stablehlo\.(?:convolution|dot_general).*", text)
        assert ops and all(f"precision {name}>" in op or f"[{name}, {name}]" in op for op in ops)
    default_text, _, _ = _lowered(_config(distortions="none"), "tpu")
    assert "HIGHEST" not in default_text and "precision HIGH>" not in default_text


def test_bad_choices_name_the_value_and_the_choices():
    choices = r"conv_impl 'fast'; valid choices: \['auto', 'xla', 'matmul'\]"
    with pytest.raises(ValueError, match=choices):
        models.create_model(_config(conv_impl="fast"), "tpu")
    with pytest.raises(ValueError, match=r"matmul_precision 'tf32'.*'highest'"):
        platforms.matmul_precision(_config(matmul_precision="tf32"))
    with pytest.raises(ValueError, match=r"--topology='v9-8' is not one of \['v4-8', .*'v4:2x2x1'"):
        aot.tpu_devices("v9-8")


def test_start_up_line_names_platform_and_choices():
    line = platforms.describe(_config(), "tpu")
    assert "XLA convolutions" in line and "matmul_precision=default" in line
    assert "matrix products" in platforms.describe(_config(), "cpu")
