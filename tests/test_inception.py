"""BN-Inception (bn_repro/models/inception.py) against the paper's Figure 5: the
module structure, output shapes and the parameter, MAC and BN-layer counts.

Counts are checked against `reference_counts`, an independent count of the table as
printed in the paper (re-typed here, not imported), and that count against the
numbers in the issue (11.29M parameters, 2.03 G / 1.95 G MACs at 224).
Everything here is shape-only (`jax.eval_shape`): nothing is compiled. The layers'
behaviour: tests/test_inception_layers.py.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from bn_repro import models
from bn_repro.batch_norm import BATCH_STATS
from bn_repro.models import inception
from bn_repro.models import summary as model_summary
from tests.inception_helpers import IMAGENET, SMALL, abstract_init, make_config

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
