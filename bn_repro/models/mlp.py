"""The fully-connected network of the paper's MNIST experiment (Section 4.1).

784-100-100-100-10, sigmoid hidden units, small random Gaussian initial weights.
(`activation` can be "relu" too, for experiments beyond the paper's.)
With BN, each hidden layer computes z = sigmoid(BN(W u)): BN sits immediately before
the nonlinearity and the layer bias is dropped, since β takes its role.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from bn_repro.batch_norm import DEFAULT_EPSILON, DEFAULT_MOMENTUM, BatchNorm
from bn_repro.config_checks import check_choice
from bn_repro.models.activations import ACTIVATIONS
from bn_repro.models.inception import NORMS
from bn_repro.models.precision import compute_dtype

# Which unit of the last hidden layer Figure 1 (b, c) follows: a "typical sigmoid".
PROBED_UNIT = 0


class MLP(nn.Module):
    """Sigmoid MLP; ``use_bn`` inserts BN before every hidden nonlinearity.

    In evaluation it records the input of one sigmoid of the last hidden layer
    (``PROBED_UNIT``) as the intermediate ``sigmoid_input``, one value per example,
    for the percentile curves of Figure 1 (b) and (c).
    """

    hidden: Sequence[int] = (100, 100, 100)
    num_classes: int = 10
    use_bn: bool = False
    init_stddev: float = 0.1
    activation: str = "sigmoid"
    bn_epsilon: float = DEFAULT_EPSILON
    bn_momentum: float = DEFAULT_MOMENTUM
    bn_group_size: int | None = None
    dtype: jnp.dtype = jnp.float32  # compute dtype (bn_repro/models/precision.py)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = x.reshape((x.shape[0], -1))
        kernel_init = nn.initializers.normal(self.init_stddev)
        for i, width in enumerate(self.hidden):
            x = nn.Dense(
                width, use_bias=not self.use_bn, kernel_init=kernel_init, dtype=self.dtype
            )(x)
            if self.use_bn:
                x = BatchNorm(
                    use_running_average=not train,
                    momentum=self.bn_momentum,
                    epsilon=self.bn_epsilon,
                    group_size=self.bn_group_size,
                )(x)
            if i == len(self.hidden) - 1 and not train:
                self.sow("intermediates", "sigmoid_input", x[:, PROBED_UNIT].astype(jnp.float32))
            x = ACTIVATIONS[self.activation](x)
        logits = nn.Dense(self.num_classes, kernel_init=kernel_init, dtype=self.dtype)(x)
        return logits.astype(jnp.float32)  # the softmax and the loss stay float32


def create(config: ml_collections.ConfigDict, platform: str | None = None) -> MLP:
    """The MLP of ``config``; it has one form on every ``platform``."""
    # Any other norm (e.g. "layer") would silently train without BN.
    check_choice("norm", config.norm, NORMS)
    check_choice("activation", config.activation, sorted(ACTIVATIONS))
    return MLP(
        activation=config.activation,
        hidden=tuple(config.hidden_sizes),
        num_classes=config.num_classes,
        use_bn=config.norm == "batch",
        init_stddev=config.init_stddev,
        bn_epsilon=config.bn.epsilon,
        bn_momentum=config.bn.momentum,
        bn_group_size=config.bn.group_size or None,
        dtype=compute_dtype(config),
    )
