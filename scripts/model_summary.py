"""How big a model is: parameters, multiply-accumulates per image and BN layers.

  python scripts/model_summary.py --config=configs/NAME.py [--config.KEY=VALUE ...]

For example the paper's BN-Inception at 224×224 with the printed 4c/4d projection
and a plain first convolution:

  python scripts/model_summary.py --config=configs/default.py --channels=3 \\
      --config.model=inception --config.image_size=224 --config.num_classes=1000 \\
      --config.pool_proj_4cd=128 --config.first_conv=plain

Nothing is computed on a device: parameters come from `jax.eval_shape` of the
model's init, and multiply-accumulates (MACs) from the shapes of the convolutions and
matrix products in the traced forward pass (one image, inference mode), counting
every tap of every kernel window. XLA's own cost analysis of the same forward pass is
printed next to them as a cross-check; its FLOPs / 2 differs by a few percent in both
directions: it skips the taps that fall on SAME padding and it adds the FLOPs of BN,
pooling and nonlinearities.
"""

import math
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from absl import app, flags
from ml_collections import config_flags

from bn_repro import models
from bn_repro.batch_norm import BATCH_STATS

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
flags.DEFINE_integer(
    "channels", None, "Input channels; default 1 for (Fashion-)MNIST configs, else 3."
)

GRAYSCALE_DATASETS = ("mnist", "fashion_mnist")


def input_shape(config: ml_collections.ConfigDict, channels: int | None = None) -> tuple:
    """(height, width, channels) of one input image of ``config``."""
    if channels is None:
        channels = 1 if config.dataset in GRAYSCALE_DATASETS else 3
    return (config.image_size, config.image_size, channels)


def abstract_variables(model: Any, shape: tuple) -> Any:
    """The model's variables as shapes only: no parameter is allocated."""
    return jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1, *shape)), train=False)
    )


def _leaves(tree: Any) -> Iterator[tuple[tuple[str, ...], Any]]:
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        yield tuple(str(getattr(k, "key", k)) for k in path), leaf


def parameter_counts(params: Any) -> dict[str, int]:
    """Parameters split by role.

    The classifier is the last top-level layer (Flax keeps definition order); BN's
    γ and β are the ``scale`` and ``bias`` of BatchNorm layers; every other
    ``kernel`` is a convolution or hidden fully-connected weight, every other
    ``bias`` that layer's bias (present only without BN).
    """
    classifier = list(params)[-1]
    counts = {"weights": 0, "biases": 0, "bn_gamma": 0, "bn_beta": 0, "classifier": 0}
    for path, leaf in _leaves(params):
        size = math.prod(leaf.shape)
        if path[0] == classifier:
            counts["classifier"] += size
        elif any(part.startswith("BatchNorm") for part in path):
            counts["bn_gamma" if path[-1] == "scale" else "bn_beta"] += size
        elif path[-1] == "kernel":
            counts["weights"] += size
        else:
            counts["biases"] += size
    counts["total"] = sum(counts.values())
    return counts


def count_bn_layers(variables: Any) -> int:
    """BatchNorm layers: each keeps one ``mean`` in ``batch_stats``."""
    return sum(path[-1] == "mean" for path, _ in _leaves(variables.get(BATCH_STATS, {})))


def _subjaxprs(value: Any) -> Iterator[Any]:
    if hasattr(value, "eqns"):
        yield value
    elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
        yield value.jaxpr
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _subjaxprs(item)


def _eqn_macs(eqn: Any) -> int:
    name = eqn.primitive.name
    out = math.prod(eqn.outvars[0].aval.shape)
    if name == "conv_general_dilated":
        rhs = eqn.invars[1].aval.shape
        _, rhs_spec, _ = eqn.params["dimension_numbers"]
        # Each output value sums kernel-window × input-channels-per-group products.
        return out * rhs[rhs_spec[1]] * math.prod(rhs[d] for d in rhs_spec[2:])
    if name == "dot_general":
        (lhs_contract, _), _ = eqn.params["dimension_numbers"]
        lhs = eqn.invars[0].aval.shape
        return out * math.prod(lhs[d] for d in lhs_contract)
    return 0


def jaxpr_macs(jaxpr: Any) -> int:
    """MACs of every convolution and matrix product in ``jaxpr`` and its sub-jaxprs."""
    total = 0
    for eqn in jaxpr.eqns:
        total += _eqn_macs(eqn)
        for value in eqn.params.values():
            for sub in _subjaxprs(value):
                total += jaxpr_macs(sub)
    return total


def forward_macs(model: Any, variables: Any, shape: tuple) -> int:
    """Multiply-accumulates of one image's forward pass (inference mode)."""
    closed = jax.make_jaxpr(lambda v, x: model.apply(v, x, train=False))(
        variables, jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    )
    return jaxpr_macs(closed.jaxpr)


def xla_forward_flops(model: Any, variables: Any, shape: tuple) -> float:
    """XLA's cost analysis of one image's forward pass (all FLOPs, not only MACs)."""
    lowered = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(
        variables, jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    )
    return float(lowered.cost_analysis()["flops"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = FLAGS.config
    shape = input_shape(config, FLAGS.channels)
    model = models.create_model(config)
    variables = abstract_variables(model, shape)
    counts = parameter_counts(variables["params"])
    macs = forward_macs(model, variables, shape)
    xla_flops = xla_forward_flops(model, variables, shape)

    size = "x".join(map(str, shape))
    print(f"model {config.model!r}, input {size}, {config.num_classes} classes")
    print("parameters")
    rows = (
        ("conv/dense weights", "weights"),
        ("conv/dense biases", "biases"),
        ("BN gamma", "bn_gamma"),
        ("BN beta", "bn_beta"),
        ("classifier", "classifier"),
        ("total", "total"),
    )
    for label, key in rows:
        print(f"  {label:<20}{counts[key]:>14,}  ({counts[key] / 1e6:.2f} M)")
    print(f"multiply-accumulates per image  {macs:,}  ({macs / 1e9:.3f} G)")
    print(
        f"  cross-check, XLA cost analysis: {xla_flops:,.0f} FLOPs / 2 = "
        f"{xla_flops / 2e9:.3f} G (skips padding taps; adds BN, pooling, nonlinearities)"
    )
    print(f"BN layers  {count_bn_layers(variables)}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    app.run(main)
