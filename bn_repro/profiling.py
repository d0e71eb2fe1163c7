"""``config.profile_steps``: a jax.profiler trace of N training steps after warm-up.

The trace starts after the run's first compiled call (its compilation is warm-up,
not steady state) and stops after the compiled call that completes N more steps, so
N is rounded up to whole calls of ``steps_per_loop`` steps. It is written where
TensorBoard's profile tab looks, ``WORKDIR/plugins/profile/<time>/``. Each compiled
call is one `jax.profiler.StepTraceAnnotation` named "train" with the number of its
first step, so the trace viewer shows step boundaries. Only process 0 traces (the
processes of one host would otherwise write the same file).
"""

import contextlib
from collections.abc import Iterator
from pathlib import Path

import jax

from bn_repro.console import say


class Profiler:
    """Starts and stops one trace at chunk boundaries; a no-op when ``steps`` is 0."""

    def __init__(self, steps: int, workdir: Path, start_step: int):
        self.enabled = steps > 0 and jax.process_index() == 0
        self.steps, self.workdir, self.first_step = steps, workdir, start_step
        self.started_at: int | None = None

    @contextlib.contextmanager
    def step(self, step: int, end: int) -> Iterator[None]:
        """Wraps the compiled call for steps [step, end): starts, annotates, stops."""
        if not self.enabled:
            yield
            return
        if self.started_at is None and step > self.first_step:
            jax.profiler.start_trace(str(self.workdir))
            self.started_at = step
        if self.started_at is None:
            yield
            return
        with jax.profiler.StepTraceAnnotation("train", step_num=step):
            yield
        if end - self.started_at >= self.steps:
            self.stop()

    def stop(self) -> None:
        """Ends the trace if one is running (also when the run ends early)."""
        if not self.enabled:
            return
        if self.started_at is None:
            say(
                f"No profile: the run ended within its first compiled call (warm-up); run "
                f"more steps than steps_per_loop to trace {self.steps}."
            )
        else:
            jax.profiler.stop_trace()
            say(f"Profile of steps {self.started_at}+ in {self.workdir}/plugins/profile.")
        self.enabled = False
