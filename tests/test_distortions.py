"""The on-device training distortions of small images (bn_repro/data/distortions.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bn_repro.data import distortions

H = W = 28


def test_resized_crop_of_a_linear_ramp_samples_the_window_exactly():
    # Bilinear resampling reproduces a linear function exactly, so every output pixel
    # must equal the ramp at the point of the window it samples (pixel centres).
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    ramp = (0.01 * y + 0.02 * x + 0.1)[..., None]
    top, left, crop_h, crop_w = 3.5, 5.25, 14.0, 17.5
    out = np.asarray(
        distortions.resize_crop(jnp.asarray(ramp), jnp.array([top, left, crop_h, crop_w]))
    )
    ys = top + (np.arange(H) + 0.5) * crop_h / H - 0.5
    xs = left + (np.arange(W) + 0.5) * crop_w / W - 0.5
    expected = 0.01 * ys[:, None] + 0.02 * xs[None, :] + 0.1
    # Away from the window's border, where the kernel would reach outside the image.
    np.testing.assert_allclose(out[2:-2, 2:-2, 0], expected[2:-2, 2:-2], atol=1e-5)


def test_crop_windows_cover_the_configured_areas_and_aspects_inside_the_image():
    keys = jax.random.split(jax.random.key(0), 2000)
    windows = np.asarray(jax.vmap(lambda k: distortions.crop_window(k, H, W, 0.35))(keys))
    top, left, crop_h, crop_w = windows.T
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + crop_h <= H + 1e-4).all() and (left + crop_w <= W + 1e-4).all()
    area = crop_h * crop_w / (H * W)
    aspect = crop_w / crop_h
    assert area.min() >= 0.35 - 1e-5 and area.max() <= 1 + 1e-5
    assert aspect.min() >= 3 / 4 - 1e-4 and aspect.max() <= 4 / 3 + 1e-4
    # Drawn over the whole range, not stuck at one end.
    assert area.min() < 0.4 and np.quantile(area, 0.9) > 0.8


def test_photometric_jitter_is_an_affine_map_within_tf_slims_ranges_times_strength():
    image = jnp.asarray(np.random.default_rng(0).uniform(0.3, 0.7, (H, W, 1)), jnp.float32)
    for i in range(50):
        out = np.asarray(distortions._photometric(image, jax.random.key(i), 0.5))
        flat_in, flat_out = np.asarray(image).ravel(), out.ravel()
        slope, intercept = np.polyfit(flat_in, flat_out, 1)
        np.testing.assert_allclose(flat_out, slope * flat_in + intercept, atol=1e-5)
        assert abs(slope - 1) <= 0.5 * distortions.CONTRAST_RANGE + 1e-5
        shift = flat_out.mean() - flat_in.mean()  # contrast keeps the mean
        assert abs(shift) <= 0.5 * distortions.BRIGHTNESS_DELTA + 1e-5


def test_draws_depend_on_seed_step_and_example_index_only():
    images = jnp.asarray(np.random.default_rng(1).random((6, H, W, 1)), jnp.float32)
    distort = dict(seed=3, strength=1.0, min_area=0.35)
    full = np.asarray(distortions.distort_batch(images, jnp.int32(7), **distort))
    again = np.asarray(distortions.distort_batch(images, jnp.int32(7), **distort))
    first_half = np.asarray(distortions.distort_batch(images[:3], jnp.int32(7), **distort))
    np.testing.assert_array_equal(full, again)
    # Independent of the rest of the batch (to rounding: XLA vectorises by batch size).
    np.testing.assert_allclose(full[:3], first_half, atol=1e-6)
    other_step = np.asarray(distortions.distort_batch(images, jnp.int32(8), **distort))
    other_seed = np.asarray(
        distortions.distort_batch(images, jnp.int32(7), **{**distort, "seed": 4})
    )
    assert not np.allclose(full, other_step) and not np.allclose(full, other_seed)
    assert full.min() >= 0 and full.max() <= 1


def test_half_of_the_images_are_mirrored():
    # A left-right ramp: after a crop it still rises left to right unless mirrored.
    ramp = np.broadcast_to(np.linspace(0, 1, W, dtype=np.float32), (H, W))[..., None]
    images = jnp.asarray(np.broadcast_to(ramp, (400, H, W, 1)))
    out = np.asarray(
        distortions.distort_batch(images, jnp.int32(0), seed=0, strength=0.0, min_area=0.35)
    )
    mirrored = out[:, H // 2, -1, 0] < out[:, H // 2, 0, 0]
    assert 0.4 < mirrored.mean() < 0.6


@pytest.mark.parametrize(
    "key, value", [("distortions", "flips"), ("min_crop_area", 0.0), ("distortion_strength", 1.5)]
)
def test_bad_settings_name_the_key(key, value):
    from bn_repro.configs import small_table2

    config = small_table2.get_config("bn_x5")
    config[key] = value
    with pytest.raises(ValueError, match=key):
        distortions.from_config(config)
