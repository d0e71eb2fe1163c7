"""BN-Inception at CPU scale on Fashion-MNIST: the Figure 5 network, narrow and small-stemmed.

Run:
  python -m bn_repro.main --config=configs/bn_inception_fashion_mnist.py \\
      --workdir=runs/bn_inception_fashion_mnist

A smoke-scale check that the paper's ImageNet network trains end to end through the
same CLI, data pipeline and BN (Algorithm 1 in training, moving averages for
evaluation) as the MNIST experiment. It is not an experiment of the paper.

* Network: BN-Inception (bn_repro/models/inception.py) with every module of
  Figure 5, BN before each ReLU, the small stem (3×3/1 first convolution, no first
  max pool, so the modules run at 14, 7 and 4 px as at 28, 14 and 7 on ImageNet) and
  every depth × 0.25 (at least 16): 642,375 parameters, 31 M multiply-accumulates
  per image (scripts/model_summary.py with this config).
* Data: Fashion-MNIST, 60,000 training and 10,000 test images, 28×28 grey, read
  offline from Debian's dataset-fashion-mnist.
* Optimisation: SGD with momentum 0.9, batch 64, learning rate 0.1 halved every 500
  steps, L2 4e-5 (TF-slim's Inception weight decay), 1,500 steps (1.6 epochs); the
  test set is evaluated every 500 steps. No dropout or LRN, as in BN-x5.

Expect about 91% test accuracy (measured: 77.8% at step 500, 88.1% at 1,000, 90.85%
at 1,500). The measured run took 18 minutes on the shared 2-core development machine
(15 CPU-minutes; about 0.5 s per step; it got 0.84 of a core on average).
"""

import ml_collections

from bn_repro.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model = "inception"
    config.dataset = "fashion_mnist"
    config.num_classes = 10
    config.image_size = 28

    config.norm = "batch"
    config.activation = "relu"
    config.use_lrn = False
    config.dropout_rate = 0.0
    config.stem = "small"
    config.width_multiplier = 0.25
    config.min_depth = 16
    config.first_conv = "separable"
    config.pool_proj_4cd = 96

    config.optimizer = "sgd"
    config.momentum = 0.9
    config.learning_rate = 0.1
    config.schedule = "exponential"
    config.lr_decay_rate = 0.5
    config.lr_decay_steps = 500
    config.lr_staircase = True
    config.weight_decay = 4e-5

    config.batch_size = 64
    config.eval_batch_size = 1000
    config.total_steps = 1500
    config.steps_per_loop = 50
    config.eval_every_steps = 500
    config.checkpoint_every_steps = 500
    config.log_every_steps = 50
    return config
