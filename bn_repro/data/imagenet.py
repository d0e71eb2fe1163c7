"""ImageNet (ILSVRC2012) from TFDS ``imagenet2012`` with Inception preprocessing.

Prepare the data once with ``scripts/prepare_imagenet.py`` (see its docstring), then
point ``config.data_dir`` at the TFDS data directory (empty: TFDS's default).

Training examples (`train_preprocess`), as in GoogLeNet and TF-slim's Inception
preprocessing: a random crop covering 8-100% of the image area with aspect ratio
3/4-4/3 (10 attempts, then the central crop used for evaluation), of which only the
crop window is decoded; resized to ``image_size`` (bilinear), flipped left-right
with probability 1/2, then brightness, saturation, hue and contrast distortions with
TF-slim's ranges scaled by ``distortion_strength`` (1: TF-slim's ranges, 0: none),
applied together as one affine colour map (`_distort_and_scale`); finally clipped
and scaled to [-1, 1] as float32.

Evaluation examples (`eval_preprocess`): TF-slim's central crop, 87.5% of the height
and of the width, resized to ``image_size``. All of the validation split is
evaluated, the last batch padded and masked, so every image counts exactly once.

What published weights expect (configs/pretrained_*.py), three keys:

* ``input_range``: "minus_one_one" (RGB in [-1, 1], TF-slim's and our default) or
  "caffe_bgr" (BGR in [0, 255] minus the channel means [104, 117, 128]: the Caffe
  model of pretrainedmodels). Every path makes [-1, 1] RGB first, then
  `to_input_range` maps it, so training, evaluation and 144 crops agree.
* ``eval_crop``: "central_fraction" (above) or "resize_shorter": the shorter side
  resized to ⌊image_size / 0.875⌋ (256 at 224), then the central image_size square
  (pretrainedmodels' TransformImage, with which its accuracies were measured).
* ``label_offset``: 1 for TF-slim's 1001 classes, whose class 0 is "background":
  label l of the 1000 ImageNet classes becomes l + 1.

Data order. Process p of P reads only the files p, p+P, p+2P, ... of each split
(``jax.process_index()``, ``jax.process_count()``); every process needs at least one
file (``scripts/prepare_imagenet.py --num_shards``). Its training stream is an
endless sequence of epochs over its own files; epoch e interleaves the files, in an
order drawn from (seed, p, P, e), ``interleave_cycle`` at a time, passes the records
through a ``shuffle_buffer`` seeded the same way (0: no shuffling within files), and
draws each example's crop, flip and distortions from (seed, p, P, e, its position in
the epoch). Step s of a run is therefore a function of (seed, P, s) alone: a run
resumed at step s starts at epoch ⌊s·b / N_p⌋ of its stream (b = batch_size / P
examples per step, N_p its examples) and skips the s·b mod N_p records of that
epoch that it has already used *before* they are parsed or decoded.

Unreadable images. An image that fails to decode is dropped with a warning and
counted: each training batch carries ``skipped_images``, which the trainer logs as
``train/skipped_images``. The batch is filled from the next records, so the stream
after a dropped image is shifted by one; a run resumed after such a drop is exact up
to that shift within the current epoch (the dropped image is not in the checkpoint).

Cost of resuming: those skipped records are still read from disk and pass through
the shuffle buffer, on average half an epoch of the process's files, about
150 GB / (2P) for ImageNet: 75 s / P at 1 GB/s, ten times that from a 100 MB/s
network disk. It is paid once per restart. Changing the number of processes
changes the data order (not its statistics).
"""

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

import jax
import ml_collections
import numpy as np
import tensorflow as tf

from bn_repro.data import SKIPPED_IMAGES

Batch = dict[str, np.ndarray]

NAME = "imagenet2012"
NUM_CLASSES = 1000
CROP_AREA_RANGE = (0.08, 1.0)  # GoogLeNet: "sizes distributed evenly between 8% and 100%"
CROP_ASPECT_RANGE = (3 / 4, 4 / 3)
CROP_ATTEMPTS = 10
EVAL_CROP_FRACTION = 0.875
INPUT_RANGES = ("minus_one_one", "caffe_bgr")
EVAL_CROPS = ("central_fraction", "resize_shorter")
CAFFE_BGR_MEAN = (104.0, 117.0, 128.0)  # pretrainedmodels' bninception settings
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

