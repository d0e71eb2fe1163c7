"""Divergence checks: a non-finite loss or parameters stop the run with a clear message.

A non-finite step leaves the train state as it was (bn_repro/steps.py); the host
then stops the run here, or counts the step as skipped if the config says so.
"""

import ml_collections
import numpy as np


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


def check_finite(
    metrics: dict[str, np.ndarray], first_step: int, config: ml_collections.ConfigDict
) -> None:
    """Raises on non-finite parameters, and on a non-finite step unless such steps are
    skipped (bn_repro/metrics.py counts those as ``train/skipped_steps``)."""
    bad = np.nonzero(~metrics["finite"])[0]
    if not metrics["state_finite"]:
        raise TrainingDiverged(
            f"Training diverged: the parameters became non-finite between steps {first_step} "
            f"and {first_step + len(metrics['loss'])}. Lower --config.learning_rate (now "
            f"{config.learning_rate}). The checkpoints in the workdir are those of the last "
            "good steps."
        )
    if len(bad) and not config.skip_nonfinite_steps:
        i = int(bad[0])
        raise TrainingDiverged(
            f"Training diverged: the loss is {metrics['loss'][i]} at step {first_step + i} "
            f"(learning rate {metrics['learning_rate'][i]:.6g}). Lower --config.learning_rate "
            f"(now {config.learning_rate}), or pass --config.skip_nonfinite_steps=true to skip "
            "such steps. The checkpoints in the workdir are those of the last good steps."
        )
