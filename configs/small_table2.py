"""The Table-2 experiments at CPU scale: a narrow BN-Inception on Fashion-MNIST.

Everything, with the report and the plot (86 minutes measured on 2 CPU cores; it
resumes when run again, so it can run in parts; --quick: every row, shorter):
  ./scripts/reproduce_small.sh [--quick]
One row:
  python -m bn_repro.main --config=configs/small_table2.py:bn_x5 --workdir=runs/small/bn_x5_seed0

The argument names the row: an ImageNet Table-2 config (inception, bn_baseline, bn_x5,
bn_x30, bn_x5_sigmoid, inception_sigmoid), one of the learning-rate tolerance rows
nobn_x5 / nobn_x30 (BN-x5 / BN-x30 with BN removed: the same rates, no dropout, the
fast decay, nothing else changed), or ``calibration`` (Inception at a constant rate
given with --config.learning_rate). Append ``,quick`` for the short version. Each
row is its ImageNet config with only the scale changed, the same way for every row,
so what differs between rows is what differs on ImageNet: BN or not, ReLU or
sigmoid, learning rates 1× / 5× / 30×, the 6× faster decay, dropout 40% or none, L2
4e-5 or 8e-6, LRN or none, and the run lengths (BN-x* train 6/31 as long as Inception).

Paper (Table 2): BN-x5 reaches Inception's best accuracy in 14× fewer steps, BN-x30
in 11× (and 5× / 30× rates are what BN makes trainable). Here the question is the
same; the answer is in README.md ("Table 2 at CPU scale").

Scale changes (identical in every row) and why:

* Data: Fashion-MNIST (28×28 grey, 10 classes), from Debian's
  dataset-fashion-mnist, offline: ``TRAIN_EXAMPLES`` training images (the first
  1,000 of each class), the 10,000 test images as the validation set. No
  photometric distortions; reshuffled completely every epoch. Why a subset: Table 2
  is a many-epoch regime (Inception ran ~775 epochs; BN-x5 crossed its accuracy at
  ~52), so its speed-ups are speed-ups of optimisation, not of learning from few
  images. On all 60,000 images Inception's 12,000 steps are 6.4 epochs and the 14×
  point 0.4 epoch: measured, no run could reach a 6-epoch accuracy that early (the
  sample-efficiency limit). On 10,000 images Inception's run is 38 epochs, the 14×
  point (measured: ~400 steps) 1.3 epochs and BN-x*'s runs 7.4 epochs, the same
  steps and compute.
* Network: BN-Inception with the small stem (3×3/1 first convolution, no first max
  pool: 28 → 14 → 7 → 4 through the modules, as 28 → 14 → 7 at 224). Every depth
  ×``WIDTH`` with ``MIN_DEPTH`` 4: every depth of Figure 5 is a multiple of 32, so at
  ×1/8 each layer keeps the table's proportions exactly (3a: 8, 8, 8, 8, 12, proj 4;
  5b: 44 + 40 + 28 + 16 = 128). The first convolution is ``plain``: on one input
  channel a separable convolution is a rank-limited plain one (TF-slim's depth
  multiplier min(depth(64)//3, 8) would be 2 here), and the separable form exists to
  save compute on 3-channel 7×7 inputs, not to change the network. The ImageNet
  network is unchanged.
* Batch: 32 examples, the paper's mini-batch (ImageNet: 50 replicas × 32).
* Learning rates: every row's ImageNet rate × ``LR_SCALE``, so Inception starts at
  ``INCEPTION_LR`` and BN-x5 / BN-x30 at 5× / 30× that. ``INCEPTION_LR`` is
  calibrated the paper's way (it calls its rate the largest that trains Inception
  well): Inception at the constant rates ``CALIBRATION_RATES`` for
  ``CALIBRATION_STEPS`` steps, for each of ``CALIBRATION_SEEDS``, evaluated
  ``CALIBRATION_EVALS`` times; a rate trains well if no seed diverges and its final
  accuracy (mean over seeds of the mean of the last 3 evaluations) is within
  ``CALIBRATION_MARGIN`` of the best rate's. ``INCEPTION_LR`` is the largest such
  rate. Two seeds, because with one the rule gave 0.02 in one run and 0.04 in
  another (README: the table).
* Steps: every step count (run length, decay interval) × ``TIME_SCALE``, so that
  Inception runs ``INCEPTION_STEPS`` (38 epochs) and decays ×0.96 every 124 steps
  and BN-x* every 21: the ImageNet schedules' shapes (97 decays over Inception's run,
  LR ×0.019 at its end; BN-x* 6× faster, 2,320 steps). The paper's 14× point,
  Inception's steps to its plateau / 14 (measured: about 400 of BN-x*'s 2,320
  steps), comes while BN-x*'s rate is still ×0.46 of its start (on ImageNet BN-x5
  crossed 72.2% at ×0.2). The report checks that Inception plateaued (its
  3-evaluation moving average gains < 0.3 pt over the last 25% of the run): it did
  on 10,000 images, not on all 60,000 (README).
* BN: moving averages with momentum ``BN_MOMENTUM`` 0.9 (a lag of ~10 steps, under
  a tenth of an evaluation interval; 0.99 lagged ~100 steps, 6% of a BN-x run). The
  report also evaluates the checkpoints around every crossing with Algorithm 2's
  population statistics.
* Evaluation: ``EVALS_PER_RUN`` times per BN-x-length run, ``LONG_RUN_EVALS`` per
  Inception-length run, on all 10,000 test images, with a checkpoint each time, all
  kept (for the population-statistics check).
* Speed: ``STEPS_PER_LOOP`` steps per compiled call (convolutions are matrix
  products on CPU, which run as fast inside the trainer's loop as outside it).
* ``,quick``: Inception ``QUICK_INCEPTION_STEPS`` steps (everything scaled with it),
  ``QUICK_EVALS_PER_RUN`` evaluations on ``QUICK_EVAL_EXAMPLES`` test images (the
  first of each class; evaluations on all 10,000 were half of a short job's time),
  calibration ``QUICK_CALIBRATION_STEPS`` steps.
"""

