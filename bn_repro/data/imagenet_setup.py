"""ImageNet's set-up before anything is streamed: the prepared TFDS ``imagenet2012``
builder, this process's share of each split's files, and the checks of the settings.

Each failure says how to fix it (prepare the data, or with more files, or change a
setting); bn_repro/data/imagenet.py streams the files.
"""

import dataclasses
from pathlib import Path

from bn_repro.config_checks import check_choice

NAME = "imagenet2012"


@dataclasses.dataclass(frozen=True)
class Files:
    """This process's files of one split and how many examples they hold."""

    paths: list[str]
    num_examples: int


def process_files(split: str, info, index: int, count: int) -> Files:
    """Process ``index`` of ``count``'s files of a split (TFDS SplitInfo ``info``)."""
    paths, lengths = [str(p) for p in info.filepaths], info.shard_lengths
    if len(paths) < count:
        raise ValueError(
            f"{NAME} {split} has {len(paths)} files but there are {count} processes; each "
            "process reads its own files. Prepare it again with "
            f"scripts/prepare_imagenet.py --num_shards={count} (or more)."
        )
    return Files(paths[index::count], sum(lengths[index::count]))


def load_builder(data_dir: str):
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


def check_settings(
    shuffle_buffer: int, interleave_cycle: int, label_offset: int, sizes: dict[str, int], count: int
) -> None:
    if interleave_cycle < 1:
        raise ValueError(
            f"interleave_cycle={interleave_cycle} must be >= 1 (files read at once); set "
            "--config.interleave_cycle=16, say."
        )
    if shuffle_buffer < 0:
        raise ValueError(
            f"shuffle_buffer={shuffle_buffer} must be >= 0 (0: no shuffle buffer); set "
            "--config.shuffle_buffer=0 or a positive number of examples."
        )
    check_choice("label_offset", label_offset, (0, 1))
    for what, size in sizes.items():
        if size % count:
            raise ValueError(
                f"{what}={size} is not divisible by the {count} processes; "
                "each process must feed an equal share."
            )
