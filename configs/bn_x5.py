"""BN-x5: BN-Baseline with the Section 4.2.1 changes, learning rate ×5 (Table 2).

Run (one host; any number of local accelerators dividing 1600):
  python -m bn_repro.main --config=configs/bn_x5.py --workdir=runs/bn_x5 \
      --config.data_dir=$TFDS_DATA_DIR
Several hosts: the same command on every host, with a --workdir all of them share,
plus --coordinator_address=HOST0:1234 --num_processes=N --process_id=I (detected on
TPU pod slices, SLURM and Open MPI). The same command resumes; per-worker BN
statistics as in the paper's workers: add --config.bn.group_size=32.

Paper, Table 2: reaches 72.2% after 2.1·10⁶ steps (14× fewer than Inception; 42,000
of our 1600-example steps); maximum accuracy 73.0%.

Changes from BN-Baseline (Section 4.2.1), each a key set by
configs/imagenet_common.accelerate: initial learning rate 0.0075 per 32 examples
(0.375 per step of 1600 under the linear rule, reached after a 5-epoch warm-up);
no dropout; L2 8e-6 (5× smaller); learning-rate decay 6× faster (×0.96 every 4/3
epoch = 1,068 steps); no LRN; within-file shuffling through a 10,000-example
buffer; photometric distortions at half strength; 6·10⁶ paper steps (149.9 epochs,
120,000 steps). The whole schedule: add --dry_run to the command. The
values the paper leaves open are explained in configs/imagenet_common.py.
"""

import ml_collections

from bn_repro.configs import bn_baseline, imagenet_common


def get_config() -> ml_collections.ConfigDict:
    config = bn_baseline.get_config()
    imagenet_common.accelerate(config, learning_rate=0.0075)
    return config
