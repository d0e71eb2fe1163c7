"""GoogLeNet's 144-crop evaluation (Szegedy et al. 2014, used for the paper's Table 3).

"We resize the image to 4 scales where the shorter dimension is 256, 288, 320 and
352, take the left, center and right square of these resized images (for portrait
images, the top, center and bottom squares). For each square, we then take the 4
corners and the center 224×224 crop as well as the square resized to 224×224, and
their mirrored versions": 4 × 3 × 6 × 2 = 144 crops per image, whose class
probabilities are averaged.

On a square image the three squares are one and the same, so only 48 of the 144 crops
are distinct; the in-memory (square) datasets compute those 48 (``squares=1``), whose
mean is the 144 crops' mean. The geometry is `crop_windows`, plain integers in numpy.
For inputs other than 224 (the CPU-scale experiments) every length scales with
``image_size``: a 28-pixel Fashion-MNIST model is evaluated at shorter sides
32/36/40/44 with 28-pixel crops.

`multicrop` cuts the windows out of a batch of same-sized images with TensorFlow
(bilinear resizing, as in bn_repro/data/inception_preprocessing.py). `eval_batches`
yields a dataset's evaluation split with a crops axis: (images, 144, size, size,
channels), with the same labels, padding and mask as the dataset's own
``eval_batches()``.
"""

import functools
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from bn_repro.data import imagenet
from bn_repro.data.in_memory import InMemoryDataset

Batch = dict[str, np.ndarray]

GOOGLENET_CROP = 224
GOOGLENET_SHORTER_SIDES = (256, 288, 320, 352)
SQUARES = 3  # left/centre/right, or top/centre/bottom
WINDOWS_PER_SQUARE = 6  # 4 corners, centre, the whole square
MIRRORS = 2
CROPS_PER_SCALE = SQUARES * WINDOWS_PER_SQUARE * MIRRORS
NUM_CROPS = len(GOOGLENET_SHORTER_SIDES) * CROPS_PER_SCALE  # 144

# Columns of a `crop_windows` row. The window is a square of SIZE pixels at (TOP, LEFT)
# in the image resized to shorter side SHORTER_SIDE; it is resized to the crop size
# (a no-op unless it is the whole square) and flipped left-right if MIRROR is 1.
SHORTER_SIDE, TOP, LEFT, SIZE, MIRROR = range(5)


def shorter_sides(image_size: int) -> tuple[int, ...]:
    """GoogLeNet's four scales for crops of ``image_size`` (256..352 at 224)."""
    return tuple(round(side * image_size / GOOGLENET_CROP) for side in GOOGLENET_SHORTER_SIDES)


def resized_shape(height: int, width: int, shorter_side: int) -> tuple[int, int]:
    """(height, width) after resizing so that the shorter side is ``shorter_side``."""
    if height <= width:
        return shorter_side, max(shorter_side, round(width * shorter_side / height))
    return max(shorter_side, round(height * shorter_side / width)), shorter_side


