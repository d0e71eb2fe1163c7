"""BN-x30: BN-x5 with the initial learning rate ×30 of Inception's, 0.045 (Table 2).

Run (one host; any number of local accelerators dividing 1600):
  python -m bn_repro.main --config=configs/bn_x30.py --workdir=runs/bn_x30 \
      --config.data_dir=$TFDS_DATA_DIR
Several hosts: the same command on every host, with a --workdir all of them share,
plus --coordinator_address=HOST0:1234 --num_processes=N --process_id=I (detected on
TPU pod slices, SLURM and Open MPI). The same command resumes; per-worker BN
statistics as in the paper's workers: add --config.bn.group_size=32.

Paper, Table 2: reaches 72.2% after 2.7·10⁶ steps ("somewhat slower initially"
than BN-x5); maximum accuracy 74.8%, reached after 6·10⁶ steps (120,000 of our
1600-example steps, this config's length).

Identical to bn_x5.py (all Section 4.2.1 changes, same schedule shape, L2, dropout,
shuffling, distortions and length) except the initial learning rate: 0.045 per 32
examples, 2.25 per step of 1600 under the linear rule after the 5-epoch warm-up.
Choices the paper leaves open: configs/imagenet_common.py.
"""

import ml_collections

from bn_repro.configs import bn_baseline, imagenet_common


def get_config() -> ml_collections.ConfigDict:
    config = bn_baseline.get_config()
    imagenet_common.accelerate(config, learning_rate=0.045)
    return config
