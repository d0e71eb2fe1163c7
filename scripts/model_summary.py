"""How big a model is: parameters, multiply-accumulates per image and BN layers.

  python scripts/model_summary.py --config=configs/NAME.py [--config.KEY=VALUE ...]

For example the paper's BN-Inception at 224×224 with the printed 4c/4d projection
and a plain first convolution:

  python scripts/model_summary.py --config=configs/default.py --channels=3 \\
      --config.model=inception --config.image_size=224 --config.num_classes=1000 \\
      --config.pool_proj_4cd=128 --config.first_conv=plain

Nothing is computed on a device: parameters come from `jax.eval_shape` of the
model's init, and multiply-accumulates (MACs) from the input, kernel and output
shapes of every layer in a shape-only forward pass (one image, inference mode),
counting every tap of every kernel window. XLA's cost analysis of the forward pass
as it is compiled here is printed next to them as a cross-check. Its FLOPs / 2 is
within a few percent, not equal: it adds the FLOPs of BN, pooling and
nonlinearities; it skips the taps of an XLA convolution that fall on SAME padding;
and it counts the computation as executed (on CPU BN-Inception runs its convolutions
as matrix products, padding taps included, and its grouped first layer as a dense
one, with 3× that layer's MACs).
"""

from absl import app, flags
from ml_collections import config_flags

from bn_repro import config_checks, models
from bn_repro.console import quiet_logs
from bn_repro.models.summary import (
    abstract_variables,
    count_bn_layers,
    forward_macs,
    input_shape,
    parameter_counts,
    xla_forward_flops,
)

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
flags.DEFINE_integer(
    "channels", None, "Input channels; default 1 for (Fashion-)MNIST configs, else 3."
)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    quiet_logs()  # no "Unable to initialize backend 'tpu'" on a CPU machine
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
        f"{xla_flops / 2e9:.3f} G (why the two differ: see this script's docstring)"
    )
    print(f"BN layers  {count_bn_layers(variables)}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    app.run(main, flags_parser=config_checks.parse_flags)
