"""ImageNet (ILSVRC2012) from TFDS ``imagenet2012``: the stream of this process's files.

Prepare the data once with ``scripts/prepare_imagenet.py`` (see its docstring), then
point ``config.data_dir`` at the TFDS data directory (empty: TFDS's default). Which
files a process reads, and the checks of the settings, are
bn_repro/data/imagenet_setup.py's.

Each image goes through `bn_repro.data.inception_preprocessing` (the crops,
distortions and ``eval_crop``) and is sent as uint8 pixels (bn_repro/data/pixels.py
maps them to the config's ``input_range`` on the device). All of the validation
split is evaluated, the last batch padded and masked, so every image counts once;
`ImageNet.map_eval` runs that pipeline with another per-image function (the 144
crops of `bn_repro.data.multicrop`). ``label_offset`` (configs/pretrained_*.py) is 1
for TF-slim's 1001 classes, whose class 0 is "background": label l of the 1000
ImageNet classes becomes l + 1.

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

Cost of resuming: the skipped records are still read and shuffled, on average half
an epoch of the process's files, once per restart (README.md, "ImageNet", gives the
size and time). Changing the number of processes changes the data order.
"""

import functools
import math
from collections.abc import Callable, Iterator

import jax
import ml_collections
import numpy as np
import tensorflow as tf

from bn_repro.console import hide_gpus_from_tensorflow
from bn_repro.data import SKIPPED_IMAGES, imagenet_setup
from bn_repro.data import inception_preprocessing as preprocessing

Batch = dict[str, np.ndarray]

NUM_CLASSES = 1000

hide_gpus_from_tensorflow()

_FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
}


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    # Parallelism comes from processing many images at once; one thread per op
    # avoids oversubscribing the cores.
    options.threading.max_intra_op_parallelism = 1
    return options


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
        eval_crop: str = "central_fraction",
        label_offset: int = 0,
    ):
        preprocessing.check_settings(distortion_strength, eval_crop)
        index = jax.process_index() if process_index is None else process_index
        count = jax.process_count() if process_count is None else process_count
        batch_sizes = {"batch_size": batch_size, "eval_batch_size": eval_batch_size}
        imagenet_setup.check_settings(
            shuffle_buffer, interleave_cycle, label_offset, batch_sizes, count
        )
        self.eval_crop, self.label_offset = eval_crop, label_offset
        self.num_classes = NUM_CLASSES + label_offset
        splits = imagenet_setup.load_builder(data_dir).info.splits
        self.num_train = splits["train"].num_examples
        self.num_eval = splits["validation"].num_examples
        self.image_shape = (image_size, image_size, 3)
        self.image_size = image_size
        self.distortion_strength = distortion_strength
        self.shuffle_buffer = shuffle_buffer
        self.interleave_cycle = interleave_cycle
        self.local_batch_size = batch_size // count
        self.local_eval_batch_size = eval_batch_size // count
        self._train, self._eval = (
            imagenet_setup.process_files(split, splits[split], index, count)
            for split in ("train", "validation")
        )
        eval_lengths = splits["validation"].shard_lengths
        # Every process runs the same number of eval steps: enough for the largest share.
        largest_share = max(sum(eval_lengths[i::count]) for i in range(count))
        self.num_eval_batches = math.ceil(largest_share / self.local_eval_batch_size)
        # One 32-bit key per (seed, process, process count): independent streams.
        self._stream_seed = int(np.random.SeedSequence([seed, index, count]).generate_state(1)[0])

    def parse(self, record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(JPEG, label) of a record, the label shifted by ``label_offset``."""
        example = tf.io.parse_single_example(record, _FEATURES)
        return example["image"], tf.cast(example["label"], tf.int32) + self.label_offset

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
            image = preprocessing.train_preprocess(
                jpeg, seed, self.image_size, self.distortion_strength
            )
            return {"image": image, "label": label, "position": position}

        dataset = (
            tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max)
            .flat_map(lambda e: self._epoch(e, tf.where(e == first_epoch, np.int64(skip), 0)))
            .map(example, num_parallel_calls=tf.data.AUTOTUNE)
            # An image that cannot be decoded is dropped (and counted below) rather
            # than ending a run of millions of steps.
            .ignore_errors(log_warning=True)
            .batch(self.local_batch_size, drop_remainder=True)
            # Two batches ahead: a 1600-image batch is 241 MB.
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
        central = functools.partial(
            preprocessing.eval_preprocess, image_size=self.image_size, eval_crop=self.eval_crop
        )
        return self.map_eval(central, self.image_shape, self.local_eval_batch_size)

    def map_eval(
        self,
        preprocess: Callable[[tf.Tensor], tf.Tensor],
        image_shape: tuple[int, ...],
        images_per_batch: int,
    ) -> Iterator[Batch]:
        """`eval_batches` with ``preprocess`` (encoded JPEG → uint8 RGB of
        ``image_shape``) in place of the central crop:
        the same labels, zero-image padding and mask, in batches of ``images_per_batch``
        (a divisor of ``local_eval_batch_size``, so the padding fills whole batches).
        """
        if self.local_eval_batch_size % images_per_batch:
            raise ValueError(
                f"images_per_batch={images_per_batch} must divide this process's eval batch of "
                f"{self.local_eval_batch_size} images."
            )

        def example(record: tf.Tensor) -> dict[str, tf.Tensor]:
            jpeg, label = self.parse(record)
            return {"image": preprocess(jpeg), "label": label, "mask": tf.constant(True)}

        padding = self.num_eval_batches * self.local_eval_batch_size - self._eval.num_examples
        blank = {
            "image": tf.zeros(image_shape, tf.uint8),
            "label": tf.constant(0, tf.int32),
            "mask": tf.constant(False),
        }
        dataset = (
            tf.data.TFRecordDataset(self._eval.paths, num_parallel_reads=tf.data.AUTOTUNE)
            .map(example, num_parallel_calls=tf.data.AUTOTUNE)
            .concatenate(tf.data.Dataset.from_tensors(blank).repeat(padding))
            .batch(images_per_batch, drop_remainder=True)
            .prefetch(2)
            .with_options(_options())
        )
        yield from dataset.as_numpy_iterator()


def check_config(config: ml_collections.ConfigDict) -> None:
    """The checks `ImageNet` makes of ``config``'s values, before anything is read
    (bn_repro/config_checks.py calls it)."""
    preprocessing.check_settings(config.distortion_strength, config.eval_crop)
    batch_sizes = {"batch_size": config.batch_size, "eval_batch_size": config.eval_batch_size}
    imagenet_setup.check_settings(
        config.shuffle_buffer,
        config.interleave_cycle,
        config.label_offset,
        batch_sizes,
        jax.process_count(),
    )


# The config keys `ImageNet` takes, under the same names.
_KEYS = (
    "data_dir", "image_size", "batch_size", "eval_batch_size", "seed", "distortion_strength",
    "shuffle_buffer", "interleave_cycle", "eval_crop", "label_offset",
)  # fmt: skip


def create(config: ml_collections.ConfigDict) -> ImageNet:
    """The dataset for ``config`` (keys: see configs/imagenet_common.py)."""
    return ImageNet(**{key: config[key] for key in _KEYS})
