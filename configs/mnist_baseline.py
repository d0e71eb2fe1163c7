"""MNIST without BN: the baseline of the paper's Section 4.1 and Figure 1.

Run:
  python -m bn_repro.main --config=configs/mnist_baseline.py --workdir=runs/mnist_baseline

Network (paper): 784-100-100-100-10, sigmoid hidden units, weights initialised to
"small random Gaussian values", cross-entropy loss, 50,000 steps of 60 examples.
The paper prints no accuracies, only Figure 1 (a): the network without BN trains
more slowly and ends lower than with BN; (b) the input to a last-layer sigmoid
drifts in mean and spread over training.

Choices where the paper is silent (the same for both runs):
  * optimizer: plain SGD, learning rate 0.1, constant: the conventional starting
    rate for plain SGD, and no adaptive optimizer to blur the comparison. At 0.5 both
    networks train faster and the gap narrows (measured numbers in the README).
  * initial weights: N(0, 0.1²) for every layer.
  * input: the grey levels scaled to [0, 1] (the paper calls the input binary).
  * BN (mnist_bn.py): ε = 1e-3, EMA momentum 0.99.
"""

import ml_collections

from bn_repro.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model = "mlp"
    config.dataset = "mnist"
    config.num_classes = 10
    config.image_size = 28
    config.hidden_sizes = (100, 100, 100)
    config.init_stddev = 0.1
    config.norm = "none"
    config.activation = "sigmoid"

    config.batch_size = 60
    config.eval_batch_size = 10_000
    config.total_steps = 50_000
    config.eval_every_steps = 500
    config.checkpoint_every_steps = 10_000
    config.log_every_steps = 100
    config.steps_per_loop = 500

    config.optimizer = "sgd"
    config.momentum = 0.0
    config.learning_rate = 0.1
    config.schedule = "constant"
    config.weight_decay = 0.0
    return config
