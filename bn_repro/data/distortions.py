"""Training distortions for small in-memory images, computed on the device.

The paper's ImageNet rows train on GoogLeNet's distortions (a random crop of varying
area and aspect ratio, resized back, a random mirror, photometric jitter), and
Section 4.2.1 reduces the photometric part for BN-x*. For 28×28 grey images the same
three steps, per example:

1. crop: area fraction a ~ U(``min_crop_area``, 1) of the image, aspect ratio r with
   log r ~ U(log 3/4, log 4/3) (GoogLeNet's range), at a uniform position, resized
   back to the full size bilinearly;
2. mirror with probability 1/2;
3. photometric: brightness shift b ~ U(−δ, δ) and contrast factor c ~ U(1 − κ, 1 + κ)
   about the image mean, δ = 32/255 and κ = 0.5 (TF-slim's distort_color ranges)
   times ``strength``; then clipped to [0, 1].

Every draw is a function of (seed, step, index of the example in the global batch),
so a resumed run sees the same images an uninterrupted one would, on any number of
devices or processes.
"""

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections

from bn_repro.config_checks import check_choice

# TF-slim's distort_color ranges at strength 1 (the ImageNet pipeline uses the same).
BRIGHTNESS_DELTA = 32 / 255
CONTRAST_RANGE = 0.5
CROP_ASPECT_RANGE = (3 / 4, 4 / 3)
KINDS = ("none", "crop_flip_photometric")
# Keeps these draws apart from the other random streams derived from the seed.
_STREAM = 0x5D15


def crop_window(key: jax.Array, height: int, width: int, min_area: float) -> jax.Array:
    """A random crop (top, left, crop height, crop width), in pixels."""
    area_key, aspect_key, y_key, x_key = jax.random.split(key, 4)
    area = jax.random.uniform(area_key, (), minval=min_area, maxval=1.0)
    log_aspect = jax.random.uniform(
        aspect_key, (), minval=math.log(CROP_ASPECT_RANGE[0]), maxval=math.log(CROP_ASPECT_RANGE[1])
    )
    aspect = jnp.exp(log_aspect)  # width / height of the crop
    crop_h = jnp.minimum(jnp.sqrt(area / aspect) * height, height)
    crop_w = jnp.minimum(jnp.sqrt(area * aspect) * width, width)
    top = jax.random.uniform(y_key, ()) * (height - crop_h)
    left = jax.random.uniform(x_key, ()) * (width - crop_w)
    return jnp.stack([top, left, crop_h, crop_w])


def resize_crop(image: jax.Array, window: jax.Array) -> jax.Array:
    """The crop ``window`` of ``image`` (H, W, C), resized bilinearly to (H, W)."""
    top, left, crop_h, crop_w = window
    scale = jnp.stack([image.shape[0] / crop_h, image.shape[1] / crop_w])
    return jax.image.scale_and_translate(
        image,
        image.shape,
        spatial_dims=(0, 1),
        scale=scale,
        translation=-jnp.stack([top, left]) * scale,
        method="linear",
        antialias=False,
    )


def _photometric(image: jax.Array, key: jax.Array, strength: float) -> jax.Array:
    brightness_key, contrast_key = jax.random.split(key)
    brightness = BRIGHTNESS_DELTA * strength * jax.random.uniform(brightness_key, (), minval=-1)
    contrast = 1 + CONTRAST_RANGE * strength * jax.random.uniform(contrast_key, (), minval=-1)
    mean = jnp.mean(image)
    return (image - mean) * contrast + mean + brightness


def distort_one(image: jax.Array, key: jax.Array, strength: float, min_area: float) -> jax.Array:
    """One float image (H, W, C) in [0, 1] → its distorted copy, in [0, 1]."""
    crop_key, flip_key, photo_key = jax.random.split(key, 3)
    image = resize_crop(image, crop_window(crop_key, *image.shape[:2], min_area))
    image = jnp.where(jax.random.bernoulli(flip_key), image[:, ::-1], image)
    if strength > 0:
        image = _photometric(image, photo_key, strength)
    return jnp.clip(image, 0.0, 1.0)


def distort_batch(
    images: jax.Array, step: jax.Array, *, seed: int, strength: float, min_area: float
) -> jax.Array:
    """A global batch (B, H, W, C) of floats in [0, 1] at training ``step``, distorted.

    Example i's draws come from key(seed) folded with the stream, the step and i.
    """
    step_key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), _STREAM), step)
    keys = jax.vmap(lambda i: jax.random.fold_in(step_key, i))(jnp.arange(images.shape[0]))
    return jax.vmap(lambda x, k: distort_one(x, k, strength, min_area))(images, keys)


def check_config(config: ml_collections.ConfigDict) -> None:
    """The distortion keys' values, before any work (bn_repro/config_checks.py)."""
    check_choice("distortions", config.distortions, KINDS)
    if config.distortions != "none" and not (
        0 < config.min_crop_area <= 1 and 0 <= config.distortion_strength <= 1
    ):
        raise ValueError(
            f"min_crop_area={config.min_crop_area} must be in (0, 1] and "
            f"distortion_strength={config.distortion_strength} in [0, 1]; fix the config."
        )


def from_config(
    config: ml_collections.ConfigDict,
) -> Callable[[jax.Array, jax.Array], jax.Array] | None:
    """``config.distortions`` as a function (images, step) → images; None for "none"."""
    check_config(config)
    if config.distortions == "none":
        return None
    return functools.partial(
        distort_batch,
        seed=config.seed,
        strength=config.distortion_strength,
        min_area=config.min_crop_area,
    )
