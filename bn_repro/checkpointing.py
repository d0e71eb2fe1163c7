"""What a workdir holds to resume a run: orbax checkpoints and the run's config.

Checkpoints live in ``WORKDIR/checkpoints``; orbax writes each into a temporary
directory and renames it when complete, so a crash mid-write never leaves a
half-written checkpoint that looks finished. A checkpoint that is damaged anyway
(truncated files, a full disk) is skipped in favour of the one before it.
"""

import json
import os
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils

from bn_repro import distributed
from bn_repro.console import say

CONFIG_FILE = "config.json"
# Keys that may change between the runs of one workdir: they schedule bookkeeping,
# not the computation, so the resumed run stays the same experiment.
RESUMABLE_CHANGES = frozenset({
    "total_steps", "eval_every_steps", "checkpoint_every_steps", "interval_growth",
    # The epoch keys the step keys above follow (bn_repro/schedule.py).
    "total_epochs", "eval_every_epochs", "checkpoint_every_epochs",
    "log_every_steps", "keep_checkpoints", "steps_per_loop", "eval_batch_size", "data_dir",
    "allow_config_change", "skip_nonfinite_steps", "peak_flops", "profile_steps",
    "conv_impl",  # the same sums computed in another form (bn_repro/models/conv.py)
    "allow_restart_from_scratch",
})  # fmt: skip
# Keys added to the config after some workdirs were recorded, with the value those
# runs used: a workdir without the key resumes and evaluates as if it had recorded
# that value. Dotted keys are nested ("bn.use_scale" is config.bn.use_scale).
KEYS_ADDED_LATER = {
    "dtype": "float32",
    "matmul_precision": "default",
    "conv_impl": "auto",
    "train_examples": 0,
    "eval_examples": 0,
    # Distortions, shuffling, evaluation grid and LRN scale of small datasets.
    "distortions": "none",
    "distortion_strength": 1.0,
    "min_crop_area": 0.35,
    "shuffle": "examples",
    "interval_growth": 1.0,
    "lrn_pixel_scale": 1.0,
    # The published weights' network variants (bn_repro/models/inception_config.py).
    "padding": "same",
    "bn.use_scale": True,
    "conv_bias_with_bn": False,
    "first_conv_bn": True,
}
# Keys only the configs of one dataset have: a default for another dataset's run
# would be a key its current config lacks, which the resume check would refuse.
DATASET_KEYS_ADDED_LATER = {
    "imagenet2012": dict(input_range="minus_one_one", eval_crop="central_fraction", label_offset=0)
}
CHECKPOINTS = "checkpoints"
DAMAGED = "damaged_checkpoints"
RESTART_FIX = (
    "pass --config.allow_restart_from_scratch=true to train from step 0 here anyway "
    "(the old curves stay in TensorBoard beside the new), or use another --workdir."
)


def create_manager(workdir: Path, keep: int) -> ocp.CheckpointManager:
    """A manager that keeps the ``keep`` most recent checkpoints."""
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.LatestN(keep),
        create=True,
        # Leftovers of a write cut short (the process was killed) are removed on start.
        cleanup_tmp_directories=True,
    )
    return ocp.CheckpointManager(Path(workdir).absolute() / CHECKPOINTS, options=options)


def save(manager: ocp.CheckpointManager, step: int, state: Any) -> None:
    manager.save(step, args=ocp.args.StandardSave(state))


