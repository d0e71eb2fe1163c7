"""Published BN-Inception weights by name into our ``params`` and ``batch_stats`` trees.

Two sources (README "Published weights"):

* ``tfslim``: a TF-slim ``inception_v2`` checkpoint, read with
  ``tf.train.load_checkpoint`` (no graph); configs/pretrained_tfslim.py.
* ``pytorch``: a ``state_dict`` of pretrainedmodels' ``BNInception`` (the Caffe
  model), read with ``torch.load(weights_only=True)``, which never runs code from
  the file; configs/pretrained_caffe.py. torch is needed only here.

`convert` walks every leaf of our trees, asks the format which source tensor it is
and how to lay it out (OIHW → HWIO, depthwise [H, W, in, multiplier] → our grouped
[H, W, 1, in·multiplier], a 1×1-convolution or Linear classifier → a dense kernel),
and checks its shape. A missing or mis-shaped tensor is an error naming both;
source tensors that no leaf used are returned, so the caller can list them.
"""

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import traverse_util

from bn_repro import checkpointing, models, schedule, train_state
from bn_repro.models.inception import FIGURE_5

FORMATS = ("tfslim", "pytorch")
Transform = Callable[[np.ndarray], np.ndarray]
Source = tuple[str, Transform]

# TF-slim calls the modules Mixed_3b..Mixed_5c; the paper (and we) 3a..5b.
SLIM_MODULES = dict(
    zip(
        (row.name for row in FIGURE_5),
        ("3b", "3c", "4a", "4b", "4c", "4d", "4e", "5a", "5b", "5c"),
        strict=True,
    )
)
SLIM_STEM = {"conv1": "Conv2d_1a_7x7", "conv2_3x3_reduce": "Conv2d_2b_1x1"}
SLIM_STEM["conv2_3x3"] = "Conv2d_2c_3x3"
SLIM_BRANCHES = {
    "conv_1x1": "Branch_0/Conv2d_0a_1x1",
    "conv_3x3_reduce": "Branch_1/Conv2d_0a_1x1",
    "conv_3x3": "Branch_1/Conv2d_0b_3x3",
    "conv_double_3x3_reduce": "Branch_2/Conv2d_0a_1x1",
    "conv_double_3x3_a": "Branch_2/Conv2d_0b_3x3",
    "conv_double_3x3_b": "Branch_2/Conv2d_0c_3x3",
    "pool_proj": "Branch_3/Conv2d_0b_1x1",
}
# Stride-2 modules have no 1×1 branch, so slim numbers the branches from 0 again and
# calls the strided convolutions Conv2d_1a_3x3.
SLIM_STRIDE_2_BRANCHES = {
    "conv_3x3_reduce": "Branch_0/Conv2d_0a_1x1",
    "conv_3x3": "Branch_0/Conv2d_1a_3x3",
    "conv_double_3x3_reduce": "Branch_1/Conv2d_0a_1x1",
    "conv_double_3x3_a": "Branch_1/Conv2d_0b_3x3",
    "conv_double_3x3_b": "Branch_1/Conv2d_1a_3x3",
}
SLIM_BN = {"scale": "gamma", "bias": "beta", "mean": "moving_mean", "var": "moving_variance"}
TORCH_BRANCHES = {
    "conv_1x1": "1x1",
    "conv_3x3_reduce": "3x3_reduce",
    "conv_3x3": "3x3",
    "conv_double_3x3_reduce": "double_3x3_reduce",
    "conv_double_3x3_a": "double_3x3_1",
    "conv_double_3x3_b": "double_3x3_2",
    "pool_proj": "pool_proj",
}
TORCH_BN = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
BN_MODULE = "BatchNorm_0"


def _same(x: np.ndarray) -> np.ndarray:
    return x


def _depthwise(x: np.ndarray) -> np.ndarray:
    """TF's [H, W, in, multiplier] → [H, W, 1, in·multiplier], output in·m + j (ours)."""
    return x.reshape(x.shape[0], x.shape[1], 1, -1)


def _oihw_to_hwio(x: np.ndarray) -> np.ndarray:
    return x.transpose(2, 3, 1, 0)


def _conv1x1_to_dense(x: np.ndarray) -> np.ndarray:
    return x.reshape(x.shape[-2], x.shape[-1])


def _tfslim_source(path: tuple[str, ...]) -> Source:
    *layer, module, leaf = path
    prefix = "InceptionV2/"
    if layer == [] and module == "logits":
        name = f"{prefix}Logits/Conv2d_1c_1x1/"
        if leaf == "kernel":
            return name + "weights", _conv1x1_to_dense
        return name + "biases", _same
    if len(layer) == 1:
        scope = SLIM_STEM[layer[0]]
    else:
        row = layer[0].removeprefix("inception_")
        stride_2 = next(r for r in FIGURE_5 if r.name == row).stride == 2
        branches = SLIM_STRIDE_2_BRANCHES if stride_2 else SLIM_BRANCHES
        scope = f"Mixed_{SLIM_MODULES[row]}/{branches[layer[1]]}"
    name = f"{prefix}{scope}/"
    if module == BN_MODULE:
        return name + f"BatchNorm/{SLIM_BN[leaf]}", _same
    if leaf == "bias":
        return name + "biases", _same
    if module == "depthwise":
        return name + "depthwise_weights", _depthwise
    return name + ("pointwise_weights" if module == "pointwise" else "weights"), _same


