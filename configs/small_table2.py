"""The Table-2 experiments at CPU scale: a narrow BN-Inception on Fashion-MNIST.

Run all six and write the table and the plot (about an hour on 2 quiet CPU cores):
  ./scripts/reproduce_small.sh
One row:
  python -m bn_repro.main --config=configs/small_table2.py:bn_x5 --workdir=runs/small/bn_x5

The argument names the ImageNet config the row is derived from: inception,
bn_baseline, bn_x5, bn_x30, bn_x5_sigmoid or inception_sigmoid. `get_config` loads
that file (configs/NAME.py) and changes only the scale of the problem, the same way
for every row, so what differs between rows is what differs on ImageNet: BN or not,
ReLU or sigmoid, learning rates 1× / 5× / 30×, the 6× faster decay, dropout 40% or
none, L2 4e-5 or 8e-6, LRN or none, and the run lengths (BN-x* and
Inception-Sigmoid train 6/31 as long as Inception and BN-Baseline).

Scale changes (identical in every row):

* Data: Fashion-MNIST (28×28 grey, 10 classes; 60,000 training, 10,000 test images
  as the validation set), from Debian's dataset-fashion-mnist, offline. It has no
  photometric distortions and is reshuffled completely every epoch, so the ImageNet
  rows' distortion and shuffling settings have no effect here.
* Network: BN-Inception with the small stem (3×3/1 first convolution, no first max
  pool: 28 → 14 → 7 → 4 through the modules, as 28 → 14 → 7 at 224), every depth ×
  ``WIDTH`` (at least ``MIN_DEPTH``): 3a outputs 36 channels, 5b 128; 161,000
  parameters (162,000 with BN). Separable first convolution and 4c/4d projections as on ImageNet.
* Batch: 32 examples, the paper's mini-batch (ImageNet uses 50 replicas × 32).
* Learning rates: every row's ImageNet rate × ``LR_SCALE``, so Inception starts at
  ``INCEPTION_LR`` and BN-x5 and BN-x30 at 5× and 30× that. The paper's 0.0015
  applies to a 1600-image mean gradient on ImageNet; at 0.01 the small Inception
  learns steadily from the start (75% test accuracy after 600 steps in a trial run)
  and BN-x30's 0.3 still trains (79% after 600 steps).
* Steps: every step count (run length, decay interval) × ``TIME_SCALE``, chosen so
  that Inception runs ``INCEPTION_STEPS`` (4.3 epochs); its ×0.96 decays then come
  every 83 steps and BN-x*'s every 14, which keeps the ImageNet schedules' shapes
  over the runs (LR ×0.020 and ×0.011 from start to end, as on ImageNet).
* Evaluation and checkpoints: ``EVALS_PER_RUN`` times per run, on all 10,000 test
  images, so every curve has the same number of points.
"""

import importlib

import ml_collections

from configs import imagenet_common, inception

ROWS = ("inception", "bn_baseline", "bn_x5", "bn_x30", "bn_x5_sigmoid", "inception_sigmoid")

WIDTH = 0.125
MIN_DEPTH = 8
BATCH_SIZE = 32
INCEPTION_LR = 0.01
LR_SCALE = INCEPTION_LR / inception.get_config().learning_rate
INCEPTION_STEPS = 8000
TIME_SCALE = INCEPTION_STEPS / inception.get_config().total_steps
EVALS_PER_RUN = 20


def _scaled(steps: int) -> int:
    return max(1, round(steps * TIME_SCALE))


def get_config(row: str = "bn_x5") -> ml_collections.ConfigDict:
    if row not in ROWS:
        raise ValueError(f"Unknown row {row!r}; valid choices: {list(ROWS)}.")
    config = importlib.import_module(f"configs.{row}").get_config()
    if config.dataset != imagenet_common.get_config().dataset:
        raise ValueError(f"configs/{row}.py is not an ImageNet Table-2 row.")

    config.dataset = "fashion_mnist"
    config.data_dir = ""
    config.num_classes = 10
    config.image_size = 28
    config.stem = "small"
    config.width_multiplier = WIDTH
    config.min_depth = MIN_DEPTH

    config.batch_size = BATCH_SIZE
    config.eval_batch_size = 1000
    config.learning_rate *= LR_SCALE
    config.lr_decay_steps = _scaled(config.lr_decay_steps)
    config.total_steps = _scaled(config.total_steps)
    config.eval_every_steps = config.total_steps // EVALS_PER_RUN
    config.checkpoint_every_steps = config.eval_every_steps
    config.log_every_steps = config.eval_every_steps
    return config
