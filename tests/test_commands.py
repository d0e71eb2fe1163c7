"""Each documented command that trains, measures or draws runs end to end, small:
the demo, the CPU-scale Table 2 driver, the benchmarks and the learning-rate study
(tests/test_entry_points.py covers --help of all of them). The slow ones train or
compile; they run with ./scripts/test.sh --slow."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bn_repro import event_logs
from bn_repro.configs import small_table2

ROOT = Path(__file__).resolve().parents[1]


def _run(*command: str, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command,
        cwd=ROOT,
        # One CPU device, as on a user's machine (conftest's 8 fake devices are for
        # in-process tests).
        env={**os.environ, "XLA_FLAGS": "", **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    return result


@pytest.mark.slow
def test_demo_trains_both_runs_and_draws_figure1(tmp_path):
    steps = "--config.total_steps=200"
    result = _run(
        "./scripts/demo.sh", steps, "--config.eval_every_steps=100", env={"RUNS": str(tmp_path)}
    )
    for run in ("mnist_baseline", "mnist_bn"):
        steps_seen, _ = event_logs.read_scalars(tmp_path / run)["eval/accuracy"]
        assert list(steps_seen) == [100, 200]
    assert (tmp_path / "figure1.png").stat().st_size > 10_000
    assert re.search(r"with BN: final test accuracy 0\.\d{4} \(step 200\)", result.stdout)
    assert f"tensorboard --logdir {tmp_path}" in result.stdout


@pytest.mark.slow
def test_reproduce_small_trains_one_quick_job(tmp_path):
    result = _run(
        "./scripts/reproduce_small.sh", "--quick", "--only=sweep_bn_x1", f"--runs={tmp_path}"
    )
    assert re.search(r"\d+ of 29 jobs to run", result.stdout)  # --only runs one of them
    steps, accuracy = event_logs.read_scalars(tmp_path / "sweep_bn_x1_seed0")["eval/accuracy"]
    config = small_table2.get_config("sweep_bn_x1,quick")
    assert list(steps) == list(
        range(config.eval_every_steps, config.total_steps + 1, config.eval_every_steps)
    )
    assert 0.1 < accuracy[-1] <= 1
    assert (tmp_path / "logs" / "sweep_bn_x1_seed0.log").exists()


def test_lr_scaling_study_prints_its_table_without_training(tmp_path):
    result = _run(
        sys.executable, "scripts/lr_scaling_study.py", f"--workdir={tmp_path}", "--table_only"
    )
    assert "Test accuracy (%) after the given numbers of examples seen:" in result.stdout
    assert not [path for path in tmp_path.iterdir() if path.name != "logs"]  # nothing trained


@pytest.mark.slow
def test_bench_mnist_times_the_training_loop():
    result = _run(
        sys.executable,
        "scripts/bench_mnist.py",
        "--repeats=1",
        "--config.total_steps=1000",
        "--config.eval_every_steps=500",
    )
    assert re.search(r"training loop: [\d,]+ steps/s", result.stdout), result.stdout
    assert re.search(
        r"full run: 1,000 steps with 2 evaluations: .* accuracy 0\.\d{4}", result.stdout
    )


@pytest.mark.slow
def test_bench_model_times_a_small_inception():
    result = _run(
        sys.executable,
        "scripts/bench_model.py",
        "--config=configs/small_table2.py:bn_x5",
        "--warmup=0",
        "--steps=1",
    )
    assert "model 'inception', input 28x28x1, batch 32" in result.stdout, result.stdout
    assert re.search(r"median of 1 calls of \d+ steps: [\d.]+ s/step", result.stdout)


@pytest.mark.slow
def test_bench_input_measures_the_preprocessing():
    result = _run(
        sys.executable, "scripts/bench_input.py", "--num_images=8", "--rounds=1", "--image_size=64"
    )
    assert "bare decode" in result.stdout and "% of bare decode" in result.stdout
