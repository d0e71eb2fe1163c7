"""Training-step throughput of a model: images/s and the model FLOP/s it reaches.

  python scripts/bench_model.py --config=configs/NAME.py --batch_size=N [--config.KEY=VALUE ...]

For example BN-Inception at 224×224, batch 32 (the paper's mini-batch):

  python scripts/bench_model.py --config=configs/default.py --channels=3 --batch_size=32 \\
      --config.model=inception --config.image_size=224 --config.num_classes=1000 \\
      --peer=torch --peer=tf_slim

Times the trainer's own compiled step (`bn_repro.train.Trainer`: forward, backward,
SGD update and BN moving averages) on random images, on whatever devices are present,
with the batch sharded over them as in training. After ``--warmup`` untimed steps it
prints the median of ``--steps`` timed steps, in wall-clock time and in this
process's CPU time (which depends less on other work sharing the CPU). Model FLOP/s
counts 6 FLOPs per multiply-accumulate of the forward pass per image (2 forward, 4
backward: the input and the weight gradients), the usual convention, whatever XLA
actually executes.

``--peer=torch`` / ``--peer=tf_slim`` (repeatable) also time BN-Inception's training
step at 224×224 and the same batch in pretrainedmodels' PyTorch port (eager) and in
TF-slim's ``inception_v2`` (a graph), in this process after ours, and print our speed
as a ratio of theirs (`bn_repro/experiments/peer_nets.py`).
"""

import os

# Must be set before JAX starts its CPU backend; only XLA's CPU compiler reads it, so
# GPU and TPU runs are unaffected. XLA's newer fusion emitters made the 224 px
# BN-Inception training step 4-7% slower on the 2-core development CPU.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_cpu_use_fusion_emitters=false"
).strip()

import sys  # noqa: E402

from bn_repro import console  # noqa: E402

console.import_tensorflow_quietly(sys.argv)  # before clu (via train) loads it loudly

import statistics  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from bn_repro import config_checks, models, train  # noqa: E402
from bn_repro.experiments import peer_nets  # noqa: E402
from bn_repro.models import summary  # noqa: E402

PEERS = {"torch": "PyTorch eager, pretrainedmodels BNInception", "tf_slim": "TF-slim inception_v2"}

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
flags.DEFINE_integer("batch_size", None, "Global batch size; default: the config's.")
flags.DEFINE_integer("channels", None, "Input channels; default 1 for (Fashion-)MNIST, else 3.")
flags.DEFINE_integer("warmup", 2, "Untimed steps after compilation.")
flags.DEFINE_integer("steps", 5, "Timed calls of the compiled loop; the median is reported.")
flags.DEFINE_integer(
    "steps_per_loop",
    1,
    "Training steps per compiled call (the trainer's lax.scan); times are per step.",
)
flags.DEFINE_multi_enum(
    "peer", [], list(PEERS), "Also time BN-Inception at 224 px in this implementation."
)


def time_steps(
    trainer: train.Trainer, batch: dict, warmup: int, steps: int
) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds of each step, to its results being ready.

    On a machine shared with other work the wall-clock time depends on the load;
    the CPU time (all threads of this process) much less so.
    """
    state = trainer.state
    wall, cpu = [], []
    for i in range(warmup + steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        state, metrics = trainer.train_loop(state, batch)
        jax.block_until_ready((state, metrics))
        if i >= warmup:
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = FLAGS.config
    if FLAGS.batch_size:
        config.batch_size = FLAGS.batch_size
    shape = summary.input_shape(config, FLAGS.channels)
    model = models.create_model(config)
    macs = summary.forward_macs(model, summary.abstract_variables(model, shape), shape)

    trainer = train.Trainer(config, types.SimpleNamespace(image_shape=shape))
    rng = np.random.default_rng(0)
    stack = (FLAGS.steps_per_loop, config.batch_size)  # as the trainer's loop expects
    host_batch = {
        "image": rng.integers(0, 256, (*stack, *shape), dtype=np.uint8),
        "label": rng.integers(0, config.num_classes, stack, dtype=np.int32),
    }
    batch = trainer.to_device(host_batch, stacked=True)
    start = time.perf_counter()
    trainer.train_loop = trainer.train_loop.lower(trainer.state, batch).compile()
    compile_seconds = time.perf_counter() - start

    wall, cpu = time_steps(trainer, batch, FLAGS.warmup, FLAGS.steps)
    seconds = statistics.median(wall) / FLAGS.steps_per_loop
    images_per_second = config.batch_size / seconds
    devices = jax.devices()
    print(
        f"model {config.model!r}, input {'x'.join(map(str, shape))}, batch {config.batch_size}, "
        f"{len(devices)} x {devices[0].device_kind}, compiled in {compile_seconds:.0f} s"
    )
    print(
        f"median of {FLAGS.steps} calls of {FLAGS.steps_per_loop} steps: {seconds:.4f} s/step, "
        f"{1 / seconds:.1f} steps/s, {images_per_second:.1f} images/s, "
        f"{6 * macs * images_per_second / 1e9:.1f} model GFLOP/s "
        f"({macs / 1e9:.3f} G MACs per image forward)"
    )
    print(
        f"process CPU time {statistics.median(cpu) / FLAGS.steps_per_loop:.4f} s/step "
        f"on {os.cpu_count()} cores; "
        f"load average {os.getloadavg()[0]:.1f} (above {os.cpu_count()}: the machine was shared)"
    )
    for peer in FLAGS.peer:
        time_peer(peer, config, seconds)


def time_peer(peer: str, config, our_seconds: float) -> None:
    if (config.model, config.image_size) != ("inception", peer_nets.IMAGE_SIZE):
        raise app.UsageError(
            f"--peer={peer} times BN-Inception at 224 px; this run is {config.model!r} at "
            f"{config.image_size} px: add --config.model=inception --config.image_size=224."
        )
    try:
        step_seconds = getattr(peer_nets, f"{peer}_step_seconds")
        version, seconds = step_seconds(config.batch_size, FLAGS.warmup, FLAGS.steps)
    except ImportError as error:
        raise app.UsageError(
            f"--peer={peer} needs {error.name}, which is not installed: "
            "pip install -r requirements.txt (or drop --peer)."
        ) from error
    print(
        f"peer {PEERS[peer]} ({version}): {seconds:.4f} s/step, "
        f"{config.batch_size / seconds:.1f} images/s; ours / theirs = "
        f"{seconds / our_seconds:.2f}x"
    )


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    app.run(main, flags_parser=config_checks.parse_flags)
