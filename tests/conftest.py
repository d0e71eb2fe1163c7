"""Test set-up: 8 fake CPU devices, created before JAX initialises; the miniature
ImageNet fixture."""

import os
import types

import pytest

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def mini(tmp_path_factory: pytest.TempPathFactory) -> types.SimpleNamespace:
    """tests/mini_imagenet.py's miniature ImageNet, prepared once for every test that
    reads it (tests/test_imagenet.py, test_imagenet_training.py, test_multicrop.py)."""
    from tests import mini_imagenet  # on use: it loads TensorFlow

    return mini_imagenet.prepare(tmp_path_factory.mktemp("imagenet"))
