"""Builds TFDS ``imagenet2012`` from the ILSVRC2012 tars you downloaded yourself.

  python scripts/prepare_imagenet.py --manual_dir ~/ilsvrc2012 --data_dir ~/tensorflow_datasets

``--manual_dir`` must hold ``ILSVRC2012_img_train.tar`` (138 GB) and
``ILSVRC2012_img_val.tar`` (6.3 GB) from https://image-net.org/download-images
(registration required). TFDS writes about 150 GB of TFRecord files under
``--data_dir/imagenet2012/5.1.0`` (on one machine this takes a few hours; it needs
no network). Training then reads them with ``--config.data_dir=DATA_DIR``.

This uses the TFDS Python API: the ``tfds build`` command needs apache-beam.
"""

import argparse
import os
import sys
from pathlib import Path

EXPECTED_TARS = {
    "train": "ILSVRC2012_img_train.tar",
    "validation": "ILSVRC2012_img_val.tar",
}


def check_manual_dir(manual_dir: Path) -> None:
    """Raises FileNotFoundError naming the expected tars if either is missing."""
    if not manual_dir.is_dir():
        raise FileNotFoundError(
            f"--manual_dir {manual_dir} is not a directory. It must hold "
            f"{' and '.join(EXPECTED_TARS.values())} from https://image-net.org/download-images."
        )
    missing = [name for name in EXPECTED_TARS.values() if not (manual_dir / name).is_file()]
    if missing:
        present = sorted(p.name for p in manual_dir.iterdir() if p.name.lower().endswith(".tar"))
        raise FileNotFoundError(
            f"{manual_dir} lacks {', '.join(missing)}. Expected exactly these file names: "
            f"{', '.join(EXPECTED_TARS.values())} (the ILSVRC2012 training and validation "
            "tars from https://image-net.org/download-images, not renamed or extracted). "
            f"Tars found there: {present or 'none'}."
        )


def prepare(manual_dir: Path, data_dir: Path | None, num_shards: int | None = None) -> dict:
    """Builds imagenet2012 in ``data_dir`` (TFDS's default if None); returns split sizes."""
    check_manual_dir(manual_dir)
    # Deferred so that a wrong --manual_dir is reported without TensorFlow's start-up.
    import tensorflow_datasets as tfds

    from bn_repro.console import hide_gpus_from_tensorflow

    hide_gpus_from_tensorflow()
    builder = tfds.builder("imagenet2012", data_dir=str(data_dir) if data_dir else None)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=str(manual_dir),
            # ImageNet is not on TFDS's public bucket; asking would need a network.
            try_download_gcs=False,
            num_shards=num_shards,
        )
    )
    return {name: split.num_examples for name, split in builder.info.splits.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--manual_dir",
        type=Path,
        required=True,
        help=f"directory holding {' and '.join(EXPECTED_TARS.values())}",
    )
    parser.add_argument(
        "--data_dir",
        type=Path,
        default=None,
        help="TFDS data directory to write to (default: $TFDS_DATA_DIR or ~/tensorflow_datasets); "
        "pass the same directory to training as --config.data_dir",
    )
    parser.add_argument(
        "--num_shards",
        type=int,
        default=None,
        help="files per split (default: TFDS's choice from the split's size); training "
        "needs at least as many files in each split as it has processes",
    )
    args = parser.parse_args(argv)
    try:
        sizes = prepare(args.manual_dir.expanduser(), args.data_dir, args.num_shards)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    where = args.data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
    print(f"imagenet2012 prepared in {where}: " + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
