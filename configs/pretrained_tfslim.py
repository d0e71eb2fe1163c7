"""TF-slim's published inception_v2 (BN-Inception) weights in our network and evaluator.

Import, then evaluate (README "Published weights"):
  python scripts/import_weights.py --format=tfslim \
      --source=inception_v2.ckpt --workdir=runs/tfslim_inception_v2
  python -m bn_repro.evaluate --workdir=runs/tfslim_inception_v2 \
      --config=configs/pretrained_tfslim.py --config.data_dir=$TFDS_DATA_DIR
Publisher's number (TF-slim README, not ours): 73.9% top-1, 91.8% top-5 on the 50,000
validation images, single central crop.

The network of tensorflow/models research/slim/nets/inception_v2.py (tf_slim 1.1.0),
which differs from Figure 5 (bn_repro/models/inception.py) in:
* the separable first convolution (depth multiplier 8) has a bias and ReLU but no
  BN (slim's arg scope puts BN on conv2d only): ``first_conv_bn=False``;
* BN has β but no γ (slim's batch_norm default ``scale=False``), ε = 1e-3;
* pool projection 96 in 4c/4d (our default too);
* 1001 classes, class 0 "background": ``num_classes=1001``, ``label_offset=1``;
  the classifier is a 1×1 convolution with bias on the 1×1 pooled map, the same
  sums as our dense layer (the importer reshapes its kernel);
* dropout keep probability 0.8 before the classifier (only for fine-tuning).
Inputs: RGB in [-1, 1]; central crop of 87.5%, bilinear resize to 224 (slim's
inception preprocessing; our default). Training keys (for fine-tuning with
``--config.init_from``) are imagenet_common's.
"""

import ml_collections

from bn_repro.configs import imagenet_common


def get_config() -> ml_collections.ConfigDict:
    config = imagenet_common.get_config()
    config.num_classes = 1001
    config.label_offset = 1
    config.input_range = "minus_one_one"
    config.eval_crop = "central_fraction"

    config.norm = "batch"
    config.first_conv = "separable"
    config.first_conv_bn = False
    config.bn.use_scale = False
    config.bn.epsilon = 1e-3
    config.conv_bias_with_bn = False
    config.padding = "same"
    config.pool_proj_4cd = 96
    config.use_lrn = False
    config.dropout_rate = 0.2
    return config
