"""Small datasets held in host memory, with a data order that is a function of (seed, step).

The global batch of step s is the slice [s·B, (s+1)·B) of an endless stream in which
epoch e is the training set in the order ``permutation(seed, e)``. Any step's batch
can therefore be produced directly: a run resumed at step s sees exactly the
batches an uninterrupted run would have seen, whatever the number of processes.
Each process receives its own contiguous share of every global batch.

``shuffle="batches"`` is the less thorough shuffling of the paper's Inception rows
(Section 4.2.1 shuffles "more thoroughly" for BN-x*): the training set is permuted
once, cut into blocks of one batch, and only the blocks' order changes from epoch to
epoch, so the same examples keep meeting in the same batch.
"""

import dataclasses
from collections.abc import Iterator

import jax
import numpy as np

from bn_repro.config_checks import check_choice

Batch = dict[str, np.ndarray]
SHUFFLES = ("examples", "batches")


@dataclasses.dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8, (N, H, W, C)
    labels: np.ndarray  # int32, (N,)

    def __post_init__(self):
        if len(self.images) != len(self.labels):
            raise ValueError(
                f"{len(self.images)} images but {len(self.labels)} labels; the files do not match."
            )


def class_balanced_subset(
    split: Split, size: int, num_classes: int, key: str = "train_examples"
) -> Split:
    """The first ``size / num_classes`` examples of each class, in their stored order
    (``key``: the config key that asked for it, for the error message)."""
    per_class, remainder = divmod(size, num_classes)
    counts = np.bincount(split.labels, minlength=num_classes)
    if remainder or size <= 0 or per_class > counts.min():
        raise ValueError(
            f"{key}={size} cannot be split equally over {num_classes} classes of at "
            f"most {counts.min()} examples each; choose a positive multiple of {num_classes} "
            f"up to {num_classes * counts.min()}, or 0 for the whole split."
        )
    keep = np.concatenate(
        [np.flatnonzero(split.labels == c)[:per_class] for c in range(num_classes)]
    )
    keep.sort()
    return Split(split.images[keep], split.labels[keep])


class InMemoryDataset:
    """A training and an evaluation split as arrays."""

    def __init__(
        self,
        name: str,
        train: Split,
        test: Split,
        num_classes: int,
        batch_size: int,
        eval_batch_size: int,
        seed: int,
        shuffle: str = "examples",
    ):
        self.name = name
        self.train = train
        self.test = test
        self.num_classes = num_classes
        self.image_shape = train.images.shape[1:]
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        check_choice("shuffle", shuffle, SHUFFLES)
        self.shuffle = shuffle
        self._process_count = jax.process_count()
        self._process_index = jax.process_index()
        for what, size in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if size % self._process_count:
                raise ValueError(
                    f"{what}={size} is not divisible by the {self._process_count} processes; "
                    "each process must feed an equal share."
                )

    @property
    def num_train(self) -> int:
        return len(self.train.labels)

    @property
    def num_eval(self) -> int:
        return len(self.test.labels)

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if self.shuffle == "examples":
            return np.random.default_rng([self.seed, epoch]).permutation(self.num_train)
        fixed = np.random.default_rng([self.seed]).permutation(self.num_train)
        blocks = np.split(fixed, np.arange(self.batch_size, self.num_train, self.batch_size))
        order = np.random.default_rng([self.seed, epoch]).permutation(len(blocks))
        return np.concatenate([blocks[b] for b in order])

    def _local(self, array: np.ndarray) -> np.ndarray:
        share = len(array) // self._process_count
        return array[self._process_index * share : (self._process_index + 1) * share]

    def train_batches(self, start_step: int = 0) -> Iterator[Batch]:
        """This process's share of the global batches from ``start_step`` on."""
        step, epoch, order = start_step, None, None
        while True:
            positions = step * self.batch_size + np.arange(self.batch_size)
            epochs, offsets = np.divmod(self._local(positions), self.num_train)
            indices = np.empty(len(offsets), np.int64)
            for e in np.unique(epochs):
                if e != epoch:  # one permutation per epoch, not per step
                    epoch, order = int(e), self._epoch_order(int(e))
                indices[epochs == e] = order[offsets[epochs == e]]
            yield {"image": self.train.images[indices], "label": self.train.labels[indices]}
            step += 1

    def eval_batches(self) -> Iterator[Batch]:
        """The whole test split once, in order; the last batch is padded and masked."""
        size = self.eval_batch_size
        for start in range(0, self.num_eval, size):
            index = np.arange(start, start + size)
            mask = index < self.num_eval
            index = np.where(mask, index, 0)
            yield {
                "image": self._local(self.test.images[index]),
                "label": self._local(self.test.labels[index]),
                "mask": self._local(mask),
            }
