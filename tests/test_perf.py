"""perf/* scalars, the profiler window and the console a run prints."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np
import pytest

from bn_repro import data, event_logs, metrics, perf, step_chunks, train
from tests.helpers import small_mnist_config
from tests.test_robustness import ROOT, SMALL_MNIST_FLAGS

LOG_STEPS = [50, 100, 150, 200]


def test_perf_scalars_in_the_event_files(tmp_path):
    config = small_mnist_config(peak_flops=1e12)  # a made-up peak, so MFU is written on CPU
    result = train.train_and_evaluate(config, tmp_path)
    curves = event_logs.read_scalars(tmp_path)
    for tag in ("perf/images_per_sec", "perf/step_time", "perf/input_wait_fraction", "perf/mfu"):
        np.testing.assert_array_equal(curves[tag][0], LOG_STEPS, err_msg=tag)
    step_time = curves["perf/step_time"][1]
    images_per_sec = curves["perf/images_per_sec"][1]
    np.testing.assert_allclose(images_per_sec, config.batch_size / step_time, rtol=1e-6)
    # Training time is at most the run's wall time, and the run did 200 steps.
    assert np.all(step_time > 0) and np.sum(step_time) * 50 <= result["train_seconds"]
    wait = curves["perf/input_wait_fraction"][1]
    assert np.all((0 <= wait) & (wait <= 1))
    # MFU against 1e12 FLOP/s per device: the step's FLOPs over its time.
    low, high = _step_flops_bounds(config)
    flops = curves["perf/mfu"][1] * 1e12 * jax.device_count() * step_time
    assert np.all((low <= flops) & (flops <= high)), flops


def _step_flops_bounds(config) -> tuple[float, float]:
    """A training step of 784-100-100-100-10 on the global batch: each matrix product
    (2·m·n·k FLOPs) forward, and twice backward (dx and dW; the first layer needs no
    dx); elementwise work adds less than 30% of the forward products."""
    widths = (784, *config.hidden_sizes, config.num_classes)
    pairs = zip(widths[:-1], widths[1:], strict=True)
    products = [2.0 * config.batch_size * a * b for a, b in pairs]
    low = 3 * sum(products) - products[0]
    return low, low + 0.3 * sum(products)


def test_train_step_flops_count_forward_and_backward_products():
    """XLA's count of one training step against the count of its matrix products."""
    config = small_mnist_config()
    dataset = data.create_dataset(config)
    trainer = train.Trainer(config, dataset)
    chunk = step_chunks.take_chunk(dataset.train_batches(0), 1)
    flops = perf.train_step_flops(
        trainer.train_loop, trainer.state, chunk, config.batch_size, trainer.stacked_batch
    )
    low, high = _step_flops_bounds(config)
    assert low <= flops <= high, (low, flops, high)


class WithoutLoweredAnalysis:
    """A jitted loop whose lowered program has no cost analysis, as on TPU and GPU;
    with ``compiled=False`` its compiled program has none either."""

    def __init__(self, jitted, compiled: bool):
        self.jitted, self.compiled = jitted, compiled

    def lower(self, *args):
        lowered = self.jitted.lower(*args)
        compile_ = (
            lowered.compile
            if self.compiled
            else lambda: SimpleNamespace(cost_analysis=lambda: None)
        )
        return SimpleNamespace(cost_analysis=lambda: None, compile=compile_)


def _flops_and_peak(compiled: bool):
    config = small_mnist_config(peak_flops=1e12)
    dataset = data.create_dataset(config)
    trainer = train.Trainer(config, dataset)
    chunk = step_chunks.take_chunk(dataset.train_batches(0), 1)
    loop = WithoutLoweredAnalysis(trainer.train_loop, compiled)
    args = (trainer.model, loop, trainer.state, chunk, trainer.stacked_batch)
    return config, perf.flops_and_peak(config, *args)


def test_mfu_flops_from_the_compiled_program_times_the_devices():
    """The compiled analysis is per device: times 8 it is the step's global count.
    Bounds: the products' count less 20% (the optimised program may count less), and
    at most the products with their elementwise work plus the parameter update, which
    every device repeats on its replica, so it counts 8 times (at most 10 FLOPs per
    parameter: momentum, weight decay, the rate). One device's share alone would be
    1/8 of the count and fail."""
    config, (flops, peak) = _flops_and_peak(compiled=True)
    low, high = _step_flops_bounds(config)
    widths = (784, *config.hidden_sizes, config.num_classes)
    params = sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))
    replicated_update = 10 * params * jax.device_count()
    assert 0.8 * low <= flops <= high + replicated_update, (low, flops, high)
    assert peak == 1e12 * jax.device_count()


def test_mfu_flops_fall_back_to_six_times_the_forward_macs():
    """No analysis at all: 3 × 2 × the multiply-adds of the layers' kernels."""
    config, (flops, peak) = _flops_and_peak(compiled=False)
    widths = (784, *config.hidden_sizes, config.num_classes)
    macs = sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    assert flops == 6 * macs * config.batch_size and peak == 1e12 * jax.device_count()


def test_warning_when_the_peak_is_known_but_not_the_flops(monkeypatch, caplog):
    monkeypatch.setattr(perf.summary, "forward_macs", lambda *args: 0)
    _, (flops, peak) = _flops_and_peak(compiled=False)
    assert flops is None and peak is None
    assert "perf/mfu will not be written" in caplog.text