# TensorFlow must never claim accelerator memory: JAX owns the devices.
try:
    tf.config.set_visible_devices([], "GPU")
except RuntimeError:  # TensorFlow already initialised its devices (e.g. in a test).
    pass

_FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
}


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


def _distort_and_scale(image: tf.Tensor, seed: tf.Tensor, strength: float) -> tf.Tensor:
    """Photometric distortions of a [0, 255] image, then scaling to [-1, 1].

    Brightness, saturation, hue and contrast are drawn from TF-slim's ranges times
    ``strength`` and applied as one affine colour map,
        q = clip(C · (c · (p − p̄) + p̄) + b),   p in [0, 1], p̄ its mean value,
    C the saturation/hue matrix, c the contrast factor, b the brightness shift. C
    keeps grey grey, so brightness and contrast commute with it. TF's own
    adjust_saturation/adjust_hue convert every pixel to HSV and back, which costs
    about as much as decoding the image; this map is one small matrix product, an add
    and a clip (scripts/bench_input.py).
    """
    u = tf.random.stateless_uniform([4], seed, -strength, strength)
    brightness = BRIGHTNESS_DELTA * u[0]
    color = _color_matrix(1 + SATURATION_RANGE * u[1], HUE_DELTA * u[2])
    contrast = 1 + CONTRAST_RANGE * u[3]
    # Folded into one matrix product and one scalar shift, in output units [-1, 1].
    mean = tf.reduce_mean(image) / 255.0
    matrix = tf.transpose(color) * (2 * contrast / 255.0)
    shift = 2 * ((1 - contrast) * mean + brightness) - 1
    pixels = tf.reshape(image, [-1, 3]) @ matrix + shift
    return tf.clip_by_value(tf.reshape(pixels, tf.shape(image)), -1.0, 1.0)


def train_preprocess(
    jpeg: tf.Tensor, seed: tf.Tensor, image_size: int, distortion_strength: float
) -> tf.Tensor:
    """Encoded JPEG → (image_size, image_size, 3) float32 in [-1, 1], random from ``seed``."""
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
        return _distort_and_scale(image, seeds[2], distortion_strength)
    return image * (2 / 255.0) - 1.0


def eval_preprocess(
    jpeg: tf.Tensor, image_size: int, eval_crop: str = "central_fraction"
) -> tf.Tensor:
    """Encoded JPEG → its central crop as (image_size, image_size, 3) float32 in [-1, 1]."""
    if eval_crop == "resize_shorter":
        image = tf.io.decode_jpeg(jpeg, channels=3)
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        side = float(int(image_size / EVAL_CROP_FRACTION))
        # torchvision's Resize(side): the shorter side becomes side, the other ⌊·⌋.
        size = tf.cast(tf.floor(shape * side / tf.reduce_min(shape)), tf.int32)
        size = tf.where(shape == tf.reduce_min(shape), int(side), size)
        image = tf.image.resize(image, size, method="bilinear")
        top, left = (tf.cast(tf.round((n - image_size) / 2), tf.int32) for n in tf.unstack(size))
        image = image[top : top + image_size, left : left + image_size] / 255.0
    else:
        window = _central_window(tf.image.extract_jpeg_shape(jpeg))
        image = tf.image.decode_and_crop_jpeg(jpeg, window, channels=3)
        image = tf.image.resize(image, [image_size, image_size], method="bilinear") / 255.0
    return image * 2.0 - 1.0


def to_input_range(image: tf.Tensor, input_range: str) -> tf.Tensor:
    """[-1, 1] RGB images (…, 3) → what the weights expect (``input_range``)."""
    if input_range == "caffe_bgr":
        return (image[..., ::-1] + 1.0) * 127.5 - tf.constant(CAFFE_BGR_MEAN)
    return image


