"""Models by name: ``create_model(config)`` builds ``config.model``.

Every model is a Flax linen module called as ``model(images, train=bool)`` that
returns logits; BN layers keep their statistics in the ``batch_stats`` collection.
"""

from collections.abc import Callable

import flax.linen as nn
import ml_collections

from bn_repro.config_checks import check_choice
from bn_repro.models import inception_config, mlp

MODELS: dict[str, Callable[[ml_collections.ConfigDict], nn.Module]] = {
    "inception": inception_config.create,
    "mlp": mlp.create,
}


def create_model(config: ml_collections.ConfigDict) -> nn.Module:
    """Builds the model named by ``config.model``."""
    check_choice("model", config.model, sorted(MODELS))
    return MODELS[config.model](config)
