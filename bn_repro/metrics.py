"""What a run reports: every scalar to TensorBoard, a few short lines to the console.

TensorBoard (process 0 writes WORKDIR/events.out.tfevents.*): ``train/*`` and
``perf/*`` (bn_repro/perf.py) at every multiple of ``log_every_steps``, ``eval/*`` at
every evaluation, clu's ``steps_per_sec``, and the config as hparams. The console: a
progress line (step, train loss, learning rate, steps/s, images/s, ETA) per log
interval, but at most one per `PROGRESS_MIN_SECS` (MNIST reaches a log point 20 times
a second) and at least one per `PROGRESS_MAX_SECS` while training; an evaluation line
at most once per `PROGRESS_MIN_SECS` and at the end; the final summary, whose rate
leaves out the first compiled call (compilation), with the checkpoint and the
TensorBoard command.
"""

import time
from pathlib import Path
from types import TracebackType

import jax
import ml_collections
import numpy as np
from clu import metric_writers, periodic_actions

from bn_repro import data, perf
from bn_repro.console import say

PROGRESS_MIN_SECS = 10.0
PROGRESS_MAX_SECS = 30.0


def write_train_metrics(
    writer: metric_writers.MetricWriter,
    metrics: dict[str, np.ndarray],
    first_step: int,
    config: ml_collections.ConfigDict,
) -> list[int]:
    """Writes train/* at every multiple of log_every_steps inside one chunk of steps.

    Loss and accuracy are averaged over the steps since the previous log point within
    the chunk; skipped (non-finite) steps are left out of the averages and counted.
    Returns the steps written.
    """
    written = []
    for i in range(len(metrics["loss"])):
        step = first_step + i + 1
        if step % config.log_every_steps and step != config.total_steps:
            continue
        window = slice(max(0, i + 1 - config.log_every_steps), i + 1)
        finite = metrics["finite"][window]
        scalars = {
            "train/learning_rate": float(metrics["learning_rate"][i]),
            "train/skipped_steps": int(np.sum(~finite)),
            "train/kernel_norm": float(metrics["kernel_norm"][i]),
        }
        if data.SKIPPED_IMAGES in metrics:
            scalars["train/skipped_images"] = int(np.sum(metrics[data.SKIPPED_IMAGES][window]))
        if finite.any():
            scalars["train/loss"] = float(np.mean(metrics["loss"][window][finite]))
            scalars["train/accuracy"] = float(np.mean(metrics["accuracy"][window][finite]))
        writer.write_scalars(step, scalars)
        written.append(step)
    return written


def format_duration(seconds: float) -> str:
    """3725 → '1 h 02 min', 200 → '3 min 20 s', 42.4 → '42 s'."""
    seconds = round(seconds)
    hours, minutes = seconds // 3600, seconds % 3600 // 60
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {seconds % 60:02d} s" if minutes else f"{seconds} s"


