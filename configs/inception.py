"""Inception (no BN): the baseline row of the paper's Table 2 (Section 4.2).

Run (one host; any number of local accelerators dividing 1600):
  python -m bn_repro.main --config=configs/inception.py --workdir=runs/inception \
      --config.data_dir=$TFDS_DATA_DIR
Several hosts: the same command on every host, with a --workdir all of them share,
plus --coordinator_address=HOST0:1234 --num_processes=N --process_id=I (detected on
TPU pod slices, SLURM and Open MPI). The same command resumes from the latest
checkpoint; TensorBoard: tensorboard --logdir runs.

Paper, Table 2: reaches its maximum accuracy of 72.2% top-1 (single crop, validation)
after 31.0·10⁶ training steps.

The network of the appendix without BN (convolutions with biases), ReLU, local
response normalization where GoogLeNet has it, 40% dropout before the classifier.
Initial learning rate 0.0015 per update of 32 examples (×50 = 0.075 per step of
1600 under the linear rule, after a 5-epoch warm-up), decayed ×0.96 every 8 epochs,
for 31·10⁶ updates of 32 (774 epochs, 620,000 steps); L2 4e-5; full
photometric distortions; no within-file shuffling. Everything the paper leaves open
(replicas, momentum, decay rate and interval, L2, steps, ...) is chosen and explained
in configs/imagenet_common.py, identically for all rows.
"""

import ml_collections

from bn_repro.configs import imagenet_common


def get_config() -> ml_collections.ConfigDict:
    config = imagenet_common.get_config()
    config.norm = "none"
    config.activation = "relu"
    config.use_lrn = True
    config.dropout_rate = 0.4
    config.learning_rate = 0.0015
    return config
