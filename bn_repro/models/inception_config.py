"""BN-Inception (bn_repro/models/inception.py) from the top-level config keys.

Options (top-level config keys, defaults in configs/default.py):

* ``norm``: "batch" (BN before every nonlinearity) or "none".
* ``activation``: "relu" or "sigmoid", for every hidden nonlinearity.
* ``use_lrn``: local response normalization where GoogLeNet has it
  (bn_repro/models/lrn.py).
* ``dropout_rate``: before the classifier.
* ``width_multiplier``, ``min_depth``: every depth d becomes
  max(int(d · width_multiplier), min_depth), TF-slim's depth_multiplier/min_depth.
* ``stem``: "imagenet" (the table of bn_repro/models/inception.py), or "small" for
  28-64 px inputs (Fashion-MNIST, miniature ImageNet): a 3×3/1 first convolution and
  no first max pool, so the stem downsamples 2× instead of 8× and the modules keep
  their structure at
  28 px → 14, 7, 4 (32 px → 16, 8, 4; 64 px → 32, 16, 8), like 28, 14, 7 at 224.
* ``conv_init_scale``: multiplies the initial convolution weights (the ensemble's
  "increased initial weights in the convolutional layers"). Convolutions start from
  TF-slim's He initialisation, a truncated normal with variance 2 / fan-in.
* ``per_activation_bn_last``: the ensemble's "non-convolutional, per-activation
  Batch Normalization with last hidden layers". We read "last hidden layer" as the
  output of inception 5b, the last layer with a nonlinearity (the pooled features
  are a linear function of it): the four convolutions whose outputs 5b concatenates
  (1×1, 3×3, second double 3×3, pool projection) get BN with its own statistics, γ
  and β for every activation (height × width × channel) instead of per feature map.
  BN stays where it is, before the nonlinearity, and the layer count stays 69.
* ``bn.epsilon``, ``bn.momentum``, ``bn.group_size`` (0: the whole global batch).
* For the published weights (README "Published weights"; configs/pretrained_*.py),
  whose networks differ from Figure 5: ``first_conv_bn`` (False: TF-slim's first
  layer, bias and g without BN), ``bn.use_scale`` (False: BN without γ, TF-slim's
  default), ``conv_bias_with_bn`` (Caffe's convolutions keep their bias before BN),
  ``padding`` ("same" or "caffe": bn_repro/models/geometry.py). The defaults give
  the network of bn_repro/models/inception.py.
"""

import ml_collections

from bn_repro import platforms
from bn_repro.config_checks import check_choice
from bn_repro.models import geometry
from bn_repro.models.activations import ACTIVATIONS
from bn_repro.models.conv_layer import LayerOptions
from bn_repro.models.inception import (
    FIRST_CONVS,
    NORMS,
    POOL_PROJ_4CD_CHOICES,
    STEMS,
    BNInception,
)
from bn_repro.models.precision import compute_dtype


def create(config: ml_collections.ConfigDict, platform: str | None = None) -> BNInception:
    """BN-Inception from the top-level config keys (see configs/default.py), its
    training-step convolutions in the form ``config.conv_impl`` picks for ``platform``
    (the target's, bn_repro/platforms.py; None for a model that is not trained)."""
    check_choice("norm", config.norm, NORMS)
    check_choice("activation", config.activation, tuple(ACTIVATIONS))
    check_choice("stem", config.stem, STEMS)
    check_choice("first_conv", config.first_conv, FIRST_CONVS)
    check_choice("pool_proj_4cd", config.pool_proj_4cd, POOL_PROJ_4CD_CHOICES)
    check_choice("padding", config.padding, geometry.PADDINGS)
    options = LayerOptions(
        norm=config.norm,
        activation=config.activation,
        bn_epsilon=config.bn.epsilon,
        bn_momentum=config.bn.momentum,
        bn_group_size=config.bn.group_size or None,
        conv_init_scale=config.conv_init_scale,
        bn_scale=config.bn.use_scale,
        conv_bias_with_bn=config.conv_bias_with_bn,
        padding=config.padding,
        cpu_matmuls=platforms.uses_matmul_convs(config, platform),
        dtype=compute_dtype(config),
    )
    return BNInception(
        num_classes=config.num_classes,
        options=options,
        stem=config.stem,
        separable_first_conv=config.first_conv == "separable",
        use_lrn=config.use_lrn,
        lrn_pixel_scale=config.lrn_pixel_scale,
        dropout_rate=config.dropout_rate,
        width_multiplier=config.width_multiplier,
        min_depth=config.min_depth,
        pool_proj_4cd=config.pool_proj_4cd,
        per_activation_bn_last=config.per_activation_bn_last,
        first_conv_bn=config.first_conv_bn,
    )
