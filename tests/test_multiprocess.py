"""Multi-process start-up, and two processes that train exactly like one process.

The slow test starts real CLI processes (`python -m bn_repro.main`) with the coordinator
on 127.0.0.1. The two-process run has one fake CPU device per process (2 global
devices); the reference is one process with 2 devices, so both run the same global
computation and the comparison is bitwise. (With 2 devices per process against one
4-device process the results differ in the last bit: gloo's cross-process sum adds
the 4 partial sums in another order than XLA's in-process all-reduce.)
"""

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from bn_repro import checkpointing, data, distributed, event_logs, train
from tests.helpers import assert_trees_equal, small_mnist_config

ROOT = Path(__file__).resolve().parents[1]
STEPS = 10  # per leg: two processes train 0→10, then resume 10→20
CONFIG_FLAGS = [
    "--config=configs/mnist_bn.py",
    "--config.batch_size=64",
    "--config.eval_batch_size=2000",
    "--config.steps_per_loop=5",
    "--config.log_every_steps=5",
    f"--config.eval_every_steps={STEPS}",
    f"--config.checkpoint_every_steps={STEPS}",
]
TIMEOUT_SECONDS = 900


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child_env(devices: int) -> dict[str, str]:
    """The parent's environment with its own fake-device count and no cluster variables."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BN_REPRO_", "SLURM_", "OMPI_", "PMI_", "TPU_"))
    }
    flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", env.get("XLA_FLAGS", ""))
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


class Child:
    """One CLI process; its stdout and stderr go to files next to the workdirs."""

    def __init__(self, name: str, logs: Path, args: list[str], devices: int):
        self.name = name
        self.stdout_path, self.stderr_path = logs / f"{name}.out", logs / f"{name}.err"
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bn_repro.main", *CONFIG_FLAGS, *args],
                cwd=ROOT,
                env=_child_env(devices),
                stdout=out,
                stderr=err,
            )

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stderr_tail(self, chars: int = 4000) -> str:
        """The end of stderr without faulthandler's long list of extension modules."""
        lines = self.stderr.splitlines()
        return "\n".join(line for line in lines if "Extension modules:" not in line)[-chars:]


def _two_processes(name: str, logs: Path, workdir: Path, total_steps: int) -> list[Child]:
    port = _free_port()
    return [
        Child(
            f"{name}_process{i}",
            logs,
            [
                f"--workdir={workdir}",
                f"--config.total_steps={total_steps}",
                f"--coordinator_address=127.0.0.1:{port}",
                "--num_processes=2",
                f"--process_id={i}",
                "--verbosity=0",  # absl's INFO log, with the start-up line checked below
            ],
            devices=1,
        )
        for i in range(2)
    ]


def _wait(children: list[Child]) -> None:
    """Waits for all; if one fails or time runs out, stops the rest and reports."""
    deadline, exit_order = time.monotonic() + TIMEOUT_SECONDS, []
    try:
        while len(exit_order) < len(children) and time.monotonic() < deadline:
            for c in children:
                if c not in exit_order and c.process.poll() is not None:
                    exit_order.append(c)
            if any(c.process.returncode for c in exit_order):
                break
            time.sleep(0.5)
    finally:
        for c in children:
            if c.process.poll() is None:
                c.process.kill()
                c.process.wait()
    if any(c.process.returncode != 0 for c in children):
        # The first to fail usually holds the cause; the others then die waiting for it.
        reports = [
            f"--- {c.name} exited {c.process.returncode}; stderr ends:\n{c.stderr_tail()}"
            for c in exit_order + [c for c in children if c not in exit_order]
        ]
        pytest.fail("A child process failed (in order of exit):\n" + "\n\n".join(reports))


def _restore(workdir: Path, step: int, target: train.TrainState) -> train.TrainState:
    manager = checkpointing.create_manager(workdir, keep=5)
    try:
        assert step in manager.all_steps(), (workdir, manager.all_steps())
        return jax.device_get(checkpointing.restore(manager, step, target))
    finally:
        manager.close()


def _trainer_lines(stdout: str) -> list[str]:
    """Lines the trainer prints (gloo's own connection messages left out)."""
    return [line for line in stdout.splitlines() if line and not line.startswith("[Gloo]")]


