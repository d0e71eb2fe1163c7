"""The Caffe BN-Inception ported to PyTorch by pretrainedmodels, in our network and evaluator.

Import, then evaluate (README "Published weights"):
  python scripts/import_weights.py --format=pytorch \
      --source=bn_inception-52deb4733.pth --workdir=runs/caffe_bninception
  python -m bn_repro.evaluate --workdir=runs/caffe_bninception \
      --config=configs/pretrained_caffe.py --config.data_dir=$TFDS_DATA_DIR
Publisher's number (pretrainedmodels README, not ours): 73.524% top-1, 91.562% top-5
on the 50,000 validation images.

The network of pretrainedmodels/models/bninception.py (pretrainedmodels 0.7.4), which
differs from Figure 5 (bn_repro/models/inception.py) in:
* a plain 7×7/2 first convolution (then BN): ``first_conv="plain"``;
* every convolution keeps its bias before BN: ``conv_bias_with_bn=True``;
* BN with γ and β, ε = 1e-5;
* pool projection 128 in 4c/4d, as printed (608 channels; 4e gives 1056);
* Caffe's window geometry: symmetric padding and rounding down in convolutions,
  rounding up in pools, average pools counting the padding: ``padding="caffe"``
  (bn_repro/models/geometry.py);
* no dropout; 1000 classes from a Linear layer.
Inputs: BGR in [0, 255] minus the means [104, 117, 128]; shorter side resized to 256,
central 224 crop (its TransformImage). Training keys (for fine-tuning with
``--config.init_from``) are imagenet_common's.
"""

import ml_collections

from bn_repro.configs import imagenet_common


def get_config() -> ml_collections.ConfigDict:
    config = imagenet_common.get_config()
    config.num_classes = 1000
    config.label_offset = 0
    config.input_range = "caffe_bgr"
    config.eval_crop = "resize_shorter"

    config.norm = "batch"
    config.first_conv = "plain"
    config.first_conv_bn = True
    config.bn.use_scale = True
    config.bn.epsilon = 1e-5
    config.conv_bias_with_bn = True
    config.padding = "caffe"
    config.pool_proj_4cd = 128
    config.use_lrn = False
    config.dropout_rate = 0.0
    return config
