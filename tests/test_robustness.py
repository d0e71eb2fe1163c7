"""Long-run robustness: preemption, divergence, config changes, damaged checkpoints."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from bn_repro import checkpointing, data, divergence, event_logs, train
from bn_repro.configs import bn_x5
from tests.helpers import assert_trees_equal, small_mnist_config

ROOT = Path(__file__).resolve().parents[1]
# The CLI equivalent of small_mnist_config() (on 1 CPU device in the subprocess).
SMALL_MNIST_FLAGS = [
    "--config=configs/mnist_bn.py",
    "--config.steps_per_loop=50",
    "--config.eval_every_steps=100",
    "--config.checkpoint_every_steps=100",
    "--config.log_every_steps=50",
    "--config.eval_batch_size=2000",
    "--config.batch_size=64",
]


def restored_state(config, workdir: Path, step: int | None = None):
    trainer = train.Trainer(config, data.create_dataset(config))
    manager = checkpointing.create_manager(workdir, keep=10)
    try:
        if step is None:
            return checkpointing.restore_latest(manager, trainer.state)
        return checkpointing.restore(manager, step, trainer.state)
    finally:
        manager.close()


def saved_steps(workdir: Path) -> list[int]:
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def cli(workdir: Path, *flags: str) -> subprocess.Popen:
    env = dict(os.environ, XLA_FLAGS="", PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "bn_repro.main", f"--workdir={workdir}", *SMALL_MNIST_FLAGS, *flags],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def diverging_config(**overrides):
    """A ReLU MLP without BN at a learning rate that blows it up within a few steps."""
    config = small_mnist_config(norm="none", activation="relu", learning_rate=20.0, momentum=0.9)
    for key, value in overrides.items():
        config[key] = value
    return config


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path):
    good = diverging_config(learning_rate=0.05, total_steps=100)
    train.train_and_evaluate(good, tmp_path)
    before = restored_state(good, tmp_path)

    bad = diverging_config(allow_config_change=True)
    with pytest.raises(divergence.TrainingDiverged) as error:
        train.train_and_evaluate(bad, tmp_path)
    message = str(error.value)
    assert "at step 10" in message and "learning rate 20" in message
    assert "--config.learning_rate" in message and "skip_nonfinite_steps" in message
    assert saved_steps(tmp_path) == [100]
    after = restored_state(good, tmp_path)
    assert_trees_equal(
        (before.step, before.params, before.opt_state), (after.step, after.params, after.opt_state)
    )


def test_divergence_can_skip_bad_steps(tmp_path):
    config = diverging_config(skip_nonfinite_steps=True, total_steps=100)
    result = train.train_and_evaluate(config, tmp_path)
    assert result["step"] == 100
    skipped = event_logs.read_scalars(tmp_path)["train/skipped_steps"][1]
    assert skipped.sum() > 0
    state = restored_state(config, tmp_path)
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(state.params))


def test_sigterm_checkpoints_and_resume_is_exact(tmp_path):
    run = cli(tmp_path / "preempted", "--config.total_steps=5000")
    for line in run.stdout:
        if "eval/accuracy" in line:  # training is under way
            run.send_signal(signal.SIGTERM)
            break
    output = run.stdout.read()
    assert run.wait(timeout=120) == 0, output
    assert "stopped by SIGTERM at step" in output
    stopped_at = int(output.split("stopped by SIGTERM at step ")[1].split(";")[0])
    assert 0 < stopped_at < 5000
    assert stopped_at in saved_steps(tmp_path / "preempted")

    # The same command again finishes; the result equals an uninterrupted run.
    resumed = cli(tmp_path / "preempted", "--config.total_steps=5000")
    output = resumed.stdout.read()
    assert resumed.wait(timeout=300) == 0, output
    assert f"resuming from the checkpoint at step {stopped_at}" in output
    uninterrupted = cli(tmp_path / "uninterrupted", "--config.total_steps=5000")
    assert uninterrupted.wait(timeout=300) == 0
    config = small_mnist_config(total_steps=5000)
    a = restored_state(config, tmp_path / "preempted", 5000)
    b = restored_state(config, tmp_path / "uninterrupted", 5000)
    assert_trees_equal((a.params, a.batch_stats), (b.params, b.batch_stats))


def test_resume_with_another_config_is_refused(tmp_path):
    train.train_and_evaluate(small_mnist_config(total_steps=100), tmp_path)
    changed = small_mnist_config(total_steps=200, learning_rate=0.3)
    changed.bn.epsilon = 1e-5
    with pytest.raises(ValueError) as error:
        train.train_and_evaluate(changed, tmp_path)
    message = str(error.value)
    assert "learning_rate: 0.1 in the workdir, 0.3 now" in message
    assert "bn.epsilon: 0.001 in the workdir, 1e-05 now" in message
    assert "--config.allow_config_change=true" in message
    assert "total_steps" not in message  # extending a run is allowed
    changed.allow_config_change = True
    assert train.train_and_evaluate(changed, tmp_path)["step"] == 200


def test_damaged_latest_checkpoint_falls_back(tmp_path, capsys):
    config = small_mnist_config(total_steps=200)
    train.train_and_evaluate(config, tmp_path / "damaged")
    for path in (tmp_path / "damaged" / "checkpoints" / "200").rglob("*"):
        if path.is_file() and path.stat().st_size > 0:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncate
    longer = small_mnist_config(total_steps=300)
    train.train_and_evaluate(longer, tmp_path / "damaged")
    output = capsys.readouterr().out
    assert "checkpoint at step 200" in output and "falling back" in output
    assert "resuming from the checkpoint at step 100" in output
    assert (tmp_path / "damaged" / "damaged_checkpoints" / "200").is_dir()

    train.train_and_evaluate(longer, tmp_path / "clean")
    a = restored_state(longer, tmp_path / "damaged", 300)
    b = restored_state(longer, tmp_path / "clean", 300)
    assert_trees_equal((a.params, a.batch_stats), (b.params, b.batch_stats))


def test_unwritable_workdir_fails_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(PermissionError, match="Cannot write to workdir"):
        train.train_and_evaluate(small_mnist_config(), blocker / "run")


@pytest.mark.parametrize(
    "flag, expected",
    [
        ("--config.no_such_key=1", "no_such_key"),
        ("--config.model=resnet", "valid choices: ['inception', 'mlp']"),
        ("--config.dataset=imagenet", "Set --config.dataset to one of them"),
        ("--config.batch_size=60", "batch_size=60 is not divisible"),
    ],
)
def test_cli_bad_input_is_a_clear_error(tmp_path, flag, expected):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    result = subprocess.run(
        [sys.executable, "-m", "bn_repro.main", f"--workdir={tmp_path}", *SMALL_MNIST_FLAGS, flag],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr or "no_such_key" in flag


def test_an_imagenet_run_can_be_extended_in_epochs(tmp_path):
    """Epoch keys drive the step keys (bn_repro/schedule.py): changing how many epochs
    to train, evaluate or checkpoint resumes; changing the recipe is still refused."""
    checkpointing.check_and_record_config(bn_x5.get_config(), tmp_path)
    longer = bn_x5.get_config()
    longer.total_epochs *= 2
    longer.eval_every_epochs = 1.0
    longer.checkpoint_every_epochs = 0.5
    assert longer.total_steps == 2 * bn_x5.get_config().total_steps  # the steps follow
    checkpointing.check_and_record_config(longer, tmp_path)
    longer.lr_decay_epochs *= 2
    with pytest.raises(ValueError, match="lr_decay_epochs"):
        checkpointing.check_and_record_config(longer, tmp_path)
