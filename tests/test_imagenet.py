"""ImageNet's data: scripts/prepare_imagenet.py, bn_repro/data/imagenet.py and
inception_preprocessing.py.

tests/conftest.py's ``mini`` fixture writes a miniature ImageNet in the real tar
layout (tests/mini_imagenet.py: 3 classes × 5 JPEGs in per-class tars inside
ILSVRC2012_img_train.tar; the first 10 validation file names in
ILSVRC2012_img_val.tar) and prepares it offline in two files per split with the
script; the tests read it back: labels, the training stream and the evaluation
split. Training on it through the CLI: tests/test_imagenet_training.py.
"""

import io
import subprocess
import sys
import tarfile
import types
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from bn_repro.data import inception_preprocessing as preprocessing
from tests.mini_imagenet import (
    IMAGES_PER_CLASS,
    NUM_SHARDS,
    NUM_VAL,
    REPO,
    add_to_tar,
    jpeg_bytes,
    make_dataset,
    tfds_lines,
    write_manual_dir,
)

# --- Preparation ---------------------------------------------------------------------


def test_prepare_builds_both_splits_with_the_right_labels(mini):
    assert f"train {3 * IMAGES_PER_CLASS}, validation {NUM_VAL}" in mini.prepare_output
    builder = tfds.builder("imagenet2012", data_dir=mini.data_dir)
    for split in ("train", "validation"):
        assert builder.info.splits[split].num_shards == NUM_SHARDS
    train = list(tfds.as_numpy(builder.as_dataset("train")))
    labels = {ex["file_name"].decode(): int(ex["label"]) for ex in train}
    # Train labels come from the inner tar names: the global 0-999 ids survive.
    names = tfds_lines("datasets/imagenet2012/labels.txt")
    assert {f: names.index(f.split("_")[0]) for f in labels} == labels
    assert sorted(labels.values()) == mini.train_labels
    val = {
        ex["file_name"].decode(): int(ex["label"])
        for ex in tfds.as_numpy(builder.as_dataset("validation"))
    }
    assert [val[f"ILSVRC2012_val_{i:08d}.JPEG"] for i in range(1, NUM_VAL + 1)] == mini.val_labels


