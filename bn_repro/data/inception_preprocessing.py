"""Inception preprocessing of ImageNet photos: the crops, flips and colour distortions.

Functions of an encoded JPEG (and, for training, a stateless random ``seed``) to a
uint8 image, the form every dataset sends to the device (bn_repro/data/pixels.py
maps it to the model's ``input_range`` there); no file I/O and no state.
`bn_repro.data.imagenet` maps them over its records.

Training examples (`train_preprocess`), as in GoogLeNet and TF-slim's Inception
preprocessing: a random crop covering 8-100% of the image area with aspect ratio
3/4-4/3 (10 attempts, then the central crop used for evaluation), of which only the
crop window is decoded; resized to ``image_size`` (bilinear), flipped left-right
with probability 1/2, then brightness, saturation, hue and contrast distortions with
TF-slim's ranges scaled by ``distortion_strength`` (1: TF-slim's ranges, 0: none),
applied together as one affine colour map (`_distort`); finally clipped to [0, 255]
and rounded to uint8.

Evaluation examples (`eval_preprocess`): TF-slim's central crop, 87.5% of the height
and of the width, resized to ``image_size``.

One of the keys for published weights (configs/pretrained_*.py), ``eval_crop``:
"central_fraction" (above) or "resize_shorter": the shorter side resized to
⌊image_size / 0.875⌋ (256 at 224), then the central image_size square
(pretrainedmodels' TransformImage, with which its accuracies were measured).
"""

import math

import numpy as np
import tensorflow as tf

from bn_repro.config_checks import check_choice

CROP_AREA_RANGE = (0.08, 1.0)  # GoogLeNet: "sizes distributed evenly between 8% and 100%"
CROP_ASPECT_RANGE = (3 / 4, 4 / 3)
CROP_ATTEMPTS = 10
EVAL_CROP_FRACTION = 0.875
EVAL_CROPS = ("central_fraction", "resize_shorter")
# TF-slim's distort_color ranges at strength 1: brightness ±32/255, saturation and
# contrast ×[0.5, 1.5], hue ±0.2.
BRIGHTNESS_DELTA = 32 / 255
SATURATION_RANGE = 0.5
HUE_DELTA = 0.2
CONTRAST_RANGE = 0.5
MAX_DISTORTION_STRENGTH = 2.0  # beyond it saturation/contrast factors would turn negative

# Saturation and hue act on the chroma plane (I, Q) of YIQ, leaving luma Y alone.
_YIQ_FROM_RGB = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_RGB_FROM_YIQ = np.linalg.inv(_YIQ_FROM_RGB)


def _rgb_map(yiq_map: np.ndarray) -> np.ndarray:
    return (_RGB_FROM_YIQ @ yiq_map @ _YIQ_FROM_RGB).astype(np.float32)


_KEEP_LUMA = _rgb_map(np.diag([1.0, 0.0, 0.0]))
_KEEP_CHROMA = _rgb_map(np.diag([0.0, 1.0, 1.0]))
_TURN_CHROMA = _rgb_map(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]))


def check_settings(distortion_strength: float, eval_crop: str) -> None:
    """Raises ValueError for a distortion strength or eval crop not above."""
    if not 0 <= distortion_strength <= MAX_DISTORTION_STRENGTH:
        raise ValueError(
            f"distortion_strength={distortion_strength} must be in "
            f"[0, {MAX_DISTORTION_STRENGTH}] (1: TF-slim's ranges, 0: no distortions); set "
            "--config.distortion_strength within it."
        )
    check_choice("eval_crop", eval_crop, EVAL_CROPS)


def _central_window(shape: tf.Tensor) -> tf.Tensor:
    """[y, x, height, width] of the central 87.5% of each side (TF-slim's central_crop)."""
    size = tf.maximum(1, tf.cast(tf.cast(shape[:2], tf.float32) * EVAL_CROP_FRACTION, tf.int32))
    offset = (shape[:2] - size) // 2
    return tf.concat([offset, size], axis=0)


def _color_matrix(saturation: tf.Tensor, hue_turn: tf.Tensor) -> tf.Tensor:
    """3×3 RGB map scaling the YIQ chroma plane by ``saturation``, turning it by ``hue_turn``."""
    angle = 2 * math.pi * hue_turn
    return (
        _KEEP_LUMA
        + saturation * tf.cos(angle) * _KEEP_CHROMA
        + saturation * tf.sin(angle) * _TURN_CHROMA
    )


