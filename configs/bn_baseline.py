"""BN-Baseline: Inception with BN before every nonlinearity (Table 2, Section 4.2).

Run (one host; any number of local accelerators dividing 1600):
  python -m bn_repro.main --config=configs/bn_baseline.py --workdir=runs/bn_baseline \
      --config.data_dir=$TFDS_DATA_DIR
Several hosts: the same command on every host, with a --workdir all of them share,
plus --coordinator_address=HOST0:1234 --num_processes=N --process_id=I (detected on
TPU pod slices, SLURM and Open MPI). The same command resumes; per-worker BN
statistics as in the paper's workers: add --config.bn.group_size=32.

Paper, Table 2: reaches Inception's 72.2% after 13.3·10⁶ steps (under half of
Inception's 31.0·10⁶); maximum accuracy 72.7%.

"Same as Inception with Batch Normalization before each nonlinearity": every
convolution computes g(BN(W∗u)) with its bias dropped; everything else, including
the learning rate 0.0015, 40% dropout, LRN, L2, distortions, shuffling and length
(620,000 steps), is inception.py's. (LRN stays: the paper removes it only as one of
the Section 4.2.1 changes of BN-x*; --config.use_lrn=False drops it.) BN: ε 1e-3,
statistics over the global batch, moving averages (momentum 0.99) for evaluation;
see configs/imagenet_common.py for all choices the paper leaves open.
"""

import ml_collections

from bn_repro.configs import inception


def get_config() -> ml_collections.ConfigDict:
    config = inception.get_config()
    config.norm = "batch"
    return config
