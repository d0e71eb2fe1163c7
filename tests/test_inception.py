"""BN-Inception (bn_repro/models/inception.py) against the paper's Figure 5.

Counts are checked against `reference_counts`, an independent count of the table as
printed in the paper (re-typed here, not imported), and that count against the
numbers in the issue (11.29M parameters, 2.03 G / 1.95 G MACs at 224).
Everything at 224 px is shape-only (`jax.eval_shape`, `jax.make_jaxpr`); what runs
uses 28-32 px inputs and width 0.25.
"""

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bn_repro import models
from bn_repro.batch_norm import BATCH_MOMENTS, BATCH_STATS, BatchNorm
from bn_repro.configs import default
from bn_repro.models import inception
from bn_repro.models import summary as model_summary
from bn_repro.models.conv import Conv
from tests.helpers import assert_close_f32

# Figure 5 as printed: #1×1, #3×3 reduce, #3×3, double #3×3 reduce, double #3×3,
# pool projection (None: pass through), stride; "P" marks the 4c/4d projection.
TABLE = (
    ("3a", 64, 64, 64, 64, 96, 32, 1),
    ("3b", 64, 64, 96, 64, 96, 64, 1),
    ("3c", 0, 128, 160, 64, 96, None, 2),
    ("4a", 224, 64, 96, 96, 128, 128, 1),
    ("4b", 192, 96, 128, 96, 128, 128, 1),
    ("4c", 160, 128, 160, 128, 160, "P", 1),
    ("4d", 96, 128, 192, 160, 192, "P", 1),
    ("4e", 0, 128, 192, 192, 256, None, 2),
    ("5a", 352, 192, 320, 160, 224, 128, 1),
    ("5b", 352, 192, 320, 192, 224, 128, 1),
)


def reference_counts(proj_4cd: int, separable: bool, classes: int = 1000) -> dict[str, int]:
    """Parameters, MACs, BN layers and feature maps of the 224 px net, from `TABLE`.

    Every convolution is followed by BN with γ and β and has no bias; the separable
    first convolution is 7×7 depthwise (8 maps per channel) then 1×1, one BN.
    """
    counts = {"params": 0, "macs": 0, "bn": 0, "maps": 0, "channels": {}}

    def conv(k: int, cin: int, cout: int, size: int) -> int:
        counts["params"] += k * k * cin * cout + 2 * cout
        counts["maps"] += cout
        counts["macs"] += k * k * cin * cout * size * size
        counts["bn"] += 1
        return cout

    if separable:
        counts["params"] += 7 * 7 * 3 * 8
        counts["macs"] += 7 * 7 * 3 * 8 * 112 * 112
        conv(1, 24, 64, 112)
    else:
        conv(7, 3, 64, 112)
    conv(1, 64, 64, 56)
    channels, size = conv(3, 64, 192, 56), 28
    for name, n1, r3, n3, rd, nd, proj, stride in TABLE:
        proj = proj_4cd if proj == "P" else proj
        out_size = size // stride
        out = n1 and conv(1, channels, n1, size)
        conv(1, channels, r3, size)
        out += conv(3, r3, n3, out_size)
        conv(1, channels, rd, size)
        conv(3, rd, nd, size)
        out += conv(3, nd, nd, out_size)
        out += channels if proj is None else conv(1, channels, proj, size)
        channels, size = out, out_size
        counts["channels"][name] = channels
    counts["params"] += channels * classes + classes
    counts["macs"] += channels * classes
    return counts


def make_config(**overrides):
    config = default.get_config()
    config.model = "inception"
    config.update(overrides)
    return config


SMALL = {"stem": "small", "width_multiplier": 0.25, "num_classes": 10}
IMAGENET = {"image_size": 224, "num_classes": 1000}


def abstract_init(model: nn.Module, shape: tuple) -> dict:
    return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape), train=False))


def module_outputs(model: nn.Module, variables: dict, shape: tuple, train: bool = False) -> dict:
    """Output shape of every inception module, from a shape-only forward pass."""
    shapes = {}

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if isinstance(context.module, inception.InceptionModule):
            shapes[context.module.row.name] = out.shape[1:]
        return out

    def forward(v, x):
        with nn.intercept_methods(record):
            return model.apply(v, x, train=train, rngs={"dropout": jax.random.key(0)})

    logits = jax.eval_shape(forward, variables, jax.ShapeDtypeStruct(shape, jnp.float32))
    return {"logits": logits.shape, **shapes}


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


def test_registry_builds_inception_and_rejects_bad_choices():
    assert isinstance(models.create_model(make_config()), inception.BNInception)
    with pytest.raises(ValueError, match="pool_proj_4cd"):
        models.create_model(make_config(pool_proj_4cd=112))
    with pytest.raises(ValueError, match="activation"):
        models.create_model(make_config(activation="tanh"))


