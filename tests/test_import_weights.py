"""Imported published weights reproduce their reference implementations (tests/reference_nets.py).

Each reference network gets random weights and random BN statistics, its checkpoint
goes into a workdir (the PyTorch one through the command scripts/import_weights.py,
the TF-slim one through the library function it calls, bn_repro.published_weights),
and our network, restored from that workdir, must give the same logits and
intermediate end points on random 224 px images in inference mode. Relative
difference: max |ours − reference| / max |reference|, the error scaled to the
magnitude of the values (float32 sums over ~1000-term dot products, 40 layers deep).
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bn_repro import models, prediction, published_weights, schedule, train_state
from bn_repro.batch_norm import BATCH_STATS
from bn_repro.configs import pretrained_caffe, pretrained_tfslim
from tests import reference_nets

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4  # the bound on the relative difference
WRONG = 1e-2  # a wrong mapping must miss by far more than the tolerance
BATCH, SIZE = 2, 224


def _require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{missing} not installed: pip install -r requirements.txt (see setup_env.sh)")


def relative_difference(ours: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(ours - reference)) / np.max(np.abs(reference)))


class AbstractTrainer:
    """What bn_repro.prediction.restore_checkpoint reads of a Trainer: its model and the
    structure of its state (shape-only, so no 224 px initialisation is compiled).
    """

    def __init__(self, config):
        self.model = models.create_model(config)
        learning_rate_fn = schedule.create_learning_rate_fn(config)

        def state():
            variables = self.model.init(
                jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3)), train=False
            )
            return train_state.create_train_state(self.model, config, variables, learning_rate_fn)

        abstract = jax.eval_shape(state)
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        self.state = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract
        )


def restored_network(config, workdir):
    """Our model, its variables as bn_repro.prediction restores them, and a jitted forward."""
    trainer = AbstractTrainer(config)
    state = prediction.restore_checkpoint(trainer, workdir)
    variables = {"params": state.params, BATCH_STATS: state.batch_stats}

    @jax.jit
    def forward(variables, images):
        return trainer.model.apply(
            variables,
            images,
            train=False,
            capture_intermediates=lambda m, _: m.name in reference_nets.END_POINTS,
            mutable=["intermediates"],
        )

    def run(variables, images):
        logits, captured = forward(variables, images)
        points = {n: captured["intermediates"][n]["__call__"][0] for n in reference_nets.END_POINTS}
        return {"logits": np.asarray(logits), **jax.tree.map(np.asarray, points)}

    return jax.device_get(variables), run


def compare(ours: dict, reference: dict) -> dict[str, float]:
    return {name: relative_difference(ours[name], reference[name]) for name in reference}


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 1, (BATCH, SIZE, SIZE, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def tfslim(tmp_path_factory, images):
    _require("tf_slim", "tf_keras")
    directory = tmp_path_factory.mktemp("tfslim")
    prefix, reference = reference_nets.tfslim_inception_v2(directory, images, seed=1)
    config = pretrained_tfslim.get_config()
    unused = published_weights.import_weights("tfslim", prefix, directory / "run", config)
    variables, run = restored_network(config, directory / "run")
    return {"unused": unused, "reference": reference, "variables": variables, "run": run}


@pytest.fixture(scope="module")
def caffe(tmp_path_factory, images):
    _require("torch", "pretrainedmodels")
    directory = tmp_path_factory.mktemp("caffe")
    # Caffe's input range: BGR in [0, 255] minus the channel means.
    caffe_images = (images * 127.5).astype(np.float32)
    reference = reference_nets.pretrainedmodels_bninception(
        directory / "bninception.pth", caffe_images, seed=2
    )
    # Through the documented command, not the library function it calls.
    command = [
        sys.executable,
        "scripts/import_weights.py",
        "--format=pytorch",
        f"--source={directory / 'bninception.pth'}",
        f"--workdir={directory / 'run'}",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"Imported {directory / 'bninception.pth'} into {directory / 'run'}" in result.stdout
    unused_line = next(line for line in result.stdout.splitlines() if "not used:" in line)
    variables, run = restored_network(pretrained_caffe.get_config(), directory / "run")
    return {
        "unused": unused_line.split("not used: ")[1].split(", "),
        "reference": reference,
        "variables": variables,
        "run": run,
        "images": caffe_images,
    }


def test_tfslim_import_reproduces_inception_v2(tfslim, images):
    differences = compare(tfslim["run"](tfslim["variables"], images), tfslim["reference"])
    print("tfslim relative differences:", differences)
    assert all(d <= TOLERANCE for d in differences.values()), differences
    assert tfslim["reference"]["logits"].shape == (BATCH, 1001)
    assert tfslim["unused"] == []  # every tensor of the checkpoint is used


def test_pytorch_import_reproduces_bninception(caffe):
    differences = compare(caffe["run"](caffe["variables"], caffe["images"]), caffe["reference"])
    print("pytorch relative differences:", differences)
    assert all(d <= TOLERANCE for d in differences.values()), differences
    # Only the BN step counters, which inference does not use, are left over.
    assert caffe["unused"] and all(n.endswith(".num_batches_tracked") for n in caffe["unused"])


def test_swapped_bn_statistics_fail_the_comparison(tfslim, images):
    variables = jax.tree.map(np.copy, tfslim["variables"])
    stats = variables[BATCH_STATS]["conv2_3x3"]["BatchNorm_0"]
    stats["mean"], stats["var"] = stats["var"], stats["mean"] + 1.0  # +1: keep var > 0
    differences = compare(tfslim["run"](variables, images), tfslim["reference"])
    assert differences["conv2_3x3"] > WRONG and differences["logits"] > WRONG, differences


def test_transposed_kernel_fails_the_comparison(caffe):
    variables = jax.tree.map(np.copy, caffe["variables"])
    layer = variables["params"]["inception_3a"]["conv_3x3"]["conv"]
    layer["kernel"] = layer["kernel"].transpose(1, 0, 2, 3)  # H and W swapped
    differences = compare(caffe["run"](variables, caffe["images"]), caffe["reference"])
    assert differences["conv2_3x3"] <= TOLERANCE  # before the wrong layer: still right
    assert differences["inception_4e"] > WRONG and differences["logits"] > WRONG, differences


def test_missing_and_misshaped_tensors_are_named():
    targets = {"params": {"conv2_3x3": {"conv": {"kernel": np.zeros((3, 3, 64, 192))}}}}
    name = "conv2_3x3.weight"
    with pytest.raises(KeyError, match=name):
        published_weights.convert("pytorch", {"other": np.zeros(1)}, targets)
    with pytest.raises(ValueError, match=r"\(192, 64, 1, 3\).*\(3, 3, 64, 192\)"):
        published_weights.convert("pytorch", {name: np.zeros((192, 64, 1, 3))}, targets)
    filled, unused = published_weights.convert(
        "pytorch", {name: np.arange(192 * 64 * 9.0).reshape(192, 64, 3, 3), "extra": 0}, targets
    )
    kernel = filled["params"]["conv2_3x3"]["conv"]["kernel"]
    assert kernel[1, 2, 5, 7] == ((7 * 64 + 5) * 3 + 1) * 3 + 2  # OIHW[o, i, h, w] → HWIO
    assert unused == ["extra"]