def _distort(image: tf.Tensor, seed: tf.Tensor, strength: float) -> tf.Tensor:
    """Photometric distortions of a [0, 255] float image, clipped to [0, 255].

    Brightness, saturation, hue and contrast are drawn from TF-slim's ranges times
    ``strength`` and applied as one affine colour map,
        q = clip(C · (c · (p − p̄) + p̄) + 255 b),   p̄ the image's mean value,
    C the saturation/hue matrix, c the contrast factor, b the brightness shift. C
    keeps grey grey, so brightness and contrast commute with it. TF's own
    adjust_saturation/adjust_hue convert every pixel to HSV and back; this map is one
    small matrix product, an add and a clip (README.md, "Throughput", gives the cost
    measured by scripts/bench_input.py).
    """
    u = tf.random.stateless_uniform([4], seed, -strength, strength)
    brightness = BRIGHTNESS_DELTA * u[0]
    color = _color_matrix(1 + SATURATION_RANGE * u[1], HUE_DELTA * u[2])
    contrast = 1 + CONTRAST_RANGE * u[3]
    # Folded into one matrix product and one scalar shift.
    matrix = tf.transpose(color) * contrast
    shift = (1 - contrast) * tf.reduce_mean(image) + 255.0 * brightness
    pixels = tf.reshape(image, [-1, 3]) @ matrix + shift
    return tf.clip_by_value(tf.reshape(pixels, tf.shape(image)), 0.0, 255.0)


def _to_uint8(image: tf.Tensor) -> tf.Tensor:
    """A [0, 255] float image rounded to the uint8 pixels sent to the device."""
    return tf.cast(tf.round(image), tf.uint8)


def train_preprocess(
    jpeg: tf.Tensor, seed: tf.Tensor, image_size: int, distortion_strength: float
) -> tf.Tensor:
    """Encoded JPEG → (image_size, image_size, 3) uint8, random from ``seed``."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    shape = tf.image.extract_jpeg_shape(jpeg)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape,
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seeds[0],
        min_object_covered=0.0,  # the area range alone bounds the crop
        aspect_ratio_range=CROP_ASPECT_RANGE,
        area_range=CROP_AREA_RANGE,
        max_attempts=CROP_ATTEMPTS,
        use_image_if_no_bounding_boxes=True,
    )
    window = tf.concat([begin[:2], size[:2]], axis=0)
    # When every attempt fails the op returns the whole image; crop the centre instead.
    failed = tf.reduce_all(size[:2] == shape[:2])
    window = tf.where(failed, _central_window(shape), window)
    image = tf.image.decode_and_crop_jpeg(jpeg, window, channels=3)
    image = tf.image.resize(image, [image_size, image_size], method="bilinear")
    image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    if distortion_strength > 0:
        image = _distort(image, seeds[2], distortion_strength)
    return _to_uint8(image)


def eval_preprocess(
    jpeg: tf.Tensor, image_size: int, eval_crop: str = "central_fraction"
) -> tf.Tensor:
    """Encoded JPEG → its central crop as (image_size, image_size, 3) uint8."""
    if eval_crop == "resize_shorter":
        image = tf.io.decode_jpeg(jpeg, channels=3)
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        side = float(int(image_size / EVAL_CROP_FRACTION))
        # torchvision's Resize(side): the shorter side becomes side, the other ⌊·⌋.
        size = tf.cast(tf.floor(shape * side / tf.reduce_min(shape)), tf.int32)
        size = tf.where(shape == tf.reduce_min(shape), int(side), size)
        image = tf.image.resize(image, size, method="bilinear")
        top, left = (tf.cast(tf.round((n - image_size) / 2), tf.int32) for n in tf.unstack(size))
        image = image[top : top + image_size, left : left + image_size]
    else:
        window = _central_window(tf.image.extract_jpeg_shape(jpeg))
        image = tf.image.decode_and_crop_jpeg(jpeg, window, channels=3)
        image = tf.image.resize(image, [image_size, image_size], method="bilinear")
    return _to_uint8(image)
