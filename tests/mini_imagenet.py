"""A miniature ImageNet for the tests: the real tar layout, prepared offline with
scripts/prepare_imagenet.py (tests/conftest.py's ``mini`` fixture prepares it once).

3 classes × 5 JPEGs in per-class tars inside ILSVRC2012_img_train.tar; the first 10
validation file names in ILSVRC2012_img_val.tar; two files per split.
"""

import io
import subprocess
import sys
import tarfile
import types
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from bn_repro.data import imagenet

REPO = Path(__file__).resolve().parents[1]
CLASS_INDICES = (0, 417, 999)  # positions in TFDS's labels.txt: the first, a middle, the last
IMAGES_PER_CLASS = 5
NUM_VAL = 10
NUM_SHARDS = 2


def jpeg_bytes(rng: np.random.Generator, height: int, width: int) -> bytes:
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def add_to_tar(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_manual_dir(directory: Path, synsets: list[str], rng: np.random.Generator) -> None:
    """ILSVRC2012_img_train.tar (a tar of per-class tars) and ILSVRC2012_img_val.tar."""
    directory.mkdir(parents=True)
    with tarfile.open(directory / "ILSVRC2012_img_train.tar", "w") as outer:
        for synset in synsets:
            inner_bytes = io.BytesIO()
            with tarfile.open(fileobj=inner_bytes, mode="w") as inner:
                for i in range(IMAGES_PER_CLASS):
                    # Varied sizes and aspect ratios, like the real photos.
                    add_to_tar(inner, f"{synset}_{i}.JPEG", jpeg_bytes(rng, 40 + 7 * i, 64 - 5 * i))
            add_to_tar(outer, f"{synset}.tar", inner_bytes.getvalue())
    with tarfile.open(directory / "ILSVRC2012_img_val.tar", "w") as tar:
        # Labels are paired with the sorted names: only the first N names are valid.
        for i in range(1, NUM_VAL + 1):
            add_to_tar(tar, f"ILSVRC2012_val_{i:08d}.JPEG", jpeg_bytes(rng, 48, 36 + 4 * i))


def tfds_lines(relative_path: str) -> list[str]:
    return tfds.core.tfds_path(relative_path).read_text().split()


def prepare(root: Path) -> types.SimpleNamespace:
    """Writes the tars into ``root``/manual and prepares them into ``root``/tfds."""
    names = tfds_lines("datasets/imagenet2012/labels.txt")
    synsets = [names[i] for i in CLASS_INDICES]
    write_manual_dir(root / "manual", synsets, np.random.default_rng(0))
    result = subprocess.run(
        [
            sys.executable,
            "scripts/prepare_imagenet.py",
            f"--manual_dir={root / 'manual'}",
            f"--data_dir={root / 'tfds'}",
            f"--num_shards={NUM_SHARDS}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    val_synsets = tfds_lines("datasets/imagenet2012/validation_labels.txt")[:NUM_VAL]
    return types.SimpleNamespace(
        root=root,
        data_dir=str(root / "tfds"),
        prepare_output=result.stdout,
        train_labels=sorted(i for i in CLASS_INDICES for _ in range(IMAGES_PER_CLASS)),
        val_labels=[names.index(synset) for synset in val_synsets],
    )


def make_dataset(mini: types.SimpleNamespace, **overrides) -> imagenet.ImageNet:
    settings = dict(
        data_dir=mini.data_dir,
        image_size=32,
        batch_size=4,
        eval_batch_size=4,
        seed=0,
        distortion_strength=1.0,
        shuffle_buffer=8,
        interleave_cycle=2,
    )
    return imagenet.ImageNet(**(settings | overrides))
