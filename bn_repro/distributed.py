"""Multi-process start-up: `initialize()` joins JAX's distributed runtime, or does nothing.

Call it before anything touches JAX devices. The settings come from, in order:
1. the arguments (the CLI's --coordinator_address, --num_processes, --process_id);
2. the environment: BN_REPRO_COORDINATOR (host:port of process 0),
   BN_REPRO_NUM_PROCESSES, BN_REPRO_PROCESS_ID;
3. JAX's own detection of a cluster (Cloud TPU pod slices, SLURM, Open MPI), which
   then fills in everything.
With none of these the run stays single-process. Each process then sees all global
devices in `jax.devices()` and feeds its own share of every batch; see train.py.
"""

import os

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

ENV_COORDINATOR = "BN_REPRO_COORDINATOR"
ENV_NUM_PROCESSES = "BN_REPRO_NUM_PROCESSES"
ENV_PROCESS_ID = "BN_REPRO_PROCESS_ID"


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return None if value in (None, "") else int(value)


def detected_cluster() -> str | None:
    """The cluster JAX's auto-detection would use for a multi-process run, if any."""
    try:  # JAX keeps its detectors private; if they move, fall back to the common env vars.
        from jax._src.clusters import ClusterEnv

        envs = [env for env in ClusterEnv._cluster_types if not env.opt_in_only_method]
    except (ImportError, AttributeError):
        if "SLURM_STEP_NODELIST" in os.environ and int(os.environ.get("SLURM_NTASKS", 1)) > 1:
            return "slurm"
        if int(os.environ.get("OMPI_COMM_WORLD_SIZE", 1)) > 1:
            return "ompi"
        return None
    for env in envs:
        if env.is_env_present() and env.get_process_count() > 1:
            return env.name or env.__name__
    return None


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Starts JAX's distributed runtime when asked to or when a cluster is detected."""
    coordinator_address = coordinator_address or os.environ.get(ENV_COORDINATOR) or None
    num_processes = num_processes if num_processes is not None else _env_int(ENV_NUM_PROCESSES)
    process_id = process_id if process_id is not None else _env_int(ENV_PROCESS_ID)
    explicit = (coordinator_address, num_processes, process_id)
    cluster = detected_cluster()
    if all(value is None for value in explicit) and cluster is None:
        return  # single process
    if cluster is None and any(value is None for value in explicit):
        raise ValueError(
            "A multi-process run needs --coordinator_address, --num_processes and "
            f"--process_id (or ${ENV_COORDINATOR}, ${ENV_NUM_PROCESSES}, ${ENV_PROCESS_ID}); "
            f"got coordinator_address={coordinator_address}, num_processes={num_processes}, "
            f"process_id={process_id}, and no SLURM/Open MPI/TPU cluster was detected."
        )
    # Cross-process collectives between CPU devices (used only when the platform is CPU).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    logging.info(
        "Process %d of %d (%s); %d local of %d global devices.",
        jax.process_index(),
        jax.process_count(),
        cluster or coordinator_address,
        jax.local_device_count(),
        jax.device_count(),
    )


def _gathered(local: np.ndarray) -> np.ndarray:
    """``local`` of every process, stacked on a new first axis. A single-process run
    skips the collective, so it needs no distributed runtime."""
    if jax.process_count() == 1:
        return np.asarray(local)[None]
    return np.asarray(multihost_utils.process_allgather(np.asarray(local)))


def all_processes(local: bool) -> bool:
    """True on every process if ``local`` is true on every process."""
    return bool(np.all(_gathered(np.array(local))))


def any_process(local: bool) -> bool:
    """True on every process if ``local`` is true on any process."""
    return bool(np.any(_gathered(np.array(local))))


def sum_over_processes(local: np.ndarray) -> np.ndarray:
    """The elementwise sum of ``local`` over the processes, on every process."""
    return np.sum(_gathered(local), axis=0)