import importlib

import ml_collections

from bn_repro.configs import imagenet_common, inception

ROWS = ("inception", "bn_baseline", "bn_x5", "bn_x30", "bn_x5_sigmoid", "inception_sigmoid")
# "BN enables higher learning rates": the BN-x rows' recipes with BN removed.
WITHOUT_BN = {"nobn_x5": "bn_x5", "nobn_x30": "bn_x30"}
CALIBRATION = "calibration"
ALL_ROWS = (*ROWS, *WITHOUT_BN, CALIBRATION)

WIDTH = 0.125
MIN_DEPTH = 4
FIRST_CONV = "plain"
BATCH_SIZE = 32
TRAIN_EXAMPLES = 10_000
BN_MOMENTUM = 0.9
INCEPTION_LR = 0.02
LR_SCALE = INCEPTION_LR / inception.get_config().learning_rate
INCEPTION_STEPS = 12_000
QUICK_INCEPTION_STEPS = 1_000
TIME_SCALE = INCEPTION_STEPS / inception.get_config().total_steps
EVALS_PER_RUN = 20  # runs of BN-x* length: the 14× point needs resolution
LONG_RUN_EVALS = 12  # Inception and BN-Baseline (evaluations cost ~100 steps each)
QUICK_EVALS_PER_RUN = 5
QUICK_EVAL_EXAMPLES = 2_000
STEPS_PER_LOOP = 20

# Seeds per row: two for Inception and the two rows of the headline.
SEEDS = {"inception": (0, 1), "bn_x5": (0, 1), "bn_x30": (0, 1)}

CALIBRATION_RATES = (0.005, 0.01, 0.02, 0.04, 0.08)
CALIBRATION_SEEDS = (0, 1)  # one run per rate has ~1–2 pt of noise, more than the margin
CALIBRATION_STEPS = 1_000
QUICK_CALIBRATION_STEPS = 100  # ten such jobs: 200 steps took --quick past 15 min
CALIBRATION_MARGIN = 0.01
CALIBRATION_EVALS = 5


def _parse(arg: str) -> tuple[str, bool]:
    row, _, mode = arg.partition(",")
    if row not in ALL_ROWS or mode not in ("", "quick"):
        raise ValueError(
            f"Unknown row {arg!r}; valid choices: {list(ALL_ROWS)}, each optionally "
            "followed by ',quick' (e.g. 'bn_x5,quick')."
        )
    return row, mode == "quick"


def _imagenet_config(row: str) -> ml_collections.ConfigDict:
    base = WITHOUT_BN.get(row, "inception" if row == CALIBRATION else row)
    config = importlib.import_module(f"bn_repro.configs.{base}").get_config()
    if config.dataset != imagenet_common.get_config().dataset:
        raise ValueError(f"configs/{base}.py is not an ImageNet Table-2 row.")
    if row in WITHOUT_BN:
        config.norm = "none"
    if row == CALIBRATION:
        config.schedule = "constant"
    return config


def get_config(arg: str = "bn_x5") -> ml_collections.ConfigDict:
    row, quick = _parse(arg)
    config = _imagenet_config(row)
    time_scale = TIME_SCALE * (QUICK_INCEPTION_STEPS / INCEPTION_STEPS if quick else 1)

    config.dataset = "fashion_mnist"
    config.data_dir = ""
    config.num_classes = 10
    config.image_size = 28
    config.stem = "small"
    config.first_conv = FIRST_CONV
    config.width_multiplier = WIDTH
    config.min_depth = MIN_DEPTH
    config.bn.momentum = BN_MOMENTUM

    config.eval_batch_size = 250
    config.learning_rate *= LR_SCALE
    config.lr_decay_steps = max(1, round(config.lr_decay_steps * time_scale))
    # A multiple of steps_per_loop (BN-x*: 2,323 → 2,320), so that no shorter loop
    # is compiled for the last steps (~35 s on one core).
    loops = round(config.total_steps * time_scale / STEPS_PER_LOOP)
    config.total_steps = max(1, loops) * STEPS_PER_LOOP
    # A no-op at batch 32 (the linear rule's factor is 1), scaled like every step count.
    config.warmup_steps = round(config.warmup_steps * time_scale)
    long_run = config.total_steps >= round(INCEPTION_STEPS * time_scale / TIME_SCALE)
    evals = QUICK_EVALS_PER_RUN if quick else LONG_RUN_EVALS if long_run else EVALS_PER_RUN
    if row == CALIBRATION:
        config.total_steps = QUICK_CALIBRATION_STEPS if quick else CALIBRATION_STEPS
        evals = CALIBRATION_EVALS
    # A multiple of steps_per_loop, so that every compiled loop has the same length.
    loops = max(1, round(config.total_steps / evals / STEPS_PER_LOOP))
    config.eval_every_steps = loops * STEPS_PER_LOOP
    config.checkpoint_every_steps = config.eval_every_steps
    config.keep_checkpoints = evals + 1
    config.log_every_steps = config.eval_every_steps
    config.steps_per_loop = STEPS_PER_LOOP
    # Last: the ImageNet step counts read above follow the batch size until pinned.
    config.batch_size = BATCH_SIZE
    config.train_examples = TRAIN_EXAMPLES
    config.eval_examples = QUICK_EVAL_EXAMPLES if quick else 0
    config.epoch_examples = TRAIN_EXAMPLES
    return config
