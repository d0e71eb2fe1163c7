"""Benchmark: the MNIST-with-BN experiment (Section 4.1) on this machine.

  python scripts/bench_mnist.py [--config=configs/mnist_bn.py] [--peer=torch]

Prints (1) training throughput of the compiled multi-step loop alone, measured after
compilation, and (2) the wall time of the full run through `train_and_evaluate`
(50,000 steps with its 100 evaluations on the 10,000 test images, checkpoints and
TensorBoard logging), split into start-up (data loading, compilation) and training.
With --peer=torch, (3) the same network, initialisation scale, optimizer and batch
size as a PyTorch eager loop doing the same number of training steps only (batches
staged in memory beforehand), and the ratio of its time to the full run's.
"""

import sys
import tempfile
import time

from bn_repro import console

console.import_tensorflow_quietly(sys.argv)  # before clu (via train) loads it loudly

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from bn_repro import config_checks, data, step_chunks, train  # noqa: E402

config_flags.DEFINE_config_file("config", "configs/mnist_bn.py", "Experiment config.")
flags.DEFINE_integer("repeats", 3, "Timed repetitions of the training-loop measurement.")
flags.DEFINE_enum("peer", None, ["torch"], "Also time a PyTorch eager loop of the same network.")
FLAGS = flags.FLAGS


def loop_throughput(config) -> float:
    """Steps/s of `train_loop` on real batches, compilation excluded."""
    dataset = data.create_dataset(config)
    trainer = train.Trainer(config, dataset)
    batches = dataset.train_batches(0)
    chunk = trainer.to_device(step_chunks.take_chunk(batches, config.steps_per_loop), stacked=True)
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


def torch_peer_seconds(config, staged_batches: int = 1000) -> tuple[str, float]:
    """Seconds for config.total_steps PyTorch eager SGD steps of config's MLP."""
    try:
        import torch
    except ImportError:
        raise app.UsageError(
            "--peer=torch needs PyTorch, which is not installed: pip install torch==2.13.0 "
            "(CPU wheels: --index-url https://download.pytorch.org/whl/cpu), or drop --peer."
        ) from None
    torch.manual_seed(config.seed)
    layers, width_in = [], config.image_size**2
    for width in config.hidden_sizes:
        layers.append(torch.nn.Linear(width_in, width, bias=config.norm != "batch"))
        if config.norm == "batch":
            # PyTorch's momentum weighs the new batch: 1 - ours.
            layers.append(
                torch.nn.BatchNorm1d(width, eps=config.bn.epsilon, momentum=1 - config.bn.momentum)
            )
        layers.append(torch.nn.Sigmoid() if config.activation == "sigmoid" else torch.nn.ReLU())
        width_in = width
    layers.append(torch.nn.Linear(width_in, config.num_classes))
    model = torch.nn.Sequential(*layers)
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            torch.nn.init.normal_(layer.weight, std=config.init_stddev)
            if layer.bias is not None:
                torch.nn.init.zeros_(layer.bias)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.learning_rate, momentum=config.momentum
    )
    batches = data.create_dataset(config).train_batches(0)
    staged = []
    for _ in range(staged_batches):
        batch = next(batches)
        images = torch.from_numpy(np.asarray(batch["image"], np.float32) / 255.0)
        staged.append((images.reshape(len(images), -1), torch.from_numpy(batch["label"]).long()))
    start = time.perf_counter()
    for step in range(config.total_steps):
        images, labels = staged[step % staged_batches]
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return torch.__version__, time.perf_counter() - start


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
    if FLAGS.peer == "torch":
        version, seconds = torch_peer_seconds(config)
        print(
            f"PyTorch {version} eager, same network, training steps only: "
            f"{config.total_steps:,} steps in {seconds:.1f} s "
            f"({config.total_steps / seconds:,.0f} steps/s); PyTorch time / our full run's "
            f"training time = {seconds / result['train_seconds']:.2f}x"
        )


if __name__ == "__main__":
    app.run(main, flags_parser=config_checks.parse_flags)
