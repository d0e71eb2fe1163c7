"""ImageNet's Table-2 configs, and training them through the CLI on a miniature
ImageNet (tests/conftest.py's ``mini`` fixture, tests/mini_imagenet.py).

Each CLI run compiles a (tiny) BN-Inception, a minute or more on 2 cores: one config
and its resumption run in the default suite, the other configs are marked slow.
"""

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from bn_repro import event_logs
from bn_repro.configs import (
    bn_baseline,
    bn_x5,
    bn_x5_sigmoid,
    bn_x30,
    imagenet_common,
    inception,
    inception_sigmoid,
)
from tests.mini_imagenet import REPO

# --- Configs -------------------------------------------------------------------------

ROWS = {
    "inception": inception,
    "bn_baseline": bn_baseline,
    "bn_x5": bn_x5,
    "bn_x30": bn_x30,
    "bn_x5_sigmoid": bn_x5_sigmoid,
    "inception_sigmoid": inception_sigmoid,
}


def test_configs_follow_section_4_2():
    c = {name: module.get_config() for name, module in ROWS.items()}
    learning_rates = {name: config.learning_rate for name, config in c.items()}
    assert learning_rates == {
        "inception": 0.0015,
        "bn_baseline": 0.0015,
        "bn_x5": 0.0075,
        "bn_x30": 0.045,
        "bn_x5_sigmoid": 0.0075,
        "inception_sigmoid": 0.0015,
    }
    base, fast = c["bn_baseline"], c["bn_x5"]
    assert all(config.batch_size == 32 * imagenet_common.REPLICAS for config in c.values())
    assert all(config.schedule == "exponential" for config in c.values())
    assert base.lr_decay_steps == pytest.approx(6 * fast.lr_decay_steps, rel=1e-3)
    assert base.weight_decay == pytest.approx(5 * fast.weight_decay)
    assert base.dropout_rate == 0.4 and fast.dropout_rate == 0.0
    assert base.use_lrn and not fast.use_lrn
    assert fast.distortion_strength < base.distortion_strength
    assert fast.shuffle_buffer > base.shuffle_buffer
    assert [c[n].norm for n in ROWS] == ["none", "batch", "batch", "batch", "batch", "none"]
    sigmoid = [n for n in ROWS if c[n].activation == "sigmoid"]
    assert sigmoid == ["bn_x5_sigmoid", "inception_sigmoid"]
    # Apart from the learning rate, BN-x30 is BN-x5; BN-x5-Sigmoid differs only in g.
    for other, key in (("bn_x30", "learning_rate"), ("bn_x5_sigmoid", "activation")):
        values = c[other].to_dict()
        assert {k for k, v in fast.to_dict().items() if values[k] != v} == {key}
    assert all(config.bn.group_size == 0 for config in c.values())  # cross-replica


# --- Training through the CLI --------------------------------------------------------


def run_cli(mini: types.SimpleNamespace, name: str, workdir: Path, total_steps: int) -> str:
    """Trains a tiny Inception with configs/NAME.py; returns the console output."""
    env = dict(
        os.environ,
        # One device, and quick (unoptimised) compilation: the net is what is tested.
        XLA_FLAGS="--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true",
        JAX_COMPILATION_CACHE_DIR=str(mini.root / "jax_cache"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    overrides = dict(
        data_dir=mini.data_dir,
        stem="small",
        image_size=32,
        width_multiplier=0.05,
        min_depth=4,
        batch_size=4,
        eval_batch_size=4,
        total_steps=total_steps,
        eval_every_steps=2,
        checkpoint_every_steps=2,
        log_every_steps=1,
    )
    result = subprocess.run(
        [sys.executable, "-m", "bn_repro.main", f"--config=configs/{name}.py"]
        + [f"--workdir={workdir}"]
        + [f"--config.{key}={value}" for key, value in overrides.items()],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _check_trained(output: str, workdir: Path, first: int, last: int) -> None:
    assert f"trained steps {first}-{last}" in output
    assert "eval/accuracy=" in output and "eval/loss=nan" not in output
    assert (workdir / "checkpoints" / str(last)).is_dir()
    curves = event_logs.read_scalars(workdir)
    steps, skipped = curves["train/skipped_images"]
    assert steps[-1] == last and not skipped.any()  # every training image was readable


def test_cli_trains_bn_x5_and_resumes(mini, tmp_path):
    _check_trained(run_cli(mini, "bn_x5", tmp_path, total_steps=2), tmp_path, 0, 2)
    resumed = run_cli(mini, "bn_x5", tmp_path, total_steps=4)
    assert "resuming from the checkpoint at step 2" in resumed
    _check_trained(resumed, tmp_path, 2, 4)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["inception", "bn_baseline", "bn_x30", "bn_x5_sigmoid", "inception_sigmoid"]
)
def test_cli_trains_every_other_config(mini, tmp_path, name):
    _check_trained(run_cli(mini, name, tmp_path, total_steps=2), tmp_path, 0, 2)
