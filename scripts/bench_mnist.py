"""Benchmark: the MNIST-with-BN experiment (Section 4.1) on this machine.

  python scripts/bench_mnist.py [--config=configs/mnist_bn.py]

Prints (1) training throughput of the compiled multi-step loop alone, measured after
compilation, and (2) the wall time of the full run through `train_and_evaluate`
(50,000 steps with its 100 evaluations on the 10,000 test images, checkpoints and
TensorBoard logging), split into start-up (data loading, compilation) and training.
"""

import tempfile
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from bn_repro import data, train

config_flags.DEFINE_config_file("config", "configs/mnist_bn.py", "Experiment config.")
flags.DEFINE_integer("repeats", 3, "Timed repetitions of the training-loop measurement.")
FLAGS = flags.FLAGS


def loop_throughput(config) -> float:
    """Steps/s of `train_loop` on real batches, compilation excluded."""
    dataset = data.create_dataset(config)
    trainer = train.Trainer(config, dataset)
    batches = dataset.train_batches(0)
    chunk = trainer.to_device(train.take_chunk(batches, config.steps_per_loop), stacked=True)
    state = trainer.state
    state, metrics = trainer.train_loop(state, chunk)  # compile
    jax.block_until_ready(metrics)
    times = []
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        state, metrics = trainer.train_loop(state, chunk)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    return config.steps_per_loop / float(np.median(times))


def main(_):
    config = FLAGS.config
    print(f"devices: {jax.devices()}")
    steps_per_sec = loop_throughput(config)
    print(
        f"training loop: {steps_per_sec:,.0f} steps/s "
        f"({steps_per_sec * config.batch_size:,.0f} examples/s, batch {config.batch_size}); "
        f"{config.total_steps:,} steps would take {config.total_steps / steps_per_sec:.1f} s"
    )
    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        result = train.train_and_evaluate(config, workdir)
        wall = time.perf_counter() - start
    evaluations = config.total_steps // config.eval_every_steps
    print(
        f"full run: {config.total_steps:,} steps with {evaluations} evaluations: "
        f"{result['train_seconds']:.1f} s of training (first step to last checkpoint), "
        f"{wall:.1f} s wall including start-up; "
        f"final test accuracy {result['eval/accuracy']:.4f}"
    )


if __name__ == "__main__":
    app.run(main)
