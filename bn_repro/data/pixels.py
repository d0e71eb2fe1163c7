"""How a batch's pixels become the model's input: on the device, inside the step.

Every dataset sends its images as uint8 pixels, a quarter of float32's bytes across
the host-to-device link (602 KB → 150 KB per 224² image). The compiled step maps
them to the range the model expects, ``input_range``:

* "zero_one": [0, 1], always for the small datasets (MNIST, Fashion-MNIST); the
  CPU-scale configs built on ImageNet's keep its ``input_range`` key, unused;
* "minus_one_one": RGB in [-1, 1], TF-slim's and our ImageNet default;
* "caffe_bgr": BGR in [0, 255] minus the channel means [104, 117, 128], the Caffe
  model of pretrainedmodels (configs/pretrained_caffe.py).

Float images are taken to be model input already (the small datasets' multi-crop
views, which the host resizes in floating point).
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

HOST_DTYPE = np.uint8
INPUT_RANGES = ("zero_one", "minus_one_one", "caffe_bgr")
CAFFE_BGR_MEAN = (104.0, 117.0, 128.0)  # pretrainedmodels' bninception settings


def input_range_of(config: ml_collections.ConfigDict) -> str:
    """ImageNet's ``config.input_range``; [0, 1] for the small datasets."""
    return config.input_range if config.dataset == "imagenet2012" else "zero_one"


def to_model_input(images: jax.Array, input_range: str) -> jax.Array:
    """uint8 pixels (…, C) → float32 in ``input_range``; float images unchanged."""
    if images.dtype != jnp.uint8:
        return images
    pixels = images.astype(jnp.float32)
    if input_range == "caffe_bgr":
        return pixels[..., ::-1] - jnp.asarray(CAFFE_BGR_MEAN, jnp.float32)
    if input_range == "minus_one_one":
        return pixels * (2 / 255.0) - 1.0
    return pixels / 255.0