def crop_windows(
    height: int,
    width: int,
    crop_size: int = GOOGLENET_CROP,
    sides: Sequence[int] = GOOGLENET_SHORTER_SIDES,
    squares: int = SQUARES,
) -> np.ndarray:
    """The crops of one ``height`` × ``width`` image: int32 rows of the columns above.

    Rows are ordered by scale (``squares`` × 12 per scale), then square (first, centre,
    last along the longer side; with ``squares=1`` the centre one only), then window
    (top-left, top-right, bottom-left, bottom-right, centre, whole square), then
    mirror (0, 1).
    """
    if squares not in (1, SQUARES):
        raise ValueError(f"squares={squares}: 3 (GoogLeNet's) or 1 (the centre square only).")
    if min(sides) < crop_size:
        raise ValueError(f"The shorter sides {tuple(sides)} must all be at least {crop_size}.")
    rows = []
    for side in sides:
        slack_y, slack_x = (n - side for n in resized_shape(height, width, side))
        centre = (slack_y // 2, slack_x // 2)
        corners = ((0, 0), centre, (slack_y, slack_x)) if squares == SQUARES else (centre,)
        margin = side - crop_size
        windows = (
            (0, 0, crop_size),
            (0, margin, crop_size),
            (margin, 0, crop_size),
            (margin, margin, crop_size),
            (margin // 2, margin // 2, crop_size),
            (0, 0, side),
        )
        for square_top, square_left in corners:
            for top, left, size in windows:
                for mirror in range(MIRRORS):
                    rows.append((side, square_top + top, square_left + left, size, mirror))
    return np.array(rows, np.int32)


def _geometry(
    height: np.ndarray, width: np.ndarray, crop_size: int, sides: tuple[int, ...], squares: int
) -> tuple[np.ndarray, np.ndarray]:
    shapes = np.array([resized_shape(int(height), int(width), s) for s in sides], np.int32)
    return shapes, crop_windows(int(height), int(width), crop_size, sides, squares)


def multicrop(
    images: tf.Tensor, crop_size: int, sides: Sequence[int], squares: int = SQUARES
) -> tf.Tensor:
    """(N, H, W, C) images of one size → (N, 144, crop_size, crop_size, C) float32 crops
    (48 with ``squares=1``).

    Pixel values keep their scale (uint8 input gives floats in [0, 255]). Works on
    images whose size is only known at run time (a tf.data map over JPEGs).
    """
    sides = tuple(sides)
    shape = tf.shape(images)
    shapes, windows = tf.numpy_function(
        functools.partial(_geometry, crop_size=crop_size, sides=sides, squares=squares),
        [shape[1], shape[2]],
        (tf.int32, tf.int32),
        stateful=False,
    )
    per_scale = squares * WINDOWS_PER_SQUARE * MIRRORS
    windows = tf.reshape(windows, [len(sides), per_scale, 5])
    crops = []
    for k in range(len(sides)):
        scaled = tf.image.resize(images, shapes[k], method="bilinear")
        for j in range(per_scale):
            top, left, size = windows[k, j, TOP], windows[k, j, LEFT], windows[k, j, SIZE]
            window = scaled[:, top : top + size, left : left + size]
            # Bilinear resizing to the same size copies the pixels exactly.
            crop = tf.image.resize(window, [crop_size, crop_size], method="bilinear")
            crops.append(tf.where(windows[k, j, MIRROR] > 0, tf.reverse(crop, axis=[2]), crop))
    return tf.stack(crops, axis=1)


def _in_memory_batches(
    dataset: InMemoryDataset, image_size: int, images_per_batch: int
) -> Iterator[Batch]:
    """The dataset's own eval batches, split into ``images_per_batch`` and cropped: the
    48 distinct crops of square images, the 144 of others."""
    height, width = dataset.image_shape[:2]
    squares = 1 if height == width else SQUARES
    crop = tf.function(
        functools.partial(
            multicrop, crop_size=image_size, sides=shorter_sides(image_size), squares=squares
        ),
        autograph=False,
    )
    for batch in dataset.eval_batches():
        if len(batch["label"]) % images_per_batch:
            raise ValueError(
                f"images_per_batch={images_per_batch} must divide this process's eval batch "
                f"of {len(batch['label'])} images."
            )
        for start in range(0, len(batch["label"]), images_per_batch):
            part = {key: value[start : start + images_per_batch] for key, value in batch.items()}
            # uint8 pixels become [0, 1] floats, what the trainer feeds the model.
            part["image"] = crop(part["image"]).numpy() / np.float32(255.0)
            yield part


def _imagenet_batches(dataset: imagenet.ImageNet, images_per_batch: int) -> Iterator[Batch]:
    """ImageNet validation images decoded whole and cropped 144 times as uint8, through
    the dataset's own evaluation pipeline (`ImageNet.map_eval`): the labels, padding and
    mask line up with ``ImageNet.eval_batches()``.
    """
    size = dataset.image_size

    def crops(jpeg: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_jpeg(jpeg, channels=3)
        crops = multicrop(image[None], size, shorter_sides(size))[0]
        return tf.cast(tf.round(crops), tf.uint8)

    return dataset.map_eval(crops, (NUM_CROPS, size, size, 3), images_per_batch)


def eval_batches(
    dataset: InMemoryDataset | imagenet.ImageNet, image_size: int, images_per_batch: int
) -> Iterator[Batch]:
    """The evaluation split with its crops: 'image' is (n, crops, s, s, C), crops 144
    (48 distinct ones for square images)."""
    if isinstance(dataset, InMemoryDataset):
        return _in_memory_batches(dataset, image_size, images_per_batch)
    if isinstance(dataset, imagenet.ImageNet):
        return _imagenet_batches(dataset, images_per_batch)
    raise ValueError(f"144-crop evaluation does not know the dataset {type(dataset).__name__}.")