def restore(manager: ocp.CheckpointManager, step: int, target: Any) -> Any:
    """Restores ``step`` into the structure, dtypes and shardings of ``target``."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    return manager.restore(step, args=ocp.args.StandardRestore(abstract))


def open_read_only(workdir: str | Path, item_handlers: Any = None) -> ocp.CheckpointManager:
    """A manager of ``workdir``'s checkpoints that never deletes or cleans up what a
    training run writes: the run may still be training there."""
    directory = Path(workdir).absolute() / CHECKPOINTS
    if not directory.is_dir():
        raise FileNotFoundError(
            f"No checkpoints in {directory}; is {workdir} the --workdir of a training run?"
        )
    options = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0)
    return ocp.CheckpointManager(directory, options=options, item_handlers=item_handlers)


def finished(workdir: str | Path) -> bool:
    """Whether ``workdir`` holds a checkpoint at its recorded config's last step."""
    workdir = Path(workdir)
    config, checkpoints = workdir / CONFIG_FILE, workdir / CHECKPOINTS
    if not config.exists() or not checkpoints.is_dir():
        return False
    total = json.loads(config.read_text())["total_steps"]
    # Orbax writes into STEP.orbax-checkpoint-tmp-*: only complete checkpoints are digits.
    steps = [int(p.name) for p in checkpoints.iterdir() if p.name.isdigit()]
    return bool(steps) and max(steps) >= total


def with_keys_added_later(recorded: dict[str, Any]) -> dict[str, Any]:
    """A recorded config (as JSON) with the values of the keys added since that it lacks."""
    complete = json.loads(json.dumps(recorded))  # a deep copy
    later = {**KEYS_ADDED_LATER, **DATASET_KEYS_ADDED_LATER.get(recorded.get("dataset"), {})}
    for key, value in later.items():
        *parents, leaf = key.split(".")
        node = complete
        for parent in parents:
            node = node.setdefault(parent, {})
        node.setdefault(leaf, value)
    return complete


def load_config(workdir: str | Path) -> ml_collections.ConfigDict:
    """The config recorded in ``workdir``, every key added since at the value it ran with."""
    path = Path(workdir) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; is {workdir} a training run's workdir?")
    return ml_collections.ConfigDict(with_keys_added_later(json.loads(path.read_text())))


def restore_weights(workdir: str | Path, target: dict[str, Any]) -> dict[str, Any]:
    """Only the subtrees of ``target`` (e.g. params, batch_stats) from ``workdir``'s latest
    checkpoint, whatever optimizer state it holds: a run's ``init_from``.
    """
    manager = open_read_only(workdir, item_handlers=ocp.PyTreeCheckpointHandler())
    try:
        step = manager.latest_step()
        if step is None:
            raise FileNotFoundError(f"No checkpoint in {manager.directory} to initialise from.")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        args = ocp.args.PyTreeRestore(abstract, partial_restore=True)
        restored = manager.restore(step, args=args)
    finally:
        manager.close()
    # Orbax returns the saved shapes even when they differ from the target's.
    for (path, want), got in zip(
        jax.tree_util.tree_leaves_with_path(target), jax.tree.leaves(restored), strict=True
    ):
        if np.shape(got) != np.shape(want):
            raise ValueError(
                f"{workdir} step {step}: {jax.tree_util.keystr(path)} has shape "
                f"{np.shape(got)}, this config's model {np.shape(want)}."
            )
    return restored


def restore_latest(manager: ocp.CheckpointManager, target: Any, allow_restart: bool = False) -> Any:
    """The latest readable checkpoint, or ``target`` unchanged if there is none.

    An unreadable checkpoint is moved to ``WORKDIR/damaged_checkpoints`` (kept for
    inspection, out of the way of the resumed run's saves) and the one before it is
    tried. If none is readable, raises ValueError unless ``allow_restart``: starting
    at step 0 silently would throw away the run's progress without anyone asking.
    """
    steps = sorted(manager.all_steps(), reverse=True)
    damaged_checkpoints = Path(manager.directory).parent / DAMAGED
    for step in steps:
        try:
            state, error = restore(manager, step, target), None
        except Exception as exception:  # noqa: BLE001 - any damage means: try the previous one
            state, error = None, exception
        # All processes must resume from the same step, even if only one of them
        # found its part of the checkpoint damaged.
        if distributed.all_processes(error is None):
            return state
        damaged = damaged_checkpoints / str(step)
        reason = f"{type(error).__name__}: {str(error)[:200]}" if error else "damaged elsewhere"
        logging.warning("Checkpoint %d unreadable (%s); moved to %s.", step, reason, damaged)
        say(
            f"warning: the checkpoint at step {step} in {manager.directory} is unreadable "
            f"({reason}); moved it to {damaged} and falling back to the previous one."
        )
        if jax.process_index() == 0:
            damaged.parent.mkdir(exist_ok=True)
            (Path(manager.directory) / str(step)).rename(damaged)
        multihost_utils.sync_global_devices(f"moved damaged checkpoint {step}")
        manager.reload()
    if steps and not allow_restart:
        raise ValueError(
            f"None of the checkpoints {steps} in {manager.directory} could be restored; "
            f"they are kept in {damaged_checkpoints}. To go on, {RESTART_FIX}"
        )
    return target


