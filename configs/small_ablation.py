"""Section 4.2.1 at CPU scale: BN-x5 with one of its seven changes undone per arm.

One arm (``configs/small_ablation.py:ARM``, ``,quick`` for the short version):
  python -m bn_repro.main --config=configs/small_ablation.py:dropout --workdir=runs/ablation/dropout

Paper, Section 4.2.1: BN-x5 is BN-Baseline with "increase learning rate, remove
Dropout, reduce the L2 weight regularization by 5, accelerate the learning rate
decay, remove Local Response Normalization, shuffle training examples more
thoroughly, reduce the photometric distortions"; only the shuffling is given a
number (about 1% of validation accuracy).

Each arm is configs/small_table2.py's BN-x5 with the key(s) of one change set back
to Inception's value (`UNDO`), nothing else: the rate back to Inception's, dropout
0.4, L2 ×5, Inception's 6× slower decay, LRN on, shuffling by fixed batches, full
photometric distortions. Two controls separate BN from the schedule (`CONTROLS`):
Inception (no BN) with BN-x5's decay and length at Inception's rate, and
BN-Baseline with only BN-x5's faster decay and length. Every arm runs BN-x5's
length and is evaluated on the same grid.
"""

import ml_collections

from bn_repro.configs import small_table2

# Arm → the keys it takes from Inception's CPU-scale config.
UNDO = {
    "rate": ("learning_rate",),
    "dropout": ("dropout_rate",),
    "l2": ("weight_decay",),
    "decay": ("lr_decay_steps",),
    "lrn": ("use_lrn",),
    "shuffle": ("shuffle",),
    "distortions": ("distortion_strength",),
}
# Control → (the recipe it starts from, the keys it takes from BN-x5).
CONTROLS = {
    "inception_bn_x5_schedule": ("inception", ("lr_decay_steps", "total_steps")),
    "bn_baseline_fast_decay": ("bn_baseline", ("lr_decay_steps", "total_steps")),
}
ARMS = (*UNDO, *CONTROLS)
# Keys that follow the run's length: the evaluation grid and bookkeeping.
LENGTH_KEYS = ("total_epochs",)


def get_config(arg: str = "dropout") -> ml_collections.ConfigDict:
    arm, _, mode = arg.partition(",")
    if arm not in ARMS or mode not in ("", "quick"):
        raise ValueError(
            f"Unknown arm {arg!r}; valid choices: {list(ARMS)}, each optionally followed by "
            "',quick'."
        )
    suffix = ",quick" if mode else ""
    bn_x5 = small_table2.get_config("bn_x5" + suffix)
    if arm in UNDO:
        inception = small_table2.get_config("inception" + suffix)
        for key in UNDO[arm]:
            bn_x5[key] = inception[key]
        return bn_x5
    recipe, keys = CONTROLS[arm]
    config = small_table2.get_config(recipe + suffix)
    for key in (*keys, *LENGTH_KEYS):
        config[key] = bn_x5[key]
    return config
