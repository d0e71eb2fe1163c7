"""bn_repro.evaluate, bn_repro.prediction and bn_repro.ensemble on tiny MNIST runs
trained here.

Algorithm 2 is checked against a float64 numpy forward pass of the trained MLP that
records the pre-BN activations of every layer on the same training batches.
"""

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from bn_repro import checkpointing, data, ensemble, evaluate, event_logs, prediction, train
from bn_repro.batch_norm import DEFAULT_EPSILON
from bn_repro.data import multicrop
from tests.helpers import assert_trees_equal, small_mnist_config

REPO = Path(__file__).resolve().parents[1]
POPULATION_BATCHES = 3


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A BN run and a run without BN (another config), 200 steps each."""
    root = tmp_path_factory.mktemp("runs")
    results = {}
    for name, config in (
        ("bn", small_mnist_config()),
        ("no_bn", small_mnist_config(norm="none", seed=1)),
    ):
        results[name] = train.train_and_evaluate(config, root / name)
    return root, results


@pytest.fixture(scope="module")
def bn_run(runs):
    """The BN run's config, dataset, trainer and restored final state."""
    workdir = runs[0] / "bn"
    config = prediction.load_config(workdir)
    dataset = data.create_dataset(config)
    trainer = train.Trainer(config, dataset)
    return config, dataset, trainer, prediction.restore_checkpoint(trainer, workdir)


@pytest.fixture(scope="module")
def predictions(runs):
    """EMA statistics, centre crop, for both runs."""
    return {name: prediction.predict_run(runs[0] / name) for name in ("bn", "no_bn")}


def _centre(dataset):
    return ({**b, "image": b["image"][:, None]} for b in dataset.eval_batches())


def _np_batch_moments(params, images, num_layers):
    """Algorithm 1 in float64: μ_B and σ²_B of each layer's pre-BN activations."""
    h = images.reshape(len(images), -1).astype(np.float64) / 255.0
    moments = []
    for i in range(num_layers):
        pre_bn = h @ np.asarray(params[f"Dense_{i}"]["kernel"], np.float64)
        mean, var = pre_bn.mean(axis=0), pre_bn.var(axis=0)
        moments.append((mean, var))
        bn = params[f"BatchNorm_{i}"]
        x_hat = (pre_bn - mean) / np.sqrt(var + DEFAULT_EPSILON)
        h = 1 / (1 + np.exp(-(np.asarray(bn["scale"]) * x_hat + np.asarray(bn["bias"]))))
    return moments