def _parse(record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    example = tf.io.parse_single_example(record, _FEATURES)
    return example["image"], tf.cast(example["label"], tf.int32)


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    # Parallelism comes from processing many images at once; one thread per op
    # avoids oversubscribing the cores.
    options.threading.max_intra_op_parallelism = 1
    return options


@dataclasses.dataclass(frozen=True)
class _Files:
    """This process's files of one split and their example counts."""

    paths: list[str]
    lengths: list[int]

    @property
    def num_examples(self) -> int:
        return sum(self.lengths)


def _process_files(
    split: str, paths: list[str], lengths: list[int], index: int, count: int
) -> _Files:
    if len(paths) < count:
        raise ValueError(
            f"{NAME} {split} has {len(paths)} files but there are {count} processes; each "
            "process reads its own files. Prepare it again with "
            f"scripts/prepare_imagenet.py --num_shards={count} (or more)."
        )
    return _Files(paths[index::count], lengths[index::count])


def _load_builder(data_dir: str):
    import tensorflow_datasets as tfds  # deferred: only ImageNet runs need it

    builder = tfds.builder(NAME, data_dir=data_dir or None)
    if not builder.is_prepared() or not {"train", "validation"} <= set(builder.info.splits):
        raise FileNotFoundError(
            f"TFDS {NAME} is not prepared in {builder.data_dir} (train and validation "
            "splits). Download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from "
            "https://image-net.org/download-images into a directory DIR, then run\n"
            "  python scripts/prepare_imagenet.py --manual_dir DIR --data_dir "
            f"{data_dir or Path(builder.data_dir).parents[1]}\n"
            "and train with --config.data_dir set to that same data directory."
        )
    return builder


class ImageNet:
    """The dataset interface of bn_repro.data over TFDS imagenet2012 files."""

    num_classes = NUM_CLASSES

    def __init__(
        self,
        data_dir: str,
        image_size: int,
        batch_size: int,
        eval_batch_size: int,
        seed: int,
        distortion_strength: float,
        shuffle_buffer: int,
        interleave_cycle: int,
        process_index: int | None = None,
        process_count: int | None = None,
        input_range: str = "minus_one_one",
        eval_crop: str = "central_fraction",
        label_offset: int = 0,
    ):
        if not 0 <= distortion_strength <= MAX_DISTORTION_STRENGTH:
            raise ValueError(
                f"distortion_strength={distortion_strength} must be in "
                f"[0, {MAX_DISTORTION_STRENGTH}] (1: TF-slim's ranges, 0: no distortions)."
            )
        if interleave_cycle < 1 or shuffle_buffer < 0:
            raise ValueError(
                f"interleave_cycle={interleave_cycle} must be ≥ 1 and "
                f"shuffle_buffer={shuffle_buffer} ≥ 0."
            )
        for key, value, choices in (
            ("input_range", input_range, INPUT_RANGES),
            ("eval_crop", eval_crop, EVAL_CROPS),
            ("label_offset", label_offset, (0, 1)),
        ):
            if value not in choices:
                raise ValueError(f"config.{key}={value!r} is not one of {list(choices)}.")
        self.input_range, self.eval_crop, self.label_offset = input_range, eval_crop, label_offset
        self.num_classes = NUM_CLASSES + label_offset
        index = jax.process_index() if process_index is None else process_index
        count = jax.process_count() if process_count is None else process_count
        for what, size in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if size % count:
                raise ValueError(
                    f"{what}={size} is not divisible by the {count} processes; "
                    "each process must feed an equal share."
                )
        splits = _load_builder(data_dir).info.splits
        self.num_train = splits["train"].num_examples
        self.num_eval = splits["validation"].num_examples
        self.image_shape = (image_size, image_size, 3)
        self.image_size = image_size
        self.distortion_strength = distortion_strength
        self.shuffle_buffer = shuffle_buffer
        self.interleave_cycle = interleave_cycle
        self.local_batch_size = batch_size // count
        self.local_eval_batch_size = eval_batch_size // count
        self._train = _process_files(
            "train",
            [str(p) for p in splits["train"].filepaths],
            splits["train"].shard_lengths,
            index,
            count,
        )
        eval_paths = [str(p) for p in splits["validation"].filepaths]
        eval_lengths = splits["validation"].shard_lengths
        self._eval = _process_files("validation", eval_paths, eval_lengths, index, count)
        # Every process runs the same number of eval steps: enough for the largest share.
        largest_share = max(sum(eval_lengths[i::count]) for i in range(count))
        self.num_eval_batches = math.ceil(largest_share / self.local_eval_batch_size)
        # One 32-bit key per (seed, process, process count): independent streams.
        self._stream_seed = int(np.random.SeedSequence([seed, index, count]).generate_state(1)[0])

    def parse(self, record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(JPEG, label) of a record, the label shifted by ``label_offset``."""
        jpeg, label = _parse(record)
        return jpeg, label + self.label_offset

    def _epoch(self, epoch: tf.Tensor, skip: tf.Tensor) -> tf.data.Dataset:
        """(example seed, record) of one epoch of this process's files, minus ``skip``."""
        seeds = tf.random.experimental.stateless_split(
            tf.stack([tf.constant(self._stream_seed, tf.int64), epoch]), 3
        )
        files = tf.random.experimental.stateless_shuffle(tf.constant(self._train.paths), seeds[0])
        records = tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.data.TFRecordDataset,
            cycle_length=self.interleave_cycle,
            block_length=1,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        if self.shuffle_buffer > 1:
            shuffle_seed = tf.random.stateless_uniform(
                [], seeds[1], minval=None, maxval=None, dtype=tf.int64
            )
            records = records.shuffle(self.shuffle_buffer, seed=shuffle_seed)
        # Positions are counted before skipping so a resumed run draws the same crops.
        return (
            records.enumerate()
            .skip(skip)
            .map(
                lambda i, r: (
                    epoch * self._train.num_examples + i,
                    tf.random.experimental.stateless_fold_in(seeds[2], i),
                    r,
                )
            )
        )

    def train_batches(self, start_step: int = 0) -> Iterator[Batch]:
        """This process's share of the global batches from ``start_step`` on."""
        first_epoch, skip = divmod(start_step * self.local_batch_size, self._train.num_examples)

        def example(position, seed, record) -> dict[str, tf.Tensor]:
            jpeg, label = self.parse(record)
            image = train_preprocess(jpeg, seed, self.image_size, self.distortion_strength)
            image = to_input_range(image, self.input_range)
            return {"image": image, "label": label, "position": position}

        dataset = (
            tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max)
            .flat_map(lambda e: self._epoch(e, tf.where(e == first_epoch, np.int64(skip), 0)))
            .map(example, num_parallel_calls=tf.data.AUTOTUNE)
            # An image that cannot be decoded is dropped (and counted below) rather
            # than ending a run of millions of steps.
            .ignore_errors(log_warning=True)
            .batch(self.local_batch_size, drop_remainder=True)
            # Two batches ahead: a 1600-image float32 batch is about 1 GB.
            .prefetch(2)
            .with_options(_options())
        )
        last_position = first_epoch * self._train.num_examples + skip - 1
        for batch in dataset.as_numpy_iterator():
            # Positions in the stream are consecutive but for the dropped images.
            position = batch.pop("position")
            batch[SKIPPED_IMAGES] = np.int32(position[-1] - last_position - len(position))
            last_position = position[-1]
            yield batch

    def eval_batches(self) -> Iterator[Batch]:
        """This process's share of the whole validation split once, padded and masked."""

        def example(record: tf.Tensor) -> dict[str, tf.Tensor]:
            jpeg, label = self.parse(record)
            image = eval_preprocess(jpeg, self.image_size, self.eval_crop)
            image = to_input_range(image, self.input_range)
            return {"image": image, "label": label, "mask": tf.constant(True)}

        padding = self.num_eval_batches * self.local_eval_batch_size - self._eval.num_examples
        blank = {
            "image": tf.zeros(self.image_shape, tf.float32),
            "label": tf.constant(0, tf.int32),
            "mask": tf.constant(False),
        }
        dataset = (
            tf.data.TFRecordDataset(self._eval.paths, num_parallel_reads=tf.data.AUTOTUNE)
            .map(example, num_parallel_calls=tf.data.AUTOTUNE)
            .concatenate(tf.data.Dataset.from_tensors(blank).repeat(padding))
            .batch(self.local_eval_batch_size, drop_remainder=True)
            .prefetch(2)
            .with_options(_options())
        )
        yield from dataset.as_numpy_iterator()


def create(config: ml_collections.ConfigDict) -> ImageNet:
    """The dataset for ``config`` (keys: see configs/imagenet_common.py)."""
    return ImageNet(
        data_dir=config.data_dir,
        image_size=config.image_size,
        batch_size=config.batch_size,
        eval_batch_size=config.eval_batch_size,
        seed=config.seed,
        distortion_strength=config.distortion_strength,
        shuffle_buffer=config.shuffle_buffer,
        interleave_cycle=config.interleave_cycle,
        input_range=config.input_range,
        eval_crop=config.eval_crop,
        label_offset=config.label_offset,
    )
