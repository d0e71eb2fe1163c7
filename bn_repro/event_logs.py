"""Reading scalar curves back from the TensorBoard event files a run wrote."""

import sys
from pathlib import Path

from bn_repro import console

# TensorBoard's readers import TensorFlow when it is installed: without its banners.
console.import_tensorflow_quietly(sys.argv)

import numpy as np  # noqa: E402
from tensorboard.backend.event_processing import event_accumulator  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402


def read_scalars(workdir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """All scalars logged under ``workdir``: tag → (steps, values), sorted by step.

    clu's writers store scalars as TF2 summary tensors; if a resumed run logged a
    step twice, the later value wins.
    """
    workdir = Path(workdir)
    if not list(workdir.glob("events.out.tfevents.*")):
        raise FileNotFoundError(
            f"No TensorBoard event files in {workdir}; is it the --workdir of a training run?"
        )
    accumulator = event_accumulator.EventAccumulator(
        str(workdir), size_guidance={event_accumulator.TENSORS: 0}
    )
    accumulator.Reload()
    curves = {}
    for tag in accumulator.Tags()[event_accumulator.TENSORS]:
        events = accumulator.Tensors(tag)
        values = {e.step: tensor_util.make_ndarray(e.tensor_proto) for e in events}
        if any(np.size(v) != 1 for v in values.values()):
            continue  # not a scalar curve (e.g. the hparams summary)
        by_step = {step: float(np.asarray(value).reshape(())) for step, value in values.items()}
        steps = np.array(sorted(by_step))
        curves[tag] = (steps, np.array([by_step[s] for s in steps]))
    return curves


def first_step_reaching(steps: np.ndarray, values: np.ndarray, target: float) -> int | None:
    """The first logged step whose value is at least ``target`` (None if never)."""
    reached = np.nonzero(values >= target)[0]
    return int(steps[reached[0]]) if len(reached) else None