def test_shapes_at_224_follow_figure_5():
    model = models.create_model(make_config(**IMAGENET, pool_proj_4cd=96))
    shape = (2, 224, 224, 3)
    outputs = module_outputs(model, abstract_init(model, shape), shape)
    # Figure 5's output sizes; 3c and 4e corrected to their (halved) output size.
    assert outputs == {
        "logits": (2, 1000),
        "3a": (28, 28, 256),
        "3b": (28, 28, 320),
        "3c": (14, 14, 576),
        "4a": (14, 14, 576),
        "4b": (14, 14, 576),
        "4c": (14, 14, 576),
        "4d": (14, 14, 576),
        "4e": (7, 7, 1024),
        "5a": (7, 7, 1024),
        "5b": (7, 7, 1024),
    }


@pytest.mark.parametrize(
    "size, channels, spatial", [(28, 1, (14, 7, 4)), (32, 3, (16, 8, 4)), (64, 3, (32, 16, 8))]
)
def test_small_stem_keeps_the_module_structure(size, channels, spatial):
    model = models.create_model(make_config(**SMALL, image_size=size))
    shape = (3, size, size, channels)
    outputs = module_outputs(model, abstract_init(model, shape), shape)
    assert outputs.pop("logits") == (3, 10)
    assert [outputs[name][0] for name in ("3a", "4a", "5b")] == list(spatial)
    assert all(out[0] == out[1] for out in outputs.values())


@pytest.mark.parametrize("proj", [96, 128])
@pytest.mark.parametrize("first_conv", ["plain", "separable"])
def test_parameter_mac_and_bn_counts_match_the_table(proj, first_conv):
    config = make_config(**IMAGENET, pool_proj_4cd=proj, first_conv=first_conv)
    model = models.create_model(config)
    shape = (224, 224, 3)
    variables = abstract_init(model, (1, *shape))
    reference = reference_counts(proj, separable=first_conv == "separable")

    counts = model_summary.parameter_counts(variables["params"])
    assert counts["total"] == reference["params"]
    assert counts["classifier"] == 1024 * 1000 + 1000
    assert counts["bn_gamma"] == counts["bn_beta"] == reference["maps"]
    assert counts["biases"] == 0  # BN's β replaces every convolution bias
    assert model_summary.forward_macs(model, variables, shape) == reference["macs"]
    assert model_summary.count_bn_layers(variables) == reference["bn"] == 69
    # 5a's input: 4e's output, 1024 with the printed depths, 1056 with proj 128.
    kernel = variables["params"]["inception_5a"]["conv_1x1"]["conv"]["kernel"]
    assert kernel.shape[2] == reference["channels"]["4e"] == {96: 1024, 128: 1056}[proj]


def test_reference_count_agrees_with_the_issue():
    plain = reference_counts(128, separable=False)
    separable = reference_counts(128, separable=True)
    assert round(plain["params"] / 1e6, 2) == 11.29
    assert round(plain["macs"] / 1e9, 2) == 2.03
    assert round(separable["params"] / 1e6, 2) == 11.28
    assert round(separable["macs"] / 1e9, 2) == 1.95
    assert reference_counts(96, separable=False)["channels"]["4d"] == 576
    assert reference_counts(128, separable=False)["channels"]["4d"] == 608


def test_width_multiplier_scales_every_depth_with_a_minimum():
    model = models.create_model(make_config(width_multiplier=0.5, min_depth=40))
    variables = abstract_init(model, (1, 28, 28, 1))
    block = variables["params"]["inception_3a"]
    # 3a: #1×1 64 → 32 → 40 (min_depth); #3×3 64 → 40; double #3×3 96 → 48; proj 32 → 40.
    assert block["conv_1x1"]["conv"]["kernel"].shape[-1] == 40
    assert block["conv_double_3x3_b"]["conv"]["kernel"].shape[-1] == 48
    assert block["pool_proj"]["conv"]["kernel"].shape[-1] == 40
    assert variables["params"]["logits"]["kernel"].shape[0] == 176 + 160 + 112 + 64


def test_norm_none_has_no_bn_and_keeps_conv_biases():
    model = models.create_model(make_config(**IMAGENET, norm="none", first_conv="plain"))
    variables = abstract_init(model, (1, 224, 224, 3))
    counts = model_summary.parameter_counts(variables["params"])
    assert BATCH_STATS not in variables
    assert counts["bn_gamma"] == counts["bn_beta"] == 0
    # β's role goes back to a bias per output map of each of the 69 convolutions.
    reference = reference_counts(96, separable=False)
    assert counts["biases"] == reference["maps"]
    assert counts["total"] == reference["params"] - reference["maps"]


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
        elif isinstance(context.module, inception.Nonlinearity):
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


def test_cpu_matmuls_follow_the_target_and_keep_the_counts():
    model = models.create_model(make_config(**IMAGENET), "cpu")
    assert model.options.cpu_matmuls
    assert not models.create_model(make_config(**IMAGENET), "tpu").options.cpu_matmuls
    shape = (224, 224, 3)
    variables = abstract_init(model, (1, *shape))
    for cpu_matmuls in (False, True):
        options = dataclasses.replace(model.options, cpu_matmuls=cpu_matmuls)
        macs = model_summary.forward_macs(model.clone(options=options), variables, shape)
        assert macs == reference_counts(96, separable=True)["macs"]


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
