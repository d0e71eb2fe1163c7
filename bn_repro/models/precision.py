"""Mixed precision: the one switch ``config.dtype``, "float32" (the paper's) or "bfloat16".

It sets the dtype convolutions and matrix products compute in (`Conv`, the Dense
layers). Everything whose precision matters for the paper's mathematics stays
float32 whatever it is: parameters and optimizer state (a layer casts its float32
kernel to the compute dtype when it is used), BN's statistics, normalisation and
moving averages (bn_repro/batch_norm.py upcasts its input and casts only its output
back), Algorithm 2's averages, and the logits, hence the softmax and the loss.
"""

import jax.numpy as jnp
import ml_collections

from bn_repro.config_checks import check_choice

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(config: ml_collections.ConfigDict) -> jnp.dtype:
    """The dtype convolutions and matrix products compute in (``config.dtype``)."""
    check_choice("dtype", config.dtype, COMPUTE_DTYPES)
    return COMPUTE_DTYPES[config.dtype]
