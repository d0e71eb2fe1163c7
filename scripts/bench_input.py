"""Throughput of the ImageNet training preprocessing, per CPU core, against bare decoding.

  python scripts/bench_input.py [--num_images 256] [--repeats 3] [--image_size 224]

Generates JPEGs the size of typical ImageNet photos (500×375 and 375×500, quality
90, smooth content so they compress like photographs, about 40-120 KB), holds their
bytes in memory, and times on one thread (one tf.data worker, one intra-op thread):

* bare decode: ``tf.io.decode_jpeg`` of the whole image, nothing else;
* training preprocessing (`bn_repro.data.imagenet.train_preprocess`) at distortion
  strength 1 (Inception, BN-Baseline) and 0.5 (BN-x*): crop sampling, decoding of
  the crop window only, resize, flip, colour distortions, scaling to [-1, 1];
* evaluation preprocessing (central crop).

Target: training preprocessing at ≥ 80% of bare-decode throughput. Disk reads and
record parsing are not included: they are the same for both.
"""

import argparse
import io
import os
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from bn_repro.data import imagenet  # noqa: E402

SIZES = ((375, 500), (500, 375))  # (height, width): landscape and portrait


def make_jpegs(count: int, seed: int = 0) -> list[bytes]:
    """Photograph-like JPEGs: upsampled coarse noise plus fine grain, quality 90."""
    rng = np.random.default_rng(seed)
    jpegs = []
    for i in range(count):
        height, width = SIZES[i % len(SIZES)]
        coarse = rng.random((height // 25, width // 25, 3)) * 255
        image = Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.BICUBIC)
        pixels = np.asarray(image, np.float32) + rng.normal(0, 6, (height, width, 3))
        buffer = io.BytesIO()
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
        jpegs.append(buffer.getvalue())
    return jpegs


def images_per_second(
    jpegs: list[bytes], fn: Callable[[tf.Tensor, tf.Tensor], tf.Tensor], repeats: int
) -> float:
    """Best of ``repeats`` passes over ``jpegs`` through ``fn`` on a single thread."""
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    options.autotune.enabled = False
    dataset = (
        tf.data.Dataset.from_tensor_slices(jpegs)
        .enumerate()
        .map(lambda i, jpeg: fn(jpeg, tf.stack([i, 0])), num_parallel_calls=1)
        .with_options(options)
    )
    for _ in dataset:  # warm-up: traces the function, allocates
        pass
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in dataset:
            pass
        best = max(best, len(jpegs) / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num_images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image_size", type=int, default=224)
    args = parser.parse_args()

    jpegs = make_jpegs(args.num_images)
    print(
        f"{len(jpegs)} JPEGs of 500×375 / 375×500, mean {np.mean([len(j) for j in jpegs]) / 1e3:.0f}"
        f" KB; output {args.image_size}×{args.image_size}; one thread (images/s per core)"
    )
    size = args.image_size
    cases = {
        "bare decode (whole image)": lambda jpeg, _: tf.io.decode_jpeg(jpeg, channels=3),
        "training, distortion strength 1": lambda jpeg, seed: imagenet.train_preprocess(
            jpeg, seed, size, 1.0
        ),
        "training, distortion strength 0.5": lambda jpeg, seed: imagenet.train_preprocess(
            jpeg, seed, size, 0.5
        ),
        "evaluation (central crop)": lambda jpeg, _: imagenet.eval_preprocess(jpeg, size),
    }
    bare = None
    for name, fn in cases.items():
        rate = images_per_second(jpegs, fn, args.repeats)
        bare = bare or rate
        print(f"  {name:36s} {rate:7.1f} images/s  ({100 * rate / bare:5.1f}% of bare decode)")


if __name__ == "__main__":
    main()
