"""Inception with the sigmoid and no BN: the paper's negative control (Section 4.2.2).

Run (one host; any number of local accelerators dividing 1600):
  python -m bn_repro.main --config=configs/inception_sigmoid.py \
      --workdir=runs/inception_sigmoid --config.data_dir=$TFDS_DATA_DIR
Several hosts: the same command on every host, with a --workdir all of them share,
plus --coordinator_address=HOST0:1234 --num_processes=N --process_id=I (detected on
TPU pod slices, SLURM and Open MPI). The same command resumes.

Paper: "we also attempted to train the original Inception with sigmoid, but the
model remained at the accuracy equivalent to chance" (0.1% top-1); not a Table-2 row.

inception.py (no BN, LRN, 40% dropout, learning rate 0.0015, its schedule, L2,
distortions and shuffling) with every hidden nonlinearity the sigmoid. The paper
gives no length; we stop at BN-x5-Sigmoid's 120,000 steps so the two sigmoid
networks can be compared over the same steps (the flat line shows long before).
Other open choices: configs/imagenet_common.py.
"""

import ml_collections

from bn_repro.configs import imagenet_common, inception


def get_config() -> ml_collections.ConfigDict:
    config = inception.get_config()
    config.activation = "sigmoid"
    config.total_epochs = imagenet_common.paper_epochs(6e6)
    return config