class RunReport:
    """The TensorBoard writer, the perf window and the console lines of one run.

    ``flops_per_step`` (global) and ``peak_flops`` (all devices) give perf/mfu; without
    either it is not written.
    """

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        workdir: Path,
        start_step: int,
        flops_per_step: float | None = None,
        peak_flops: float | None = None,
    ):
        self.config, self.start_step = config, start_step
        self.flops_per_step, self.peak_flops = flops_per_step, peak_flops
        if jax.process_index() == 0:
            self.writer = metric_writers.SummaryWriter(str(workdir))
        else:
            self.writer = metric_writers.MultiWriter([])
        self.progress = periodic_actions.ReportProgress(
            num_train_steps=config.total_steps, writer=self.writer, every_secs=10.0
        )
        self.perf = perf.PerfWindow()
        self.start_time = time.perf_counter()
        self.last_line = (start_step, self.start_time)  # (step, time) of the last progress
        self.log_point_since_last_line = False
        self.last_train = (float("nan"), float("nan"))  # loss, learning rate of the last chunk
        # (step, time) at the end of the first compiled call, which includes compilation.
        self.compiled: tuple[int, float] | None = None
        self.last_eval_line = -float("inf")
        # The config as hparams, so TensorBoard's HParams tab can compare runs.
        self.writer.write_hparams(hparams(config))

    def __enter__(self) -> "RunReport":
        return self

    def __exit__(
        self, kind: type | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.writer.flush()

    def train_chunk(self, metrics: dict[str, np.ndarray], first_step: int) -> None:
        """After one compiled call: train/* and perf/* at its log points, then progress."""
        end = first_step + len(metrics["loss"])
        log_steps = write_train_metrics(self.writer, metrics, first_step, self.config)
        if log_steps:
            scalars = self.perf.scalars(
                self.config.batch_size, self.flops_per_step, self.peak_flops
            )
            for step in log_steps:
                self.writer.write_scalars(step, scalars)
        self.progress(end)
        if self.compiled is None:
            self.compiled = (end, time.perf_counter())
        finite = metrics["finite"]
        if finite.any():
            loss = float(np.mean(metrics["loss"][finite]))
            self.last_train = (loss, float(metrics["learning_rate"][-1]))
        self.log_point_since_last_line |= bool(log_steps)
        self._console_progress(end)

    def _console_progress(self, step: int) -> None:
        now = time.perf_counter()
        last_step, last_time = self.last_line
        quiet_for = now - last_time
        due = self.log_point_since_last_line and quiet_for >= PROGRESS_MIN_SECS
        if not (due or quiet_for >= PROGRESS_MAX_SECS) or step == self.config.total_steps:
            return
        steps_per_sec = (step - last_step) / quiet_for
        # ETA from the whole run so far: it includes evaluations and checkpoints.
        run_rate = (step - self.start_step) / (now - self.start_time)
        loss, learning_rate = self.last_train
        say(
            f"step {step:,}/{self.config.total_steps:,}: train/loss={loss:.4g}, "
            f"lr={learning_rate:.4g}, {steps_per_sec:,.1f} steps/s, "
            f"{steps_per_sec * self.config.batch_size:,.0f} images/s, "
            f"ETA {format_duration((self.config.total_steps - step) / run_rate)}"
        )
        self.last_line = (step, now)
        self.log_point_since_last_line = False

    def evaluation(self, step: int, results: dict[str, float]) -> None:
        """eval/* to TensorBoard; accuracy and loss to the console, at most once per
        `PROGRESS_MIN_SECS` (MNIST evaluates 200 times: the curve is in TensorBoard)."""
        self.writer.write_scalars(step, {f"eval/{k}": v for k, v in results.items()})
        now = time.perf_counter()
        if step != self.config.total_steps and now - self.last_eval_line < PROGRESS_MIN_SECS:
            return
        self.last_eval_line = now
        say(
            f"step {step:,}: eval/accuracy={results['accuracy']:.4f}, "
            f"eval/loss={results['loss']:.4g}"
        )

    def summary(self, workdir: Path, step: int, seconds: float, results: dict[str, float]) -> None:
        """The run's last lines: steps, time, the rate after compilation (the first
        compiled call's time left out), the last evaluation, where to look next."""
        compiled_step, compiled_time = self.compiled or (self.start_step, self.start_time)
        if step > compiled_step:
            rate = (step - compiled_step) / (time.perf_counter() - compiled_time)
        else:  # one compiled call in all: compilation cannot be told apart
            rate = (step - self.start_step) / seconds
        say(
            f"{workdir}: trained steps {self.start_step}-{step} in {seconds:.1f} s "
            f"({rate:,.0f} steps/s after compilation); "
            + ", ".join(f"eval/{k}={v:.4f}" for k, v in results.items())
        )
        say(
            f"Checkpoint: {workdir / 'checkpoints' / str(step)}; "
            f"curves: tensorboard --logdir {workdir}"
        )


def hparams(config: ml_collections.ConfigDict) -> dict[str, bool | int | float | str]:
    """The config flattened to dotted keys with TensorBoard-storable values."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            flat.update({f"{key}.{k}": v for k, v in hparams(value).items()})
        else:
            flat[key] = value if isinstance(value, bool | int | float | str) else str(value)
    return flat
