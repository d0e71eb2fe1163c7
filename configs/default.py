"""Keys every experiment has, with their defaults; each config file overrides some.

Every key can be changed from the command line, e.g. ``--config.learning_rate=0.1``.
"""

import ml_collections

from bn_repro.batch_norm import DEFAULT_EPSILON, DEFAULT_MOMENTUM


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.model = "mlp"
    config.dataset = "mnist"
    config.data_dir = ""  # empty: the dataset's default location
    config.num_classes = 10
    config.image_size = 28

    # Network options (Inception; see bn_repro/models/inception.py). The MLP reads
    # only norm, bn and num_classes.
    config.activation = "relu"  # "relu" or "sigmoid"
    config.use_lrn = False  # local response normalization (Inception baseline only)
    config.dropout_rate = 0.0  # before the classifier
    config.width_multiplier = 1.0  # every depth scaled, but not below min_depth
    config.min_depth = 16
    config.stem = "imagenet"  # "imagenet" (224 px) or "small" (28-64 px inputs)
    config.first_conv = "separable"  # "separable" (depth multiplier 8) or "plain"
    config.pool_proj_4cd = 96  # pool projection of 4c and 4d: 96 or 128 (see README)
    config.conv_init_scale = 1.0  # >1: the ensemble's "increased initial weights"
    config.per_activation_bn_last = False  # ensemble: per-activation BN, last hidden layer

    # Compute dtype of convolutions and matrix products: "float32" (the paper's) or
    # "bfloat16" (mixed precision; parameters, BN and the loss stay float32).
    config.dtype = "float32"

    # Normalization. norm: "batch" or "none".
    config.norm = "batch"
    config.bn = ml_collections.ConfigDict()
    config.bn.epsilon = DEFAULT_EPSILON
    config.bn.momentum = DEFAULT_MOMENTUM
    # Examples per BN statistic; 0 means the whole global batch (cross-replica).
    config.bn.group_size = 0

    # Optimisation. optimizer: "sgd" (with config.momentum; 0 is plain SGD).
    config.optimizer = "sgd"
    config.momentum = 0.9
    config.nesterov = False
    config.learning_rate = 0.1
    # schedule: "constant" or "exponential" (lr · decay_rate^(step / decay_steps)).
    config.schedule = "constant"
    config.lr_decay_rate = 0.94
    config.lr_decay_steps = 1000
    config.lr_staircase = True
    # L2 weight cost on kernels (not on BN's γ, β or biases), as a gradient term.
    config.weight_decay = 0.0

    config.batch_size = 60  # global, over all devices and processes
    config.eval_batch_size = 1000
    config.total_steps = 1000
    config.steps_per_loop = 100  # steps per compiled call (lax.scan)
    config.eval_every_steps = 500
    config.checkpoint_every_steps = 500
    config.keep_checkpoints = 3
    config.log_every_steps = 100
    config.seed = 0

    # Performance reporting (bn_repro/perf.py, bn_repro/profiling.py).
    # peak FLOP/s of one device for perf/mfu; 0: from the device kind, if known.
    config.peak_flops = 0.0
    # Steps to trace with jax.profiler after warm-up into WORKDIR/plugins/profile; 0: off.
    config.profile_steps = 0

    # Robustness. A non-finite loss stops the run (the last good checkpoint stays);
    # with skip_nonfinite_steps such a step is skipped and counted instead.
    config.skip_nonfinite_steps = False
    # Resuming a workdir made with other values of the experiment's keys is refused
    # unless this is set.
    config.allow_config_change = False
    return config
