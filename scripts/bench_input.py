"""Throughput of the ImageNet training preprocessing, per CPU core, against bare decoding.

  python scripts/bench_input.py [--num_images 256] [--rounds 3] [--image_size 224]

Generates JPEGs the size of typical ImageNet photos (500×375 and 375×500, quality
90, 1/f noise so that they compress like photographs: about 120 KB each, near
ImageNet's mean), holds their bytes in memory, and measures the CPU time of one
tf.data pass per case on one thread (one worker, one intra-op thread) inside
TensorFlow (`Dataset.reduce`, no per-image Python), best of ``--rounds``:

* bare decode: ``tf.io.decode_jpeg`` of the whole image, nothing else;
* training preprocessing (`bn_repro.data.inception_preprocessing.train_preprocess`)
  at distortion strength 1 (Inception, BN-Baseline), 0.5 (BN-x*) and 0: crop
  sampling, decoding of the crop window only, resize, flip, colour distortions,
  scaling to [-1, 1];
* evaluation preprocessing (central crop).

CPU time rather than wall time, so that other load on the machine matters less.
Target: training preprocessing at ≥ 80% of bare-decode throughput. Disk reads and
record parsing are left out: they are the same for both.
"""

import argparse
import io
import math
import sys
import time
from collections.abc import Callable

from bn_repro import console

console.import_tensorflow_quietly(sys.argv)  # without its CUDA probing lines

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from bn_repro.data import inception_preprocessing as preprocessing  # noqa: E402

SIZES = ((375, 500), (500, 375))  # (height, width): landscape and portrait


def _pink_noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Gaussian noise with a 1/f amplitude spectrum, the spectrum of natural images."""
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :]
    frequency = np.hypot(fy, fx)
    frequency[0, 0] = 1.0
    shape = frequency.shape
    spectrum = (rng.normal(size=shape) + 1j * rng.normal(size=shape)) / frequency
    noise = np.fft.irfft2(spectrum, s=(height, width))
    return (noise - noise.mean()) / noise.std()


def make_jpegs(count: int, seed: int = 0) -> list[bytes]:
    """Photograph-like JPEGs: 1/f luma and chroma at quality 90, about 110 KB each."""
    rng = np.random.default_rng(seed)
    jpegs = []
    for i in range(count):
        height, width = SIZES[i % len(SIZES)]
        luma, red_green, blue_yellow = (_pink_noise(rng, height, width) for _ in range(3))
        rgb = np.stack(
            [
                luma + 0.4 * red_green,
                luma - 0.3 * red_green + 0.3 * blue_yellow,
                luma - 0.4 * blue_yellow,
            ],
            axis=-1,
        )
        buffer = io.BytesIO()
        Image.fromarray(np.clip(128 + 45 * rgb, 0, 255).astype(np.uint8)).save(
            buffer, "JPEG", quality=90
        )
        jpegs.append(buffer.getvalue())
    return jpegs


def _first_value(image: tf.Tensor) -> tf.Tensor:
    # Depends on the pixels (so nothing is pruned) without adding a pass over them.
    return tf.cast(tf.reshape(image, [-1])[0], tf.float32)


def _seconds_per_pass(
    jpegs: tf.data.Dataset, fn: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
) -> float:
    """CPU seconds for one pass over ``jpegs`` through ``fn``, all inside TensorFlow."""
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    options.autotune.enabled = False
    dataset = (
        jpegs.enumerate()
        .map(lambda i, jpeg: _first_value(fn(jpeg, tf.stack([i, 0]))))
        .with_options(options)
    )
    # reduce() runs the pipeline in TensorFlow: no per-image Python overhead, as when
    # training (images leave tf.data in batches). CPU time: robust to other load.
    start = time.process_time()
    dataset.reduce(tf.constant(0.0), lambda total, value: total + value)
    return time.process_time() - start


def measure(
    jpegs: list[bytes], cases: dict[str, Callable[[tf.Tensor, tf.Tensor], tf.Tensor]], rounds: int
) -> dict[str, float]:
    """Images per CPU-second of each case: best of ``rounds``, the cases interleaved."""
    dataset = tf.data.Dataset.from_tensor_slices(jpegs)
    best = {name: math.inf for name in cases}
    for round_ in range(rounds + 1):
        for name, fn in cases.items():
            seconds = _seconds_per_pass(dataset, fn)
            if round_:  # round 0 warms up (tracing, allocation)
                best[name] = min(best[name], seconds)
    return {name: len(jpegs) / seconds for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num_images", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3, help="timed passes per case; best kept")
    parser.add_argument("--image_size", type=int, default=224)
    args = parser.parse_args()

    jpegs = make_jpegs(args.num_images)
    kilobytes = np.mean([len(jpeg) for jpeg in jpegs]) / 1e3
    print(
        f"{len(jpegs)} JPEGs of 500×375 / 375×500, mean {kilobytes:.0f} KB; output "
        f"{args.image_size}×{args.image_size}; one thread, CPU time (images/s per core)"
    )
    size = args.image_size
    cases = {
        "bare decode (whole image)": lambda jpeg, _: tf.io.decode_jpeg(jpeg, channels=3),
        "training, distortion strength 1": lambda jpeg, seed: preprocessing.train_preprocess(
            jpeg, seed, size, 1.0
        ),
        "training, distortion strength 0.5": lambda jpeg, seed: preprocessing.train_preprocess(
            jpeg, seed, size, 0.5
        ),
        "training, no distortions": lambda jpeg, seed: preprocessing.train_preprocess(
            jpeg, seed, size, 0.0
        ),
        "evaluation (central crop)": lambda jpeg, _: preprocessing.eval_preprocess(jpeg, size),
    }
    rates = measure(jpegs, cases, args.rounds)
    bare = rates["bare decode (whole image)"]
    for name, rate in rates.items():
        print(f"  {name:36s} {rate:7.1f} images/s  ({100 * rate / bare:5.1f}% of bare decode)")


if __name__ == "__main__":
    main()
