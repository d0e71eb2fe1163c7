"""The nonlinearities g a config can name (``config.activation``), for every model.

ReLU is Figure 5's; the sigmoid is the MNIST network's (Section 4.1) and BN-x5-Sigmoid's.
"""

import flax.linen as nn
import jax

ACTIVATIONS = {"relu": nn.relu, "sigmoid": nn.sigmoid}


class Nonlinearity(nn.Module):
    """g, a module so that every nonlinearity of a network shows in its module tree."""

    kind: str

    def __call__(self, x: jax.Array) -> jax.Array:
        return ACTIVATIONS[self.kind](x)
