"""GoogLeNet's 144 crops: the geometry, the pixels cut out, and the evaluation batches."""

import numpy as np
import pytest
import tensorflow as tf

from bn_repro import data
from bn_repro.data import multicrop
from bn_repro.data.multicrop import LEFT, MIRROR, SHORTER_SIDE, SIZE, TOP
from tests.helpers import small_mnist_config
from tests.mini_imagenet import make_dataset


def test_googlenet_scales_and_their_scaled_down_equivalents():
    assert multicrop.shorter_sides(224) == (256, 288, 320, 352)
    assert multicrop.shorter_sides(28) == (32, 36, 40, 44)


@pytest.mark.parametrize("height,width", [(375, 500), (500, 375), (300, 300)])
def test_144_crops_per_image(height, width):
    windows = multicrop.crop_windows(height, width)
    assert windows.shape == (144, 5) == (multicrop.NUM_CROPS, 5)
    for side in (256, 288, 320, 352):
        rows = windows[windows[:, SHORTER_SIDE] == side]
        assert len(rows) == 36  # 3 squares × 6 windows × 2 mirrors
        # Every window lies inside the resized image.
        h, w = multicrop.resized_shape(height, width, side)
        assert np.all(rows[:, TOP] >= 0) and np.all(rows[:, TOP] + rows[:, SIZE] <= h)
        assert np.all(rows[:, LEFT] >= 0) and np.all(rows[:, LEFT] + rows[:, SIZE] <= w)
        # 5 crops of 224 and the whole square per square, each once plain, once mirrored.
        assert sorted(np.unique(rows[:, SIZE], return_counts=True)[1]) == [6, 30]
        assert np.array_equal(rows[0::2, :MIRROR], rows[1::2, :MIRROR])
        assert np.all(rows[0::2, MIRROR] == 0) and np.all(rows[1::2, MIRROR] == 1)
    if height != width:  # a non-square image has 144 different crops
        assert len(np.unique(windows, axis=0)) == 144


def test_square_images_have_48_distinct_crops():
    # GoogLeNet's three squares coincide on a square image: each of 48 windows 3 times.
    every = multicrop.crop_windows(28, 28, 28, (32, 36, 40, 44))
    distinct, counts = np.unique(every, axis=0, return_counts=True)
    assert len(every) == 144 and len(distinct) == 48 and set(counts) == {3}
    centre_only = multicrop.crop_windows(28, 28, 28, (32, 36, 40, 44), squares=1)
    assert sorted(map(tuple, centre_only)) == sorted(map(tuple, distinct))
    # And the pixels: 48 different crops of a random image, none repeated.
    image = np.random.default_rng(1).integers(0, 256, (1, 28, 28, 1)).astype(np.uint8)
    crops = multicrop.multicrop(tf.constant(image), 28, (32, 36, 40, 44), squares=1).numpy()[0]
    assert crops.shape == (48, 28, 28, 1)
    assert len(np.unique(crops.reshape(48, -1), axis=0)) == 48


def test_corner_coordinates_of_a_landscape_image():
    # 375×500 at shorter side 256 is 256×341: squares at x = 0, 42, 85.
    assert multicrop.resized_shape(375, 500, 256) == (256, 341)
    windows = multicrop.crop_windows(375, 500)
    plain = windows[(windows[:, SHORTER_SIDE] == 256) & (windows[:, MIRROR] == 0)]
    expected = []
    for x in (0, 42, 85):
        expected += [
            (0, x, 224),  # top-left
            (0, x + 32, 224),  # top-right
            (32, x, 224),  # bottom-left
            (32, x + 32, 224),  # bottom-right
            (16, x + 16, 224),  # centre
            (0, x, 256),  # the whole square
        ]
    assert plain[:, [TOP, LEFT, SIZE]].tolist() == [list(e) for e in expected]


def test_a_portrait_image_takes_top_centre_bottom_squares():
    windows = multicrop.crop_windows(500, 375)
    assert multicrop.resized_shape(500, 375, 352) == (469, 352)
    squares = windows[(windows[:, SHORTER_SIDE] == 352) & (windows[:, SIZE] == 352)]
    assert squares[:, [TOP, LEFT]].tolist() == [[0, 0]] * 2 + [[58, 0]] * 2 + [[117, 0]] * 2


