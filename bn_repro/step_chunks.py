"""What each compiled training call works on: its steps and their stacked batches.

A call runs several steps (a `lax.scan`, bn_repro/steps.py) and ends at the next loop,
evaluation or checkpoint boundary, so that evaluations and checkpoints fall between
calls at exactly their steps.
"""

from collections.abc import Iterator

import ml_collections
import numpy as np

from bn_repro import schedule
from bn_repro.steps import Batch

Chunk = tuple[int, int, Batch]  # first step, end step, stacked host batches


def chunk_end(step: int, config: ml_collections.ConfigDict) -> int:
    """Where the next compiled call stops: a loop, eval or checkpoint boundary."""
    return min(
        config.total_steps,
        (step // config.steps_per_loop + 1) * config.steps_per_loop,
        evaluations(config).next_after(step),
        checkpoints(config).next_after(step),
    )


def evaluations(config: ml_collections.ConfigDict) -> schedule.Intervals:
    return schedule.Intervals(
        config.eval_every_steps, config.interval_growth, config.total_steps, config.steps_per_loop
    )


def checkpoints(config: ml_collections.ConfigDict) -> schedule.Intervals:
    return schedule.Intervals(
        config.checkpoint_every_steps,
        config.interval_growth,
        config.total_steps,
        config.steps_per_loop,
    )


def take_chunk(batches: Iterator[Batch], count: int) -> Batch:
    chunk = [next(batches) for _ in range(count)]
    return {key: np.stack([b[key] for b in chunk]) for key in chunk[0]}


def host_chunks(
    batches: Iterator[Batch], start_step: int, config: ml_collections.ConfigDict
) -> Iterator[Chunk]:
    """The chunk of each compiled call, in order; read on demand (bn_repro/train.py reads
    the next while the devices compute)."""
    step = start_step
    while step < config.total_steps:
        end = chunk_end(step, config)
        yield step, end, take_chunk(batches, end - step)
        step = end
