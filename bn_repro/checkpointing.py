"""Orbax checkpoints of the train state in ``WORKDIR/checkpoints``."""

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


def create_manager(workdir: Path, keep: int) -> ocp.CheckpointManager:
    """A manager that keeps the ``keep`` most recent checkpoints."""
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.LatestN(keep),
        create=True,
    )
    return ocp.CheckpointManager(Path(workdir).absolute() / "checkpoints", options=options)


def save(manager: ocp.CheckpointManager, step: int, state: Any) -> None:
    manager.save(step, args=ocp.args.StandardSave(state))


def restore(manager: ocp.CheckpointManager, step: int, target: Any) -> Any:
    """Restores ``step`` into the structure, dtypes and shardings of ``target``."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    return manager.restore(step, args=ocp.args.StandardRestore(abstract))


def restore_latest(manager: ocp.CheckpointManager, target: Any) -> Any:
    """The latest checkpoint if there is one, else ``target`` unchanged."""
    step = manager.latest_step()
    return target if step is None else restore(manager, step, target)