@pytest.mark.parametrize(
    "present", [(), ("ILSVRC2012_img_val.tar",), ("ILSVRC2012_img_train.tar.gz", "val.tar")]
)
def test_prepare_names_the_expected_tars_when_one_is_missing(tmp_path, present):
    for name in present:
        (tmp_path / name).write_bytes(b"")
    result = subprocess.run(
        [sys.executable, "scripts/prepare_imagenet.py", f"--manual_dir={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "ILSVRC2012_img_train.tar" in result.stderr
    assert "ILSVRC2012_img_val.tar" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_dataset_says_how_to_prepare_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="scripts/prepare_imagenet.py --manual_dir"):
        make_dataset(types.SimpleNamespace(data_dir=str(tmp_path)))


# --- Training stream -----------------------------------------------------------------


def test_training_batches_are_inception_preprocessed_epochs(mini):
    dataset = make_dataset(mini, batch_size=5)  # 15 examples: 3 batches per epoch
    assert (dataset.num_train, dataset.num_eval) == (15, NUM_VAL)
    assert dataset.image_shape == (32, 32, 3)
    batches = dataset.train_batches(0)
    epochs = [[next(batches) for _ in range(3)] for _ in range(2)]
    for epoch in epochs:
        assert sorted(np.concatenate([b["label"] for b in epoch])) == mini.train_labels
        for batch in epoch:
            assert batch["image"].dtype == np.uint8 and batch["image"].shape == (5, 32, 32, 3)
            assert batch["label"].dtype == np.int32
            assert batch["image"].min() < batch["image"].max()
    # A new order and new crops every epoch.
    first, second = (np.concatenate([b["label"] for b in e]) for e in epochs)
    assert not np.array_equal(first, second)


def test_resumed_stream_matches_the_uninterrupted_one(mini):
    dataset = make_dataset(mini, batch_size=4)  # epochs of 15 do not align with batches
    stream = dataset.train_batches(0)
    expected = [next(stream) for _ in range(10)]
    for start in (1, 3, 4, 7):
        resumed = dataset.train_batches(start)
        for step in range(start, 10):
            batch = next(resumed)
            np.testing.assert_array_equal(batch["label"], expected[step]["label"])
            np.testing.assert_array_equal(batch["image"], expected[step]["image"])
    # The order is a function of the seed.
    other = next(make_dataset(mini, seed=1).train_batches(0))
    assert not np.array_equal(other["image"], expected[0]["image"])


def test_unreadable_training_image_is_skipped_and_counted(mini, tmp_path):
    """A corrupt JPEG in the training data is dropped and counted, not fatal."""
    names = tfds_lines("datasets/imagenet2012/labels.txt")
    manual = tmp_path / "manual"
    write_manual_dir(manual, [names[5]], np.random.default_rng(1))
    # Rewrite the class tar with one image whose JPEG data is garbage after the header.
    with tarfile.open(manual / "ILSVRC2012_img_train.tar") as outer:
        inner = tarfile.open(fileobj=io.BytesIO(outer.extractfile(f"{names[5]}.tar").read()))
        members = {m.name: inner.extractfile(m).read() for m in inner.getmembers()}
    corrupt = f"{names[5]}_2.JPEG"
    members[corrupt] = members[corrupt][:200] + bytes(range(256)) * 4
    inner_bytes = io.BytesIO()
    with tarfile.open(fileobj=inner_bytes, mode="w") as tar:
        for name, data in members.items():
            add_to_tar(tar, name, data)
    with tarfile.open(manual / "ILSVRC2012_img_train.tar", "w") as outer:
        add_to_tar(outer, f"{names[5]}.tar", inner_bytes.getvalue())
    subprocess.run(
        [
            sys.executable,
            "scripts/prepare_imagenet.py",
            f"--manual_dir={manual}",
            f"--data_dir={tmp_path / 'tfds'}",
            "--num_shards=1",
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    dataset = make_dataset(types.SimpleNamespace(data_dir=str(tmp_path / "tfds")), batch_size=2)
    batches = dataset.train_batches(0)
    # 5 records per epoch, 4 readable: 6 batches of 2 use three epochs' readable images.
    # The third epoch's corrupt record is counted only if the stream has passed it.
    stream = [next(batches) for _ in range(6)]
    assert sum(int(b["skipped_images"]) for b in stream) in (2, 3)
    assert sum(int(b["skipped_images"]) for b in stream[:2]) <= 1
    assert all(b["image"].shape == (2, 32, 32, 3) for b in stream)
    assert all(np.isfinite(b["image"]).all() for b in stream)


def test_without_shuffle_buffer_every_epoch_is_still_complete(mini):
    dataset = make_dataset(mini, batch_size=5, shuffle_buffer=0)
    stream = dataset.train_batches(0)
    labels = [np.concatenate([next(stream)["label"] for _ in range(3)]) for _ in range(4)]
    assert all(sorted(epoch) == mini.train_labels for epoch in labels)


def test_each_process_reads_its_own_files(mini):
    shares = [make_dataset(mini, process_index=p, process_count=2) for p in range(2)]
    assert [s._train.paths for s in shares] == [
        [p] for p in sorted(set(shares[0]._train.paths + shares[1]._train.paths))
    ]
    epoch_labels = []
    for share in shares:
        assert share.local_batch_size == 2
        size = share._train.num_examples
        stream = share.train_batches(0)
        labels = np.concatenate([next(stream)["label"] for _ in range(-(-3 * size // 2))])
        # Three epochs of this process's examples, each complete.
        for e in range(3):
            assert sorted(labels[e * size : (e + 1) * size]) == sorted(labels[:size])
        epoch_labels.extend(labels[:size])
    assert sorted(epoch_labels) == mini.train_labels
    with pytest.raises(ValueError, match="--num_shards=3"):
        make_dataset(mini, batch_size=6, eval_batch_size=6, process_index=0, process_count=3)


# --- Evaluation ----------------------------------------------------------------------


@pytest.mark.parametrize("processes,eval_batch_size", [(1, 4), (1, 10), (2, 4), (2, 6)])
def test_eval_covers_every_validation_image_exactly_once(mini, processes, eval_batch_size):
    label_counts, batch_counts = Counter(), set()
    for p in range(processes):
        dataset = make_dataset(
            mini, eval_batch_size=eval_batch_size, process_index=p, process_count=processes
        )
        batches = list(dataset.eval_batches())
        batch_counts.add(len(batches))
        for batch in batches:
            assert batch["image"].shape == (eval_batch_size // processes, 32, 32, 3)
            assert batch["mask"].dtype == bool
            label_counts.update(batch["label"][batch["mask"]].tolist())
        assert list(dataset.eval_batches())[0]["image"].tobytes() == batches[0]["image"].tobytes()
    assert len(batch_counts) == 1  # every process runs the same number of eval steps
    assert label_counts == Counter(mini.val_labels)


# --- Preprocessing -------------------------------------------------------------------


def test_impossible_crop_falls_back_to_the_central_crop():
    # 10×200: no window of ≥ 8% area (160 px) has an aspect ratio within [3/4, 4/3].
    jpeg = tf.constant(jpeg_bytes(np.random.default_rng(1), 10, 200))
    central = preprocessing.eval_preprocess(jpeg, 16).numpy()
    for seed in range(4):
        train = preprocessing.train_preprocess(jpeg, tf.constant([seed, 0]), 16, 0.0).numpy()
        assert np.array_equal(train, central) or np.array_equal(train, central[:, ::-1])


def test_resize_shorter_crop_is_torchvision_resize_256_then_center_crop():
    jpeg = tf.constant(jpeg_bytes(np.random.default_rng(2), 300, 400))
    image = tf.io.decode_jpeg(jpeg, channels=3)
    # Resize(256): 300×400 → 256×341 (⌊400·256/300⌋); CenterCrop(224): top
    # round(32/2) = 16, left round(117/2) = 58 (Python rounds half to even).
    resized = tf.image.resize(image, [256, 341], method="bilinear").numpy()
    expected = np.round(resized[16:240, 58:282]).astype(np.uint8)  # half to even, as TF
    got = preprocessing.eval_preprocess(jpeg, 224, "resize_shorter").numpy()
    np.testing.assert_array_equal(got, expected)


def test_label_offset_shifts_the_labels_only(mini):
    default = next(make_dataset(mini).eval_batches())
    shifted = next(make_dataset(mini, label_offset=1).eval_batches())
    np.testing.assert_array_equal(shifted["image"], default["image"])
    np.testing.assert_array_equal(shifted["label"], default["label"] + 1)


def test_distortions_keep_grey_grey_and_scale_with_strength():
    grey = tf.fill([8, 8, 3], 100.0)
    for seed in range(5):
        out = preprocessing._distort(grey, tf.constant([seed, 1]), 1.0).numpy()
        np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-3)  # pixel values, 0-255
        np.testing.assert_allclose(out[..., 1], out[..., 2], atol=1e-3)  # pixel values, 0-255
    colour = tf.random.stateless_uniform([8, 8, 3], [0, 0], 0, 255)
    seed = tf.constant([3, 4])
    deltas = [
        np.abs(preprocessing._distort(colour, seed, s).numpy() - colour.numpy()).mean()
        for s in (0.0, 0.5, 1.0)
    ]
    assert deltas[0] < 1e-3 < deltas[1] < deltas[2]  # in pixel values, 0-255
    with pytest.raises(ValueError, match="distortion_strength"):
        make_dataset(types.SimpleNamespace(data_dir=""), distortion_strength=3.0)