def test_no_mfu_without_a_known_peak(tmp_path):
    train.train_and_evaluate(small_mnist_config(total_steps=100), tmp_path)
    curves = event_logs.read_scalars(tmp_path)
    assert "perf/step_time" in curves and "perf/mfu" not in curves


def test_peak_table_by_device_kind():
    config = small_mnist_config()
    kinds = {
        "TPU v4": 275e12,
        "TPU v5 lite": 197e12,
        "NVIDIA A100-SXM4-40GB": 312e12,
        "NVIDIA H100 80GB HBM3": 989e12,
        "NVIDIA H100 PCIe": 756e12,
        "cpu": None,
    }
    for kind, peak in kinds.items():
        assert perf.device_peak_flops(config, SimpleNamespace(device_kind=kind)) == peak, kind
    config.peak_flops = 5e12
    assert perf.device_peak_flops(config, SimpleNamespace(device_kind="cpu")) == 5e12


class SlowInput:
    """The MNIST dataset with a pipeline that takes 20 ms per batch."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __getattr__(self, name):
        return getattr(self.dataset, name)

    def train_batches(self, start_step):
        for batch in self.dataset.train_batches(start_step):
            time.sleep(0.02)
            yield batch


def test_input_wait_shows_a_slow_pipeline(tmp_path, monkeypatch):
    """20 ms per batch: each 50-step window but the last waits at least 1 s for input."""
    create = data.create_dataset
    monkeypatch.setattr(data, "create_dataset", lambda config: SlowInput(create(config)))
    train.train_and_evaluate(small_mnist_config(), tmp_path)
    curves = event_logs.read_scalars(tmp_path)
    fraction, step_time = curves["perf/input_wait_fraction"][1], curves["perf/step_time"][1]
    wait_seconds = fraction * step_time * 50
    # Windows 1-3 each read the next 50 batches (the first chunk is read before the
    # loop; the last call has nothing left to read). The bound holds however loaded
    # the machine is: the sleeps alone are 1 s.
    assert np.all(wait_seconds[:3] >= 1.0), wait_seconds
    assert wait_seconds[3] < 0.5, wait_seconds


def test_profile_steps_writes_a_trace(tmp_path, capsys):
    train.train_and_evaluate(small_mnist_config(profile_steps=50), tmp_path)
    traces = list((tmp_path / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 0
    # The step annotation of the traced call (steps 50-99, after the warm-up call).
    assert b"train" in traces[0].read_bytes()
    assert "Profile of steps 50+" in capsys.readouterr().out


def test_profile_needs_more_than_the_warm_up_call(tmp_path, capsys):
    config = small_mnist_config(profile_steps=10, total_steps=50)
    train.train_and_evaluate(config, tmp_path)
    assert not (tmp_path / "plugins").exists()
    assert "No profile" in capsys.readouterr().out


def test_console_progress_lines(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(metrics, "PROGRESS_MIN_SECS", 0.0)  # a line at every log point
    train.train_and_evaluate(small_mnist_config(), tmp_path)
    lines = capsys.readouterr().out.splitlines()
    progress = [line for line in lines if "steps/s," in line and "ETA" in line]
    # One per chunk with a log point, but none at the last step (the summary says it).
    assert [line.split(":")[0] for line in progress] == [
        "step 50/200",
        "step 100/200",
        "step 150/200",
    ]
    evaluations = [line.split(":")[0] for line in lines if ": eval/accuracy=" in line]
    assert evaluations == ["step 100", "step 200"]
    assert metrics.format_duration(3725) == "1 h 02 min"
    assert metrics.format_duration(200) == "3 min 20 s"
    assert metrics.format_duration(42.4) == "42 s"


def _cli(workdir: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bn_repro.main", f"--workdir={workdir}", *SMALL_MNIST_FLAGS, *flags],
        cwd=ROOT,
        # One CPU device, and no TF log level from conftest: main.py sets its own.
        env={
            **{key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"},
            "XLA_FLAGS": "",
        },
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("verbosity", [None, "--verbosity=0"])
def test_cli_console_is_quiet_unless_asked(tmp_path, verbosity):
    flags = ["--config.total_steps=200", *([verbosity] if verbosity else [])]
    result = _cli(tmp_path, *flags)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    banners = ("oneDNN", "Unable to initialize backend", "logging_writer.py")
    if verbosity is None:
        assert result.stderr == ""
        lines = result.stdout.splitlines()
        # Progress lines appear too when the run takes more than 30 s (a loaded machine).
        others = [line for line in lines if not re.match(r"step [\d,]+/200: .* ETA ", line)]
        assert others[0].startswith("mlp on mnist in ") and others[0].endswith("; compiling…")
        assert "1 CPU device(s), steps 0-200, convolutions as matrix products" in others[0]
        assert [line.split(":")[0] for line in others[1:3]] == ["step 100", "step 200"]
        assert "trained steps 0-200" in others[3] and "after compilation" in others[3]
        assert others[4] == (
            f"Checkpoint: {tmp_path}/checkpoints/200; curves: tensorboard --logdir {tmp_path}"
        )
        assert len(others) == 5
        assert not any(banner in output for banner in banners)
    else:
        assert "Unable to initialize backend" in output  # the INFO logs are back
