"""SIGKILL at any moment, a checkpoint write included, loses nothing and changes nothing.

The data order is a function of (seed, step), so a run killed at any point and
resumed from its last complete checkpoint ends bit-identical to an uninterrupted one.
"""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import assert_trees_equal, small_mnist_config
from tests.test_robustness import cli, restored_state

TOTAL = 1500
pytestmark = pytest.mark.slow


def kill_when(run, condition, poll_seconds: float = 0.0005) -> threading.Thread:
    def watch():
        while run.poll() is None:
            if condition():
                run.send_signal(signal.SIGKILL)
                return
            time.sleep(poll_seconds)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def checkpoint_being_written(workdir: Path):
    directory = workdir / "checkpoints"

    def check() -> bool:
        return directory.is_dir() and any(
            ".orbax-checkpoint-tmp" in n for n in os.listdir(directory)
        )

    return check


def test_sigkill_at_several_points_then_resume_is_bit_identical(tmp_path):
    total = f"--config.total_steps={TOTAL}"
    reference = cli(tmp_path / "reference", total)
    assert reference.wait(timeout=600) == 0, reference.stdout.read()

    workdir = tmp_path / "killed"
    started = time.monotonic()
    kills = [
        lambda: time.monotonic() - started > 1.0,  # start-up, before any checkpoint
        checkpoint_being_written(workdir),  # in the middle of an orbax write
        checkpoint_being_written(workdir),  # and again, later in the run
    ]
    for condition in kills:
        run = cli(workdir, total)
        kill_when(run, condition).join(timeout=600)
        assert run.wait(timeout=60) == -signal.SIGKILL, "the run ended before it was killed"
        started = time.monotonic()

    final = cli(workdir, total)
    output = final.stdout.read()
    assert final.wait(timeout=600) == 0, output
    config = small_mnist_config(total_steps=TOTAL)
    a = restored_state(config, workdir, TOTAL)
    b = restored_state(config, tmp_path / "reference", TOTAL)
    assert_trees_equal(
        (a.params, a.batch_stats, a.opt_state), (b.params, b.batch_stats, b.opt_state)
    )