def test_crops_cut_the_pixels_the_geometry_describes():
    """Each crop equals the window of the resized image, resized and mirrored in numpy."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (30, 40, 2)).astype(np.uint8)
    crop, sides = 16, (20, 24)
    crops = multicrop.multicrop(tf.constant(image[None]), crop, sides).numpy()[0]
    windows = multicrop.crop_windows(30, 40, crop, sides)
    assert crops.shape == (len(windows), crop, crop, 2)
    for got, (side, top, left, size, mirror) in zip(crops, windows, strict=True):
        resized = tf.image.resize(image, multicrop.resized_shape(30, 40, side)).numpy()
        window = resized[top : top + size, left : left + size]
        if size != crop:
            window = tf.image.resize(window, (crop, crop)).numpy()
        # The same bilinear resizes of 0-255 pixels (equal bit for bit here); atol 1e-4 is
        # 3·eps32·255, a few ulps for another kernel build, far below one grey level.
        np.testing.assert_allclose(got, window[:, ::-1] if mirror else window, atol=1e-4)


def test_small_dataset_eval_batches_keep_labels_and_mask():
    config = small_mnist_config(eval_batch_size=2000)
    dataset = data.create_dataset(config)
    plain = next(dataset.eval_batches())
    batches = multicrop.eval_batches(dataset, 28, images_per_batch=8)
    first, second = next(batches), next(batches)
    # Square images: the 48 distinct crops (test_square_images_have_48_distinct_crops).
    assert first["image"].shape == (8, 48, 28, 28, 1) and first["image"].dtype == np.float32
    np.testing.assert_array_equal(second["label"], plain["label"][8:16])
    np.testing.assert_array_equal(first["mask"], plain["mask"][:8])
    # The centre 28-pixel crop of the 32-pixel scale is the image upsampled by 32/28.
    centre = multicrop.crop_windows(28, 28, 28, (32, 36, 40, 44))[8]
    assert centre.tolist() == [32, 2, 2, 28, 0]
    upsampled = tf.image.resize(plain["image"][:8], (32, 32)).numpy()[:, 2:30, 2:30] / 255
    np.testing.assert_allclose(first["image"][:, 8], upsampled, atol=1e-6)
    with pytest.raises(ValueError, match="must divide"):
        next(multicrop.eval_batches(dataset, 28, images_per_batch=7))


@pytest.mark.slow  # builds the miniature ImageNet (tests/conftest.py's mini)
def test_imagenet_eval_batches_line_up_with_the_dataset(mini):
    """A miniature ImageNet (tests/mini_imagenet.py): same images, labels and padding."""
    dataset = make_dataset(mini, image_size=32, eval_batch_size=4)
    plain = list(dataset.eval_batches())
    cropped = list(multicrop.eval_batches(dataset, 32, images_per_batch=2))
    assert len(cropped) == 2 * len(plain)
    for key in ("label", "mask"):
        np.testing.assert_array_equal(
            np.concatenate([b[key] for b in cropped]), np.concatenate([b[key] for b in plain])
        )
    images = np.concatenate([b["image"] for b in cropped])
    assert images.shape == (len(images), 144, 32, 32, 3)
    assert images.dtype == np.uint8
    np.testing.assert_array_equal(images[:, 1::2], images[:, 0::2, :, ::-1])  # mirrors
    assert np.all(images[~np.concatenate([b["mask"] for b in cropped])] == 0)  # padding


@pytest.mark.slow  # builds the miniature ImageNet (tests/conftest.py's mini)
def test_imagenet_crops_take_the_datasets_labels(mini):
    def first_batch(**overrides):
        dataset = make_dataset(mini, image_size=32, eval_batch_size=4, **overrides)
        return next(multicrop.eval_batches(dataset, 32, images_per_batch=2))

    default, shifted = first_batch(), first_batch(label_offset=1)
    np.testing.assert_array_equal(shifted["image"], default["image"])
    np.testing.assert_array_equal(shifted["label"], default["label"] + 1)
