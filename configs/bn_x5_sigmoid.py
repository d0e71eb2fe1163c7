"""BN-x5-Sigmoid: BN-x5 with the sigmoid instead of ReLU (Table 2, Section 4.2.2).

Run (one host; any number of local accelerators dividing 1600):
  python -m bn_repro.main --config=configs/bn_x5_sigmoid.py --workdir=runs/bn_x5_sigmoid \
      --config.data_dir=$TFDS_DATA_DIR
Several hosts: the same command on every host, with a --workdir all of them share,
plus --coordinator_address=HOST0:1234 --num_processes=N --process_id=I (detected on
TPU pod slices, SLURM and Open MPI). The same command resumes; per-worker BN
statistics as in the paper's workers: add --config.bn.group_size=32.

Paper, Table 2: maximum accuracy 69.8% (it never reaches 72.2%, so the steps column
is blank). Without BN the same sigmoid network stays at chance
(inception_sigmoid.py).

Identical to bn_x5.py except that every hidden nonlinearity is the sigmoid,
g(BN(W∗u)) with g(x) = 1 / (1 + e^−x). The learning rate 0.0075 is implied by the
name rather than printed. Choices the paper leaves open: configs/imagenet_common.py.
"""

import ml_collections

from bn_repro.configs import bn_x5


def get_config() -> ml_collections.ConfigDict:
    config = bn_x5.get_config()
    config.activation = "sigmoid"
    return config