@pytest.mark.slow
def test_two_processes_train_and_resume_like_one_process(tmp_path):
    shared, single, logs = tmp_path / "two_processes", tmp_path / "one_process", tmp_path
    # Leg 1: two processes train steps 0-10 while the reference, one process with the
    # same 2 global devices, trains 0-20 with a checkpoint at 10.
    first = _two_processes("first", logs, shared, STEPS)
    reference = Child(
        "reference", logs, [f"--workdir={single}", f"--config.total_steps={2 * STEPS}"], devices=2
    )
    _wait([*first, reference])
    # Leg 2: two new processes resume the shared workdir from step 10 and train to 20.
    second = _two_processes("second", logs, shared, 2 * STEPS)
    _wait(second)

    # They really were two processes of one run, with one device each.
    for leg in (first, second):
        for i, child in enumerate(leg):
            assert f"Process {i} of 2 (127.0.0.1:" in child.stderr, child.stderr[-2000:]
            assert "1 local of 2 global devices" in child.stderr
    # Only process 0 talks on the console.
    assert f"trained steps 0-{STEPS}" in first[0].stdout
    assert f"resuming from the checkpoint at step {STEPS}" in second[0].stdout
    assert f"trained steps {STEPS}-{2 * STEPS}" in second[0].stdout
    assert _trainer_lines(first[1].stdout) == _trainer_lines(second[1].stdout) == []
    assert "eval/accuracy=" not in first[1].stderr + second[1].stderr

    # Parameters, BN statistics and optimizer state: bitwise those of one process,
    # after the fresh leg (step 10) and after the resumed one (step 20).
    config = small_mnist_config()
    target = train.Trainer(config, data.create_dataset(config)).state
    states = {}
    for step in (STEPS, 2 * STEPS):
        two, one = _restore(shared, step, target), _restore(single, step, target)
        assert_trees_equal(
            (two.params, two.batch_stats, two.opt_state),
            (one.params, one.batch_stats, one.opt_state),
        )
        assert int(two.step) == int(one.step) == step
        states[step] = two
    # ... and not vacuously: training moved the weights and the BN statistics.
    for name in ("params", "batch_stats"):
        before, after = getattr(states[STEPS], name), getattr(states[2 * STEPS], name)
        assert any(
            not np.array_equal(a, b)
            for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True)
        ), name
    assert not np.allclose(states[2 * STEPS].batch_stats["BatchNorm_0"]["mean"], 0.0)

    # One set of TensorBoard event files: one file per leg, written by process 0.
    events = sorted(shared.glob("events.out.tfevents.*"))
    writer_pids = sorted(int(path.name.split(".")[-3]) for path in events)
    assert writer_pids == sorted(leg[0].process.pid for leg in (first, second)), events
    assert len(list(single.glob("events.out.tfevents.*"))) == 1
    # The curves are the reference's, step for step.
    two_curves, one_curves = event_logs.read_scalars(shared), event_logs.read_scalars(single)
    tags = [tag for tag in one_curves if tag.startswith(("train/", "eval/"))]
    assert "train/loss" in tags and "eval/accuracy" in tags
    for tag in tags:
        np.testing.assert_array_equal(two_curves[tag][0], one_curves[tag][0], err_msg=tag)
        np.testing.assert_array_equal(two_curves[tag][1], one_curves[tag][1], err_msg=tag)
    np.testing.assert_array_equal(two_curves["train/loss"][0], [5, 10, 15, 20])


@pytest.fixture
def initialize_calls(monkeypatch):
    """Records jax.distributed.initialize calls instead of making them."""
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda *args: calls.append(args))
    monkeypatch.setattr(jax.config, "update", lambda *args: calls.append(("config", *args)))
    for name in (
        distributed.ENV_COORDINATOR,
        distributed.ENV_NUM_PROCESSES,
        distributed.ENV_PROCESS_ID,
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(distributed, "detected_cluster", lambda: None)
    monkeypatch.setattr(jax, "process_index", lambda: 0)
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    return calls


def test_single_process_without_settings(initialize_calls):
    distributed.initialize()
    assert initialize_calls == []


def test_settings_from_flags_or_environment(initialize_calls, monkeypatch):
    distributed.initialize("10.0.0.1:1234", 4, 3)
    monkeypatch.setenv(distributed.ENV_COORDINATOR, "10.0.0.2:99")
    monkeypatch.setenv(distributed.ENV_NUM_PROCESSES, "2")
    monkeypatch.setenv(distributed.ENV_PROCESS_ID, "1")
    distributed.initialize()
    distributed.initialize(process_id=0)  # a flag wins over the environment
    gloo = ("config", "jax_cpu_collectives_implementation", "gloo")
    assert initialize_calls == [
        gloo,
        ("10.0.0.1:1234", 4, 3),
        gloo,
        ("10.0.0.2:99", 2, 1),
        gloo,
        ("10.0.0.2:99", 2, 0),
    ]


def test_incomplete_settings_say_what_is_missing(initialize_calls):
    with pytest.raises(ValueError, match="--coordinator_address, --num_processes and --process_id"):
        distributed.initialize("10.0.0.1:1234", 2)
    assert initialize_calls == []


def test_detected_cluster_fills_in_everything(initialize_calls, monkeypatch):
    monkeypatch.setattr(distributed, "detected_cluster", lambda: "slurm")
    distributed.initialize()
    assert initialize_calls[-1] == (None, None, None)


@pytest.mark.parametrize("tasks, expected", [("2", "slurm"), ("1", None)])
def test_slurm_detection(monkeypatch, tasks, expected):
    """JAX's own SLURM detector: used only for a job step of more than one task."""
    for name in list(os.environ):
        if name.startswith(("SLURM_", "OMPI_", "TPU_")):
            monkeypatch.delenv(name)
    for name, value in {
        "SLURM_JOB_ID": "77",
        "SLURM_STEP_NODELIST": "node[001-002]",
        "SLURM_NTASKS": tasks,
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
    }.items():
        monkeypatch.setenv(name, value)
    assert distributed.detected_cluster() == expected
