"""One of the six networks of the paper's ensemble (Section 4.2.3, Table 3).

Build the ensemble: train members 0-5, then average their class probabilities.
  for i in 0 1 2 3 4 5; do
    python -m bn_repro.main --config=configs/ensemble_member.py:$i \
        --workdir=runs/ensemble/$i --config.data_dir=$TFDS_DATA_DIR
  done
  python -m bn_repro.ensemble --workdirs runs/ensemble/{0,1,2,3,4,5} \
      --crops=144 --bn_stats=population
The paper's row: 144 crops, 6 models, 20.1% top-1 and 4.9% top-5 error on the
validation set (4.82% top-5 on the test server). ``--config=configs/ensemble_member.py:
3,small`` builds member 3 from the CPU-scale BN-x30 of configs/small_table2.py instead
(``3,small,quick``: its short version).

Paper: "Each network was based on BN-x30, modified via some of the following:
increased initial weights in the convolutional layers; using Dropout (with the
Dropout probability of 5% or 10%, vs. 40% for the original Inception); and using
non-convolutional, per-activation Batch Normalization with last hidden layers of the
model. Each network achieved its maximum accuracy after about 6·10⁶ training steps."

It does not say which network got which modification. `MEMBERS` gives the larger
initial weights and per-activation BN to three networks each, 5% dropout to three
and 10% to the others, no two alike; every member also has its own seed (initial
weights, dropout masks, data order):

  member  conv_init_scale  dropout_rate  per_activation_bn_last  seed
  0       1                0.05          no                      0
  1       1                0.10          no                      1
  2       1.5              0.05          no                      2
  3       1.5              0.10          yes                     3
  4       1                0.10          yes                     4
  5       1.5              0.05          yes                     5

* "Increased initial weights": the paper gives no factor; we multiply the initial
  convolution weights by 1.5 (``conv_init_scale``). Every convolution is followed
  by BN, so this leaves the network's function unchanged but lowers the weights'
  effective learning rate (BN's scale invariance: the relative update shrinks as
  1/scale²), a milder start for BN-x30's large rate.
* Per-activation BN on the last hidden layer: ``per_activation_bn_last``, see
  bn_repro/models/inception.py for the layers it covers.
* Everything else, including the length (6·10⁶ paper steps), is BN-x30's
  (configs/bn_x30.py).
"""

import ml_collections

from bn_repro.configs import bn_x30, small_table2

# (conv_init_scale, dropout_rate, per_activation_bn_last) of each member.
MEMBERS = (
    (1.0, 0.05, False),
    (1.0, 0.10, False),
    (1.5, 0.05, False),
    (1.5, 0.10, True),
    (1.0, 0.10, True),
    (1.5, 0.05, True),
)


def get_config(member: str = "0") -> ml_collections.ConfigDict:
    index, _, scale = member.partition(",")
    if (
        not index.isdigit()
        or int(index) >= len(MEMBERS)
        or scale not in ("", "small", "small,quick")
    ):
        raise ValueError(
            f"Unknown member {member!r}; use 0-{len(MEMBERS) - 1}, optionally followed "
            "by ',small' or ',small,quick' (e.g. configs/ensemble_member.py:3,small)."
        )
    index = int(index)
    small = "bn_x30" + scale.removeprefix("small")
    config = small_table2.get_config(small) if scale else bn_x30.get_config()
    config.conv_init_scale, config.dropout_rate, config.per_activation_bn_last = MEMBERS[index]
    config.seed = index
    return config
