"""Bad configs are refused before any work, each with one line naming the key, the bad
value, the valid ones and the fix; the workdir is left as it was (not even created)."""

import subprocess
import sys
from pathlib import Path

import pytest

from bn_repro import config_checks
from bn_repro.configs import inception
from tests.helpers import small_mnist_config

ROOT = Path(__file__).resolve().parents[1]


def _choice_message(key: str, value: str, choices: list) -> str:
    return f"Unknown {key} {value!r}; valid choices: {choices}. Set --config.{key} to one of them."


@pytest.mark.parametrize(
    "key, value, choices",
    [
        ("norm", "layer", ["batch", "none"]),  # the MLP once trained without BN on it
        ("model", "resnet", ["inception", "mlp"]),
        ("dataset", "cifar", ["mnist", "fashion_mnist", "imagenet2012"]),
        ("activation", "tanh", ["relu", "sigmoid"]),
        ("dtype", "float16", ["float32", "bfloat16"]),
        ("lr_scaling", "sqrt", ["per_worker", "linear"]),
        ("schedule", "cosine", ["constant", "exponential"]),
        ("optimizer", "adam", ["sgd"]),
        ("stem", "tiny", ["imagenet", "small"]),
        ("first_conv", "deep", ["separable", "plain"]),
        ("padding", "valid", ["same", "caffe"]),
    ],
)
def test_every_enumerated_key_names_its_choices(key, value, choices):
    with pytest.raises(ValueError) as error:
        config_checks.validate(small_mnist_config(**{key: value}))
    assert str(error.value) == _choice_message(key, value, choices)


@pytest.mark.parametrize(
    "key, value, expected",
    [
        (
            "input_range",
            "bgr",
            _choice_message("input_range", "bgr", ["zero_one", "minus_one_one", "caffe_bgr"]),
        ),
        (
            "eval_crop",
            "corner",
            _choice_message("eval_crop", "corner", ["central_fraction", "resize_shorter"]),
        ),
        ("distortion_strength", 3.0, "distortion_strength=3.0 must be in [0, 2.0]"),
        ("shuffle_buffer", -1, "shuffle_buffer=-1 must be >= 0 (0: no shuffle buffer); set "),
    ],
)
def test_imagenet_input_settings_are_checked_up_front(key, value, expected):
    config = inception.get_config()
    config[key] = value
    with pytest.raises(ValueError) as error:
        config_checks.validate(config)
    assert str(error.value).startswith(expected)


@pytest.mark.parametrize(
    "key", ["eval_every_steps", "checkpoint_every_steps", "log_every_steps", "steps_per_loop"]
)
@pytest.mark.parametrize("value", [0, -5])
def test_periods_must_be_positive(key, value):
    with pytest.raises(ValueError) as error:
        config_checks.validate(small_mnist_config(**{key: value}))
    assert str(error.value).startswith(
        f"config.{key}={value} must be > 0; set --config.{key} to a positive number"
    )


def test_good_configs_pass():
    config_checks.validate(small_mnist_config())
    config_checks.validate(inception.get_config())


@pytest.mark.parametrize(
    "flags, line",
    [
        (
            ["--config=configs/mnist_bn.py", "--config.learning_rat=0.1"],
            "error: unknown config key 'learning_rat'; did you mean --config.learning_rate? "
            "(every key is listed in configs/default.py)",
        ),
        (
            ["--config=configs/no_such_file.py"],
            "error: cannot load --config=configs/no_such_file.py: [Errno 2] No such file or "
            "directory: 'configs/no_such_file.py'. Check the file's path and name.",
        ),
        (
            ["--config=configs/mnist_bn.py", "--config.norm=layer"],
            "error: " + _choice_message("norm", "layer", ["batch", "none"]),
        ),
        (
            ["--config=configs/mnist_bn.py", "--config.eval_every_steps=0"],
            "error: config.eval_every_steps=0 must be > 0; set --config.eval_every_steps to a "
            "positive number (a large one to do it rarely).",
        ),
    ],
    ids=["unknown_key", "missing_file", "bad_choice", "bad_period"],
)
def test_cli_prints_one_line_and_leaves_no_workdir(tmp_path, flags, line):
    workdir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "bn_repro.main", f"--workdir={workdir}", *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [line]
    assert not workdir.exists()  # no checkpoint, no event file, no config.json
