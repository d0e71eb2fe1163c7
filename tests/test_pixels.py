"""uint8 pixels → the model's input range, on the device (bn_repro/data/pixels.py)."""

import jax
import numpy as np
import pytest

from bn_repro import train
from bn_repro.data import create_dataset, pixels
from configs import pretrained_caffe, small_table2
from tests.helpers import small_mnist_config


def _reference(images: np.ndarray, input_range: str) -> np.ndarray:
    """The three ranges written out in float64."""
    values = images.astype(np.float64)
    if input_range == "caffe_bgr":
        return values[..., ::-1] - np.array([104.0, 117.0, 128.0])  # BGR minus the means
    if input_range == "minus_one_one":
        return values / 127.5 - 1.0
    return values / 255.0


@pytest.mark.parametrize("input_range", pixels.INPUT_RANGES)
def test_uint8_pixels_map_to_each_range(input_range):
    images = np.random.default_rng(0).integers(0, 256, (2, 5, 5, 3), dtype=np.uint8)
    got = np.asarray(jax.jit(pixels.to_model_input, static_argnums=1)(images, input_range))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _reference(images, input_range), rtol=0, atol=3e-5)
    # The ends of the range, exactly.
    ends = np.asarray(pixels.to_model_input(np.array([[0, 255, 0]], np.uint8), input_range))
    np.testing.assert_allclose(ends, _reference(np.array([[0, 255, 0]]), input_range))


def test_small_datasets_are_read_in_zero_one():
    """Even the CPU-scale configs that keep ImageNet's input_range key."""
    config = small_table2.get_config("bn_x5")
    assert (config.dataset, config.input_range) == ("fashion_mnist", "minus_one_one")
    assert pixels.input_range_of(config) == "zero_one"
    assert pixels.input_range_of(pretrained_caffe.get_config()) == "caffe_bgr"


def test_float_images_are_model_input_already():
    images = np.linspace(-1, 1, 12, dtype=np.float32).reshape(1, 2, 2, 3)
    np.testing.assert_array_equal(pixels.to_model_input(images, "caffe_bgr"), images)


def test_the_evaluation_step_maps_the_configs_input_range(monkeypatch):
    """An MNIST model read as ImageNet's "minus_one_one" would be: the uint8 batch
    gives the logits of the numpy-mapped float batch (which the step passes unchanged)."""
    monkeypatch.setattr(pixels, "input_range_of", lambda config: "minus_one_one")
    config = small_mnist_config()
    dataset = create_dataset(config)
    trainer = train.Trainer(config, dataset)
    batch = next(dataset.eval_batches())
    mapped = {**batch, "image": _reference(batch["image"], "minus_one_one").astype(np.float32)}
    as_pixels, as_floats, as_zero_one = (
        jax.device_get(trainer.eval_step(trainer.state, trainer.to_device(b)))
        for b in (batch, mapped, {**batch, "image": batch["image"] / np.float32(255)})
    )
    np.testing.assert_allclose(as_pixels["loss_sum"], as_floats["loss_sum"], rtol=1e-5)
    # The same check tells the ranges apart (an untrained BN network barely does).
    assert as_pixels["loss_sum"] != pytest.approx(as_zero_one["loss_sum"], rel=1e-4)
