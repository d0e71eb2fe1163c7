"""The data-parallel trainer: cross-replica BN, resume, logs, errors."""

import functools
import json
import re

import jax
import numpy as np
import pytest

from bn_repro import (
    checkpointing,
    cpu_compiler_options,
    data,
    event_logs,
    models,
    step_chunks,
    steps,
    train,
)
from tests.helpers import assert_trees_equal, small_mnist_config


@pytest.fixture(scope="module")
def mnist_dataset():
    return data.create_dataset(small_mnist_config())


def _run_steps(config, dataset, devices, steps):
    trainer = train.Trainer(config, dataset, devices=devices)
    chunk = trainer.to_device(step_chunks.take_chunk(dataset.train_batches(0), steps), stacked=True)
    state, metrics = trainer.train_loop(trainer.state, chunk)
    return jax.device_get(state), jax.device_get(metrics)


def test_eight_devices_equal_one_device(mnist_dataset):
    """BN statistics under jit are those of the global batch: 8 shards == 1 device."""
    config = small_mnist_config()
    assert jax.device_count() == 8
    one, metrics_one = _run_steps(config, mnist_dataset, jax.devices()[:1], steps=5)
    eight, metrics_eight = _run_steps(config, mnist_dataset, jax.devices(), steps=5)
    for a, b in zip(
        jax.tree.leaves((one.params, one.batch_stats)),
        jax.tree.leaves((eight.params, eight.batch_stats)),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(metrics_one["loss"], metrics_eight["loss"], rtol=1e-5)
    # Per-shard statistics would differ from global ones by far more than rounding.
    assert not np.allclose(one.batch_stats["BatchNorm_0"]["mean"], 0.0)


def test_per_shard_statistics_would_differ(mnist_dataset):
    """The equality above is not vacuous: group_size = batch/8 changes the step."""
    config = small_mnist_config()
    grouped = small_mnist_config()
    grouped.bn.group_size = config.batch_size // 8
    whole, _ = _run_steps(config, mnist_dataset, jax.devices(), steps=2)
    per_shard, _ = _run_steps(grouped, mnist_dataset, jax.devices(), steps=2)
    difference = np.abs(
        whole.params["Dense_0"]["kernel"] - per_shard.params["Dense_0"]["kernel"]
    ).max()
    assert difference > 1e-6


def test_train_loop_equals_single_steps(mnist_dataset):
    """Several steps per compiled call give the same result as one call per step."""
    config = small_mnist_config()
    trainer = train.Trainer(config, mnist_dataset)
    batches = mnist_dataset.train_batches(0)
    host = [next(batches) for _ in range(4)]
    stacked = trainer.to_device({k: np.stack([b[k] for b in host]) for k in host[0]}, stacked=True)
    scanned, _ = trainer.train_loop(trainer.state, stacked)
    state = train.Trainer(config, mnist_dataset).state
    for batch in host:
        state, _ = trainer.train_loop(
            state, trainer.to_device({k: v[None] for k, v in batch.items()}, stacked=True)
        )
    for a, b in zip(jax.tree.leaves(scanned.params), jax.tree.leaves(state.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert int(scanned.step) == int(state.step) == 4


def test_resume_matches_uninterrupted_run(tmp_path, capsys):
    config = small_mnist_config()
    full = train.train_and_evaluate(config, tmp_path / "full")

    first_half = small_mnist_config(total_steps=100)
    train.train_and_evaluate(first_half, tmp_path / "resumed")
    resumed = train.train_and_evaluate(config, tmp_path / "resumed")
    assert "resuming from the checkpoint at step 100" in capsys.readouterr().out
    assert full["step"] == resumed["step"] == 200
    assert full["eval/accuracy"] == resumed["eval/accuracy"]

    def final_state(workdir):
        trainer = train.Trainer(config, data.create_dataset(config))
        manager = checkpointing.create_manager(workdir, keep=3)
        assert manager.latest_step() == 200
        return checkpointing.restore_latest(manager, trainer.state)

    a, b = final_state(tmp_path / "full"), final_state(tmp_path / "resumed")
    assert_trees_equal(
        (a.params, a.batch_stats, a.opt_state), (b.params, b.batch_stats, b.opt_state)
    )

    # A finished run says so and does nothing.
    again = train.train_and_evaluate(config, tmp_path / "full")
    assert again == {"step": 200, "preempted": False, "train_seconds": 0.0}
    assert "nothing to do" in capsys.readouterr().out


def test_logs_checkpoints_and_config(tmp_path):
    config = small_mnist_config(total_steps=300)
    config.keep_checkpoints = 2
    result = train.train_and_evaluate(config, tmp_path)
    curves = event_logs.read_scalars(tmp_path)
    for tag in (
        "train/loss",
        "train/accuracy",
        "train/learning_rate",
        "eval/loss",
        "eval/accuracy",
    ):
        assert tag in curves, tag
    np.testing.assert_array_equal(curves["train/loss"][0], [50, 100, 150, 200, 250, 300])
    np.testing.assert_array_equal(curves["eval/accuracy"][0], [100, 200, 300])
    # Logged as float32: one rounding (≤ 2⁻²⁴ relative), inside the default rtol 1e-7.
    np.testing.assert_allclose(curves["train/learning_rate"][1], config.learning_rate)
    assert curves["eval/accuracy"][1][-1] == pytest.approx(result["eval/accuracy"])
    assert result["eval/accuracy"] > 0.8  # 300 SGD steps on MNIST with BN
    for q in (15, 50, 85):
        assert f"eval/sigmoid_input/p{q}" in curves
    p15, p50, p85 = (curves[f"eval/sigmoid_input/p{q}"][1] for q in (15, 50, 85))
    assert np.all(p15 < p50) and np.all(p50 < p85)
    # Only the last `keep_checkpoints` are kept.
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [200, 300]
    assert json.loads((tmp_path / "config.json").read_text())["model"] == "mlp"


def test_eval_counts_every_example_once(mnist_dataset):
    """Padding is masked: a batch size that does not divide 10,000 changes nothing."""
    config = small_mnist_config()
    trainer = train.Trainer(config, mnist_dataset)
    results = []
    for eval_batch_size in (2000, 1536):
        dataset = data.create_dataset(small_mnist_config(eval_batch_size=eval_batch_size))
        results.append(trainer.evaluate(trainer.state, dataset.eval_batches()))
    assert results[0]["accuracy"] == pytest.approx(results[1]["accuracy"], abs=1e-6)
    assert results[0]["loss"] == pytest.approx(results[1]["loss"], rel=1e-5)


def test_weight_decay_only_on_kernels(mnist_dataset):
    config = small_mnist_config(weight_decay=0.5)
    state = train.Trainer(config, mnist_dataset).state
    zero = jax.tree.map(np.zeros_like, state.params)
    updates, _ = state.tx.update(zero, state.tx.init(state.params), state.params)
    lr = config.learning_rate
    np.testing.assert_allclose(
        updates["Dense_0"]["kernel"], -lr * 0.5 * state.params["Dense_0"]["kernel"], rtol=1e-6
    )
    np.testing.assert_array_equal(updates["BatchNorm_0"]["scale"], 0.0)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("model", "resnet", "Unknown model 'resnet'; valid choices: ["),
        ("dataset", "cifar", "Unknown dataset 'cifar'; valid choices: ["),
        ("batch_size", 60, "batch_size=60 is not divisible by the 8 devices"),
        ("schedule", "cosine", "Unknown schedule 'cosine'"),
    ],
)
def test_bad_config_errors(key, value, message, mnist_dataset):
    config = small_mnist_config(**{key: value})
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        if key == "model":
            models.create_model(config)
        elif key == "dataset":
            data.create_dataset(config)
        else:
            train.Trainer(config, mnist_dataset)
    if key in ("model", "dataset"):
        assert "'mlp'" in str(error.value) or "'mnist'" in str(error.value)


def test_init_from_takes_weights_and_statistics_with_a_fresh_optimizer(tmp_path, capsys):
    source = small_mnist_config(total_steps=100, momentum=0.9)
    train.train_and_evaluate(source, tmp_path / "source")
    # Another optimizer state (no momentum trace) and a zero learning rate: the weights stay
    # those of the source while the new run counts its own steps from 0.
    config = small_mnist_config(total_steps=50, momentum=0.0, learning_rate=0.0)
    config.init_from = str(tmp_path / "source")
    result = train.train_and_evaluate(config, tmp_path / "fine_tuned")
    assert "Initialised from the latest checkpoint" in capsys.readouterr().out
    assert result["step"] == 50

    def latest(run_config, workdir):
        trainer = train.Trainer(run_config, data.create_dataset(run_config))
        return checkpointing.restore_latest(
            checkpointing.create_manager(workdir, keep=3), trainer.state
        )

    before, after = latest(source, tmp_path / "source"), latest(config, tmp_path / "fine_tuned")
    assert int(after.step) == 50
    assert_trees_equal(before.params, after.params)
    assert jax.tree.structure(after.opt_state) != jax.tree.structure(before.opt_state)


def test_mlp_loop_is_compiled_without_ynnpack_and_computes_the_same(mnist_dataset):
    """bn_repro/cpu_compiler_options.py on CPU: the MLP's loop has no YNNPACK fusion,
    XLA's default compilation of the same loop has some, and both give the same steps."""
    config = small_mnist_config()
    trainer = train.Trainer(config, mnist_dataset, devices=jax.devices()[:1])
    chunk = trainer.to_device(
        step_chunks.take_chunk(mnist_dataset.train_batches(0), 3), stacked=True
    )
    default = jax.jit(
        functools.partial(
            steps.train_loop,
            learning_rate_fn=trainer.learning_rate_fn,
            dropout_key=jax.random.key(config.seed + 1),
            input_range="zero_one",
        )
    )
    assert "__ynn_fusion" not in trainer.train_loop.lower(trainer.state, chunk).compile().as_text()
    assert "__ynn_fusion" in default.lower(trainer.state, chunk).compile().as_text()
    expected, expected_metrics = jax.device_get(default(trainer.state, chunk))
    state, metrics = jax.device_get(trainer.train_loop(trainer.state, chunk))
    np.testing.assert_allclose(metrics["loss"], expected_metrics["loss"], rtol=1e-6)
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(expected.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    inception = small_mnist_config(model="inception")
    assert cpu_compiler_options.for_steps(inception, "cpu") is None
