"""Models by name: ``create_model(config, platform)`` builds ``config.model``.

Every model is a Flax linen module called as ``model(images, train=bool)`` that
returns logits; BN layers keep their statistics in the ``batch_stats`` collection.
"""

from collections.abc import Callable

import flax.linen as nn
import ml_collections

from bn_repro.config_checks import check_choice
from bn_repro.models import inception_config, mlp

MODELS: dict[str, Callable[[ml_collections.ConfigDict, str | None], nn.Module]] = {
    "inception": inception_config.create,
    "mlp": mlp.create,
}


def create_model(config: ml_collections.ConfigDict, platform: str | None = None) -> nn.Module:
    """Builds the model named by ``config.model`` for training steps compiled for
    ``platform`` (bn_repro/platforms.py); None for inference and counting only."""
    check_choice("model", config.model, sorted(MODELS))
    return MODELS[config.model](config, platform)
