"""The published weights' own reference implementations, built with random weights.

* `tfslim_inception_v2`: ``tf_slim.nets.inception_v2`` (PyPI tf_slim 1.1.0) in a TF
  graph, every variable (BN moving statistics included) set to random values, saved
  with a tf.compat.v1 Saver; returns the checkpoint prefix and its end points.
* `pretrainedmodels_bninception`: ``BNInception`` from the pretrainedmodels 0.7.4
  source distribution (installed with --no-deps by scripts/setup_env.sh).

Both are loaded as `bn_repro/experiments/peer_nets.py` loads them for the speed comparison.

Random moving statistics (mean ≠ 0, variance ≠ 1) make a mapping mistake show:
zeros and ones would hide swapped statistics. Weights are He-scaled so activations
stay in range through the 40 layers.
"""

from pathlib import Path

import numpy as np

from bn_repro.experiments.peer_nets import load_bninception_module, load_tf_slim

# Our names of the layers whose outputs are compared besides the logits: the stem's
# last convolution (before its max pool) and inception 4e.
END_POINTS = ("conv2_3x3", "inception_4e")
SLIM_END_POINTS = {"conv2_3x3": "Conv2d_2c_3x3", "inception_4e": "Mixed_5a"}


def _random_value(name: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    if name.endswith(("moving_variance", "running_var")):
        return rng.uniform(0.5, 2.0, shape)
    if name.endswith(("moving_mean", "running_mean", "beta", "bias", "biases")):
        return rng.normal(0.0, 0.2, shape)
    if name.endswith("gamma") or (len(shape) == 1 and name.endswith("weight")):
        return rng.uniform(0.5, 1.5, shape)
    fan_in = np.prod(shape[:-1]) if "/" in name else np.prod(shape[1:])
    if name.endswith("depthwise_weights"):
        fan_in = shape[0] * shape[1]
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)


def tfslim_inception_v2(directory: Path, images: np.ndarray, seed: int) -> tuple[str, dict]:
    """Checkpoint prefix and {logits, end points} of a random slim inception_v2 (1001 classes)."""
    import tensorflow as tf

    slim, inception_v2 = load_tf_slim()
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.compat.v1.placeholder(tf.float32, images.shape)
        with slim.arg_scope(inception_v2.inception_v2_arg_scope()):
            logits, end_points = inception_v2.inception_v2(
                inputs, num_classes=1001, is_training=False
            )
        variables = tf.compat.v1.global_variables()
        with tf.compat.v1.Session(graph=graph) as session:
            for variable in variables:
                shape = tuple(variable.shape.as_list())
                variable.load(_random_value(variable.op.name, shape, rng), session)
            prefix = tf.compat.v1.train.Saver().save(session, str(directory / "model.ckpt"))
            fetches = {"logits": logits}
            fetches.update({ours: end_points[slim] for ours, slim in SLIM_END_POINTS.items()})
            outputs = session.run(fetches, {inputs: images})
    return prefix, outputs


def pretrainedmodels_bninception(path: Path, images_nhwc: np.ndarray, seed: int) -> dict:
    """Saves a random BNInception's state_dict to ``path``; its logits and end points (NHWC)."""
    import torch

    net = load_bninception_module().BNInception(num_classes=1000).eval()
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if tensor.dtype.is_floating_point:
                value = _random_value(name, tuple(tensor.shape), rng)
                tensor.copy_(torch.from_numpy(value.astype(np.float32)))
    torch.save(net.state_dict(), path)
    captured = {}
    # The stem's last ReLU is in place: keep a copy. 4e's output is 5a's input.
    net.conv2_relu_3x3.register_forward_hook(
        lambda _m, _i, out: captured.update(conv2_3x3=out.clone())
    )
    net.inception_5a_1x1.register_forward_pre_hook(
        lambda _m, inputs: captured.update(inception_4e=inputs[0].clone())
    )
    with torch.no_grad():
        logits = net(torch.from_numpy(images_nhwc.transpose(0, 3, 1, 2).copy()))
    outputs = {name: value.numpy().transpose(0, 2, 3, 1) for name, value in captured.items()}
    return {"logits": logits.numpy(), **outputs}