def _pytorch_source(path: tuple[str, ...]) -> Source:
    *layer, module, leaf = path
    if layer == [] and module == "logits":
        return f"last_linear.{'weight' if leaf == 'kernel' else 'bias'}", np.transpose
    if len(layer) == 1:
        name = "conv1_7x7_s2" if layer[0] == "conv1" else layer[0]
    else:
        name = f"{layer[0]}_{TORCH_BRANCHES[layer[1]]}"
    if module == BN_MODULE:
        return f"{name}_bn.{TORCH_BN[leaf]}", _same
    return f"{name}.{'weight' if leaf == 'kernel' else 'bias'}", (
        _oihw_to_hwio if leaf == "kernel" else _same
    )


SOURCES: dict[str, Callable[[tuple[str, ...]], Source]] = {
    "tfslim": _tfslim_source,
    "pytorch": _pytorch_source,
}


def read_tfslim(path: str) -> dict[str, np.ndarray]:
    """Every tensor of a TF checkpoint by variable name."""
    import tensorflow as tf  # deferred: only this format needs it here

    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def read_pytorch(path: str) -> dict[str, np.ndarray]:
    """Every tensor of a PyTorch ``state_dict`` file, without running code from it."""
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            "Reading a PyTorch state_dict needs torch: pip install torch==2.13.0 "
            "(the CPU build is enough)."
        ) from error
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state_dict of tensors.")
    return {name: tensor.numpy() for name, tensor in state.items()}


READERS: dict[str, Callable[[str], dict[str, np.ndarray]]] = {
    "tfslim": read_tfslim,
    "pytorch": read_pytorch,
}


def _neighbours(name: str, source: Mapping[str, np.ndarray]) -> list[str]:
    scope = name.rsplit("/", 1)[0] if "/" in name else name.rsplit(".", 1)[0]
    return sorted(n for n in source if n.startswith(scope))[:8]


def convert(
    fmt: str, source: Mapping[str, np.ndarray], targets: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """Fills each tree of ``targets`` (name → tree of arrays with .shape) from ``source``.

    Returns the filled trees (float32 numpy arrays) and the source names not used.
    """
    if fmt not in SOURCES:
        raise ValueError(f"Unknown format {fmt!r}; valid choices: {list(FORMATS)}.")
    used, filled = set(), {}
    for collection, tree in targets.items():
        flat = {}
        for path, target in traverse_util.flatten_dict(tree).items():
            name, transform = SOURCES[fmt](path)
            if name not in source:
                raise KeyError(
                    f"{collection}/{'/'.join(path)} {tuple(target.shape)} needs the tensor "
                    f"{name!r}, which the source lacks; tensors of that scope: "
                    f"{_neighbours(name, source)}. Does the config match the checkpoint "
                    "(e.g. first_conv_bn, bn.use_scale, conv_bias_with_bn)?"
                )
            value = np.asarray(transform(np.asarray(source[name])), np.float32)
            if value.shape != tuple(target.shape):
                raise ValueError(
                    f"Tensor {name!r} has shape {np.shape(source[name])} ({value.shape} laid "
                    f"out as ours), but {collection}/{'/'.join(path)} has shape "
                    f"{tuple(target.shape)}."
                )
            flat[path] = value
            used.add(name)
        filled[collection] = traverse_util.unflatten_dict(flat)
    return filled, sorted(set(source) - used)


def import_weights(
    fmt: str, source_path: str, workdir: str | Path, config: ml_collections.ConfigDict
) -> list[str]:
    """Writes ``source_path``'s weights as step 0 of ``workdir``; returns the unused names.

    The workdir then looks like a training run's: config.json and an orbax
    checkpoint of the full train state (fresh optimizer state), so bn_repro.evaluate,
    bn_repro.ensemble and ``--config.init_from`` read it as they read any run.
    """
    if fmt not in READERS:
        raise ValueError(f"Unknown --format={fmt!r}; valid choices: {list(FORMATS)}.")
    workdir = Path(workdir)
    if (workdir / "checkpoints").exists() and any((workdir / "checkpoints").iterdir()):
        raise FileExistsError(f"{workdir}/checkpoints is not empty; import into a new --workdir.")
    model = models.create_model(config)
    shape = (1, config.image_size, config.image_size, 3)
    targets = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape), train=False))
    filled, unused = convert(fmt, READERS[fmt](source_path), targets)
    learning_rate_fn = schedule.create_learning_rate_fn(config)
    state = train_state.create_train_state(model, config, filled, learning_rate_fn)
    checkpointing.ensure_writable(workdir)
    checkpointing.check_and_record_config(config, workdir)
    manager = checkpointing.create_manager(workdir, config.keep_checkpoints)
    try:
        checkpointing.save(manager, 0, state)
        manager.wait_until_finished()
    finally:
        manager.close()
    return unused