def check_fresh_start(workdir: Path, checkpoint_every_steps: int, allow_restart: bool) -> None:
    """Refuses to start a run at step 0 in a workdir that holds an earlier run's
    damaged checkpoints, or event files of a run that got past a checkpoint step (its
    checkpoints were lost), unless ``allow_restart``. Event files of a run killed
    before or while writing its first checkpoint (they reach that step at most) are
    no reason: that run simply starts again."""
    if allow_restart:
        return
    leftovers = sorted(p.name for p in workdir.glob("events.out.tfevents.*"))
    if leftovers and not (workdir / DAMAGED).is_dir():
        from bn_repro import event_logs  # imported on use: it loads TensorBoard

        steps = [s.max() for s, _ in event_logs.read_scalars(workdir).values() if len(s)]
        if max(steps, default=0) <= checkpoint_every_steps:
            return
    if (workdir / DAMAGED).is_dir():
        leftovers.insert(0, f"{DAMAGED}/")
    if leftovers:
        shown = ", ".join(leftovers[:3]) + (", ..." if len(leftovers) > 3 else "")
        raise ValueError(
            f"{workdir} has no readable checkpoint but holds an earlier run's files "
            f"({shown}); {RESTART_FIX}"
        )


def ensure_writable(workdir: Path) -> None:
    """Fails before any training if ``workdir`` cannot hold checkpoints and logs."""
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        probe = workdir / f".write_test_{jax.process_index()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise PermissionError(
            f"Cannot write to workdir {workdir} ({error.strerror}); choose a writable "
            "--workdir or fix its permissions."
        ) from error


def _flat(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_and_record_config(config: ml_collections.ConfigDict, workdir: Path) -> None:
    """Refuses to resume a workdir that holds a different experiment; records the config.

    Differences in the keys of ``RESUMABLE_CHANGES`` are allowed; others raise unless
    ``config.allow_config_change`` is set.
    """
    path = workdir / CONFIG_FILE
    now = json.loads(json.dumps(config.to_dict(), default=str))
    if path.exists() and not config.get("allow_config_change", False):
        saved = _flat(with_keys_added_later(json.loads(path.read_text())))
        current = _flat(now)
        differences = {
            key: (saved.get(key, "<absent>"), current.get(key, "<absent>"))
            for key in sorted(saved.keys() | current.keys())
            if saved.get(key) != current.get(key) and key.split(".")[-1] not in RESUMABLE_CHANGES
        }
        if differences:
            listing = "\n".join(
                f"  {key}: {old!r} in the workdir, {new!r} now"
                for key, (old, new) in differences.items()
            )
            raise ValueError(
                f"{workdir} holds a run of a different configuration:\n{listing}\n"
                "Use another --workdir, or pass --config.allow_config_change=true to resume "
                "with the new values anyway."
            )
    if jax.process_index() == 0:
        # Atomic replace: the other processes may be reading the previous file.
        partial = path.with_name(path.name + ".tmp")
        partial.write_text(json.dumps(now, indent=2))
        os.replace(partial, path)