def test_population_statistics_are_algorithm_2(bn_run):
    config, dataset, trainer, state = bn_run
    population = prediction.with_population_statistics(trainer, state, dataset, POPULATION_BATCHES)

    batches = list(itertools.islice(dataset.train_batches(0), POPULATION_BATCHES))
    layers = len(config.hidden_sizes)
    per_batch = [_np_batch_moments(state.params, b["image"], layers) for b in batches]
    m = config.batch_size
    for i in range(layers):
        expected_mean = np.mean([moments[i][0] for moments in per_batch], axis=0)
        expected_var = m / (m - 1) * np.mean([moments[i][1] for moments in per_batch], axis=0)
        stats = jax.device_get(population.batch_stats[f"BatchNorm_{i}"])
        np.testing.assert_allclose(stats["mean"], expected_mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(stats["var"], expected_var, rtol=1e-4, atol=1e-6)
        # Not vacuous: the moving averages are other numbers.
        assert not np.allclose(state.batch_stats[f"BatchNorm_{i}"]["var"], stats["var"], rtol=1e-3)
    np.testing.assert_array_equal(
        jax.device_get(population.params["Dense_0"]["kernel"]), state.params["Dense_0"]["kernel"]
    )


def test_inference_is_deterministic_and_independent_of_the_batch(bn_run):
    config, dataset, trainer, state = bn_run
    population = [
        prediction.with_population_statistics(trainer, state, dataset, POPULATION_BATCHES)
        for _ in range(2)
    ]
    assert_trees_equal(population[0].batch_stats, population[1].batch_stats)
    first, second = (prediction.predict(trainer, population[0], _centre(dataset)) for _ in range(2))
    np.testing.assert_array_equal(first[0], second[0])
    # Other images around each one in its batch: the same predictions.
    rebatched = data.create_dataset(small_mnist_config(eval_batch_size=1000))
    log_probs, labels = prediction.predict(trainer, population[0], _centre(rebatched))
    np.testing.assert_allclose(log_probs, first[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(labels, first[1])
    assert log_probs.shape == (10_000, 10)


def test_ema_center_crop_reproduces_the_training_evaluation(runs, predictions):
    _, results = runs
    bn = predictions["bn"]
    metrics = evaluate.accuracy_metrics(bn.log_probs, bn.labels)
    assert bn.step == 200
    assert metrics["accuracy"] == pytest.approx(results["bn"]["eval/accuracy"], abs=1e-9)
    assert metrics["loss"] == pytest.approx(results["bn"]["eval/loss"], rel=1e-4)
    assert metrics["accuracy"] <= metrics["top5_accuracy"] <= 1.0 and metrics["images"] == 10_000


def test_accuracy_metrics_against_a_hand_count():
    log_probs = np.log(
        np.array([[0.5, 0.2, 0.1, 0.1, 0.05, 0.05], [0.05, 0.1, 0.1, 0.15, 0.2, 0.4]])
    )
    metrics = evaluate.accuracy_metrics(log_probs, np.array([0, 0]))
    # Image 0: right at top-1. Image 1: label 0 has the lowest probability: not in the top 5.
    assert metrics["accuracy"] == 0.5 and metrics["top5_accuracy"] == 0.5
    assert metrics["loss"] == pytest.approx(-(np.log(0.5) + np.log(0.05)) / 2)


def test_144_crop_batches_average_probabilities(bn_run):
    """One batch: the log of the mean over crops of each crop's softmax, in numpy."""
    config, dataset, trainer, state = bn_run
    batch = next(multicrop.eval_batches(dataset, config.image_size, images_per_batch=8))
    log_probabilities = jax.jit(prediction._log_probabilities, static_argnames="input_range")
    out = jax.device_get(log_probabilities(state, trainer.to_device(batch), "zero_one"))
    crops = batch["image"].reshape(-1, 28, 28, 1)
    logits = np.asarray(
        state.apply_fn({"params": state.params, "batch_stats": state.batch_stats}, crops, False),
        np.float64,
    )
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = (probs / probs.sum(axis=1, keepdims=True)).reshape(8, batch["image"].shape[1], 10)
    np.testing.assert_allclose(out["log_probs"], np.log(probs.mean(axis=1)), rtol=1e-4, atol=1e-5)


def test_ensemble_is_the_mean_of_the_members_probabilities(predictions):
    members = [predictions["bn"], predictions["no_bn"]]
    averaged = ensemble.average_probabilities(members)
    expected = np.mean([np.exp(m.log_probs.astype(np.float64)) for m in members], axis=0)
    np.testing.assert_allclose(np.exp(averaged), expected, rtol=1e-9, atol=1e-12)
    metrics = evaluate.accuracy_metrics(averaged, members[0].labels)
    assert metrics["accuracy"] == np.mean(np.argmax(expected, axis=1) == members[0].labels)
    other = prediction.Predictions(members[1].log_probs, np.roll(members[1].labels, 1), 200)
    with pytest.raises(ValueError, match="different images"):
        ensemble.average_probabilities([members[0], other])


def test_cli_writes_json_and_tensorboard_scalars(runs):
    root, _ = runs
    workdir = root / "bn"
    result = subprocess.run(
        [sys.executable, "-m", "bn_repro.evaluate", f"--workdir={workdir}"]
        + ["--bn_stats=population", f"--population_batches={POPULATION_BATCHES}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "step 200 population3_center: top-1 0." in result.stdout
    saved = json.loads((workdir / "eval" / "population3_center_step200.json").read_text())
    assert saved["bn_stats"] == "population" and saved["population_batches"] == 3
    scalars = event_logs.read_scalars(workdir / "eval")
    steps, accuracy = scalars["population3_center/accuracy"]
    assert steps.tolist() == [200] and accuracy[0] == pytest.approx(saved["accuracy"])


def test_a_config_recorded_before_later_keys_evaluates_and_resumes(runs, predictions, tmp_path):
    # A workdir recorded before dtype and bn.use_scale existed: those runs computed in
    # float32, with γ.
    old = tmp_path / "old"
    shutil.copytree(runs[0] / "bn", old)
    recorded = json.loads((old / checkpointing.CONFIG_FILE).read_text())
    del recorded["dtype"], recorded["bn"]["use_scale"]
    (old / checkpointing.CONFIG_FILE).write_text(json.dumps(recorded))
    config = prediction.load_config(old)
    assert config.dtype == "float32" and config.bn.use_scale
    again = prediction.predict_run(old)
    np.testing.assert_array_equal(again.log_probs, predictions["bn"].log_probs)
    checkpointing.check_and_record_config(small_mnist_config(), old)  # no refusal


def test_errors_name_the_problem(runs, bn_run, tmp_path):
    root, _ = runs
    trainer = bn_run[2]
    with pytest.raises(ValueError, match=r"No checkpoint at step 7 .*available: \[100, 200\]"):
        prediction.restore_checkpoint(trainer, root / "bn", step=7)
    with pytest.raises(FileNotFoundError, match="pass the run's config with --config"):
        prediction.load_config(tmp_path)
    with pytest.raises(FileNotFoundError, match="the --workdir of a training run"):
        prediction.restore_checkpoint(trainer, tmp_path)
    assert not (tmp_path / "checkpoints").exists()  # opened read-only: nothing created
    with pytest.raises(ValueError, match="does not fit the model"):
        prediction.restore_checkpoint(trainer, root / "no_bn")


@pytest.mark.slow
def test_ensemble_cli_with_144_crops(runs):
    root, _ = runs
    result = subprocess.run(
        [sys.executable, "-m", "bn_repro.ensemble", "--workdirs", str(root / "bn")]
        + [str(root / "no_bn"), "--crops=144"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| ensemble of 2 |  |" in result.stdout
