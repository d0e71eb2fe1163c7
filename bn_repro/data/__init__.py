"""Datasets by name: ``create_dataset(config)`` builds ``config.dataset``.

A dataset exposes ``num_classes``, ``image_shape``, ``num_train``, ``num_eval`` and
two iterators of numpy batches (this process's share of each global batch):
``train_batches(start_step)`` yields {'image', 'label'} forever from that step on,
``eval_batches()`` yields {'image', 'label', 'mask'} over the whole evaluation split
once, the padding masked out. Images are uint8, mapped to the model's input range
on the device (bn_repro/data/pixels.py). A training batch may also carry
``skipped_images``: how many unreadable images the dataset dropped to fill it
(logged, not trained on).
"""

from collections.abc import Callable
from typing import Any

import ml_collections

from bn_repro.config_checks import check_choice
from bn_repro.data import mnist
from bn_repro.data.in_memory import InMemoryDataset, class_balanced_subset

SKIPPED_IMAGES = "skipped_images"


def _small_image_dataset(config: ml_collections.ConfigDict) -> InMemoryDataset:
    train, test = mnist.load(config.dataset, config.get("data_dir"))
    if config.train_examples:
        train = class_balanced_subset(train, config.train_examples, num_classes=10)
    if config.eval_examples:
        test = class_balanced_subset(test, config.eval_examples, 10, key="eval_examples")
    return InMemoryDataset(
        config.dataset,
        train,
        test,
        num_classes=10,
        batch_size=config.batch_size,
        eval_batch_size=config.eval_batch_size,
        seed=config.seed,
        shuffle=config.shuffle,
    )


def _imagenet(config: ml_collections.ConfigDict) -> Any:
    for key in ("train_examples", "eval_examples"):
        if config[key]:
            raise ValueError(
                f"{key}={config[key]} selects a subset of a small dataset; ImageNet has "
                f"none. Set --config.{key}=0."
            )
    # Imported on use: it loads TensorFlow, which the small datasets do not need.
    from bn_repro.data import imagenet

    return imagenet.create(config)


DATASETS: dict[str, Callable[[ml_collections.ConfigDict], Any]] = {
    "mnist": _small_image_dataset,
    "fashion_mnist": _small_image_dataset,
    "imagenet2012": _imagenet,
}


def create_dataset(config: ml_collections.ConfigDict) -> Any:
    """Builds the dataset named by ``config.dataset``, whose classes must be
    ``config.num_classes``."""
    check_choice("dataset", config.dataset, sorted(DATASETS))
    dataset = DATASETS[config.dataset](config)
    # The model's classifier is sized by the config, the labels by the dataset.
    if dataset.num_classes != config.num_classes:
        raise ValueError(
            f"The {config.dataset} dataset has {dataset.num_classes} classes but "
            f"config.num_classes={config.num_classes}; set "
            f"--config.num_classes={dataset.num_classes}."
        )
    return dataset
