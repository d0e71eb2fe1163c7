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
    # LRN's α × this²: the pixel scale its constants assume (bn_repro/models/lrn.py).
    config.lrn_pixel_scale = 1.0
    config.dropout_rate = 0.0  # before the classifier
    config.width_multiplier = 1.0  # every depth scaled, but not below min_depth
    config.min_depth = 16
    config.stem = "imagenet"  # "imagenet" (224 px) or "small" (28-64 px inputs)
    config.first_conv = "separable"  # "separable" (depth multiplier 8) or "plain"
    config.pool_proj_4cd = 96  # pool projection of 4c and 4d: 96 or 128 (see README)
    config.conv_init_scale = 1.0  # >1: the ensemble's "increased initial weights"
    config.per_activation_bn_last = False  # ensemble: per-activation BN, last hidden layer
    # Variants for the published weights (README "Published weights"); these defaults
    # are Figure 5's network.
    config.first_conv_bn = True  # False: TF-slim's first layer has no BN
    config.conv_bias_with_bn = False  # True: Caffe's convolutions keep a bias before BN
    config.padding = "same"  # "same" (TensorFlow) or "caffe" (bn_repro/models/geometry.py)

    # Training distortions of small in-memory datasets, on the device
    # (bn_repro/data/distortions.py): "none" or "crop_flip_photometric". ImageNet has
    # its own pipeline; both read distortion_strength (photometric ranges × this).
    config.distortions = "none"
    config.distortion_strength = 1.0
    config.min_crop_area = 0.35
    # Data order of small datasets: "examples" reshuffles every example every epoch;
    # "batches" keeps each batch's composition and shuffles only the batches' order.
    config.shuffle = "examples"

    # Compute dtype of convolutions and matrix products: "float32" (the paper's) or
    # "bfloat16" (mixed precision; parameters, BN and the loss stay float32).
    config.dtype = "float32"
    # Precision of float32 convolutions and matrix products: "default" (JAX's: one
    # bfloat16 pass on TPU, TF32 on recent GPUs, float32 on CPU), "high" or "highest"
    # (float32 everywhere, the paper's). bn_repro/platforms.py, docs/accelerators.md.
    config.matmul_precision = "default"
    # How training steps compute convolutions: "auto" (matrix products for a CPU target,
    # XLA's convolutions for TPU and GPU), "xla" or "matmul" (bn_repro/models/conv.py).
    config.conv_impl = "auto"

    # Normalization. norm: "batch" or "none".
    config.norm = "batch"
    config.bn = ml_collections.ConfigDict()
    config.bn.epsilon = DEFAULT_EPSILON
    config.bn.momentum = DEFAULT_MOMENTUM
    config.bn.use_scale = True  # γ; False: β only (TF-slim's BN)
    # Examples per BN statistic; 0 means the whole global batch (cross-replica).
    config.bn.group_size = 0

    # Optimisation. optimizer: "sgd" (with config.momentum; 0 is plain SGD).
    config.optimizer = "sgd"
    config.momentum = 0.9
    config.nesterov = False
    config.learning_rate = 0.1
    # How learning_rate meets the global batch (bn_repro/schedule.py): "per_worker"
    # applies it as written to the batch's mean gradient; "linear" multiplies it by
    # batch_size / worker_batch_size, ramped up from 1 over warmup_steps.
    config.lr_scaling = "per_worker"
    config.worker_batch_size = 60  # examples per update in the paper (§4.1: 60; §4.2: 32)
    config.warmup_steps = 0
    # schedule: "constant" or "exponential" (lr · decay_rate^(step / decay_steps)).
    config.schedule = "constant"
    config.lr_decay_rate = 0.94
    config.lr_decay_steps = 1000
    config.lr_staircase = True
    # L2 weight cost on kernels (not on BN's γ, β or biases), as a gradient term.
    config.weight_decay = 0.0

    config.batch_size = 60  # global, over all devices and processes
    config.epoch_examples = 60_000  # training examples per epoch (MNIST, Fashion-MNIST)
    # 0: the whole training split; N: the first N/10 images of each class (small datasets).
    config.train_examples = 0
    # 0: the whole evaluation split; N: the first N/10 of each class (small datasets).
    config.eval_examples = 0
    config.eval_batch_size = 1000
    config.total_steps = 1000
    config.steps_per_loop = 100  # steps per compiled call (lax.scan)
    config.eval_every_steps = 500
    config.checkpoint_every_steps = 500
    config.keep_checkpoints = 3
    # 1: evaluations and checkpoints evenly spaced; >1: each interval this many times
    # the previous one (bn_repro/schedule.Intervals), the same steps in every run.
    config.interval_growth = 1.0
    config.log_every_steps = 100
    config.seed = 0
    # A workdir (e.g. of scripts/import_weights.py) whose latest weights and BN
    # statistics a new run starts from, with a fresh optimizer at step 0.
    config.init_from = ""

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
    # A workdir whose checkpoints are all damaged, or that holds event files but no
    # checkpoint, is not restarted from step 0 unless this is set.
    config.allow_restart_from_scratch = False
    return config
