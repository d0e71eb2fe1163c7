"""BN-Inception in the two implementations we compare against, for speed and for weights.

* TF-slim's ``inception_v2`` (PyPI tf_slim 1.1.0, the authors' own code base), run
  under TF 2.21 through tf_keras' legacy layers.
* pretrainedmodels 0.7.4's ``BNInception`` (a PyTorch port of the Caffe model), its
  module file loaded by path: the package's ``__init__`` imports torchvision and munch.

`torch_step_seconds` and `tf_slim_step_seconds` time one training step (forward,
backward, SGD with momentum 0.9, BN moving averages) at 224×224 on random data, as
`scripts/bench_model.py --peer=...` reports them next to ours.
"""

import importlib
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import numpy as np

IMAGE_SIZE = 224


def load_tf_slim():
    """tf_slim's nets under TF 2.21: the Keras legacy layers it imports moved to tf_keras."""
    import tf_keras

    for name in ("legacy_tf_layers", "legacy_tf_layers.normalization"):
        module = importlib.import_module(f"tf_keras.src.{name}")
        sys.modules[f"tf_keras.{name}"] = module
    del tf_keras
    import tf_slim
    from tf_slim.nets import inception_v2

    return tf_slim, inception_v2


def load_bninception_module():
    """pretrainedmodels/models/bninception.py of the installed distribution, by path."""
    spec = importlib.util.find_spec("pretrainedmodels")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("pretrainedmodels is not installed (scripts/setup_env.sh installs it)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "bninception.py"
    module_spec = importlib.util.spec_from_file_location("reference_bninception", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _median_seconds(step, warmup: int, steps: int) -> float:
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def torch_step_seconds(batch_size: int, warmup: int, steps: int) -> tuple[str, float]:
    """PyTorch's version and the median seconds of an eager BNInception training step."""
    import torch

    torch.manual_seed(0)
    net = load_bninception_module().BNInception(num_classes=1000).train()
    images = torch.randn(batch_size, 3, IMAGE_SIZE, IMAGE_SIZE)
    labels = torch.randint(0, 1000, (batch_size,))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=4e-5)

    def step():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(images), labels).backward()
        optimizer.step()

    return torch.__version__, _median_seconds(step, warmup, steps)


def tf_slim_step_seconds(batch_size: int, warmup: int, steps: int) -> tuple[str, float]:
    """TensorFlow's version and the median seconds of a TF-slim inception_v2 training
    step in a graph (the way slim trains), BN moving-average updates included."""
    import tensorflow as tf

    slim, inception_v2 = load_tf_slim()
    graph = tf.Graph()
    with graph.as_default():
        rng = np.random.default_rng(0)
        images = tf.constant(rng.normal(size=(batch_size, IMAGE_SIZE, IMAGE_SIZE, 3)), tf.float32)
        labels = tf.constant(rng.integers(0, 1001, batch_size))
        with slim.arg_scope(inception_v2.inception_v2_arg_scope(weight_decay=4e-5)):
            logits, _ = inception_v2.inception_v2(images, num_classes=1001, is_training=True)
        tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits)
        total = tf.compat.v1.losses.get_total_loss()  # with the L2 weight cost
        optimizer = tf.compat.v1.train.MomentumOptimizer(0.01, momentum=0.9)
        train_op = slim.learning.create_train_op(total, optimizer)  # runs the BN updates
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            seconds = _median_seconds(lambda: session.run(train_op), warmup, steps)
    return tf.__version__, seconds
