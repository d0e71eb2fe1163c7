"""configs/small_table2.py and configs/ensemble_member.py: derived, not copied."""

import importlib

import pytest

from bn_repro.configs import bn_x30, ensemble_member, small_table2

# What small_table2 may change: the scale of the problem, never the recipe.
SCALE_KEYS = {
    "dataset",
    "data_dir",
    "num_classes",
    "image_size",
    "stem",
    "first_conv",
    "bn.momentum",
    "width_multiplier",
    "min_depth",
    "batch_size",
    "eval_batch_size",
    "learning_rate",
    "lr_decay_steps",
    "total_steps",
    "eval_every_steps",
    "checkpoint_every_steps",
    "log_every_steps",
    "keep_checkpoints",
    "steps_per_loop",
    "warmup_steps",
    "epoch_examples",
    "train_examples",
}
MEMBER_KEYS = {"conv_init_scale", "dropout_rate", "per_activation_bn_last", "seed"}


def _flat(config) -> dict:
    return {key: value for key, value in config.to_dict().items() if key != "bn"} | {
        f"bn.{key}": value for key, value in config.bn.to_dict().items()
    }


def _differences(a, b) -> set[str]:
    a, b = _flat(a), _flat(b)
    return {key for key in a.keys() | b.keys() if a.get(key) != b.get(key)}


@pytest.mark.parametrize("row", small_table2.ROWS)
def test_small_rows_keep_the_imagenet_recipe(row):
    imagenet = importlib.import_module(f"bn_repro.configs.{row}").get_config()
    small = small_table2.get_config(row)
    assert _differences(small, imagenet) <= SCALE_KEYS
    assert small.dataset == "fashion_mnist" and small.stem == "small"

    imagenet_base = importlib.import_module("bn_repro.configs.inception").get_config()
    small_base = small_table2.get_config("inception")
    # Learning-rate multiples (1×, 5×, 30×) are exact; run lengths are rounded to whole
    # compiled loops, decay intervals to whole steps.
    assert small.learning_rate / small_base.learning_rate == pytest.approx(
        imagenet.learning_rate / imagenet_base.learning_rate
    )
    length = small_base.total_steps * imagenet.total_steps / imagenet_base.total_steps
    assert abs(small.total_steps - length) <= small.steps_per_loop / 2
    assert small.total_steps % small.steps_per_loop == 0
    assert small.lr_decay_steps / small_base.lr_decay_steps == pytest.approx(
        imagenet.lr_decay_steps / imagenet_base.lr_decay_steps, rel=0.02
    )
    # Evaluations: about EVALS_PER_RUN, each at a whole number of compiled loops, with
    # every checkpoint kept for the population-statistics check.
    evals = small.total_steps / small.eval_every_steps
    long_run = small.total_steps == small_table2.INCEPTION_STEPS
    wanted = small_table2.LONG_RUN_EVALS if long_run else small_table2.EVALS_PER_RUN
    assert abs(evals - wanted) <= 0.2 * wanted
    assert small.eval_every_steps % small.steps_per_loop == 0
    assert small.keep_checkpoints > evals


@pytest.mark.parametrize("row", small_table2.ROWS)
def test_quick_rows_are_the_same_experiment_shorter(row):
    full, quick = small_table2.get_config(row), small_table2.get_config(f"{row},quick")
    assert _differences(full, quick) <= {
        "lr_decay_steps",
        "total_steps",
        "eval_every_steps",
        "checkpoint_every_steps",
        "log_every_steps",
        "keep_checkpoints",
        "warmup_steps",
        "eval_examples",
    }
    ratio = small_table2.QUICK_INCEPTION_STEPS / small_table2.INCEPTION_STEPS
    assert abs(quick.total_steps - full.total_steps * ratio) <= quick.steps_per_loop / 2


def test_rows_without_bn_differ_from_bn_x_only_in_bn():
    for row, base in small_table2.WITHOUT_BN.items():
        assert _differences(small_table2.get_config(row), small_table2.get_config(base)) == {"norm"}
        assert small_table2.get_config(row).norm == "none"


def test_calibration_is_inception_at_a_constant_rate():
    calibration = small_table2.get_config("calibration")
    assert _differences(calibration, small_table2.get_config("inception")) <= {
        "schedule",
        "total_steps",
        "eval_every_steps",
        "checkpoint_every_steps",
        "log_every_steps",
        "keep_checkpoints",
    }
    assert calibration.schedule == "constant"
    assert calibration.total_steps == small_table2.CALIBRATION_STEPS
    assert small_table2.INCEPTION_LR in small_table2.CALIBRATION_RATES


def test_small_network_keeps_figure_5_proportions():
    """Every depth ×1/8 exactly: no layer is flattened to min_depth."""
    from bn_repro import models
    from bn_repro.models import inception

    model = models.create_model(small_table2.get_config("bn_x5"))
    for paper, small in zip(inception.FIGURE_5, model.rows(), strict=True):
        for field in inception.DEPTH_FIELDS:
            value = getattr(paper, field)
            if field == "pool_proj" and paper.name in inception.MODULES_WITH_POOL_PROJ_4CD:
                value = model.pool_proj_4cd
            if value:
                assert getattr(small, field) == value * small_table2.WIDTH


def test_unknown_row():
    with pytest.raises(ValueError, match="Unknown row 'bn_x10'; valid choices"):
        small_table2.get_config("bn_x10")
    with pytest.raises(ValueError, match="optionally followed by ',quick'"):
        small_table2.get_config("bn_x5,fast")


def test_six_different_members_based_on_bn_x30():
    members = [ensemble_member.get_config(str(i)) for i in range(6)]
    for member in members:
        assert _differences(member, bn_x30.get_config()) <= MEMBER_KEYS
        assert member.dropout_rate in (0.05, 0.10) and member.conv_init_scale >= 1.0
    variations = {(m.conv_init_scale, m.dropout_rate, m.per_activation_bn_last) for m in members}
    assert len(variations) == 6
    assert sorted(m.seed for m in members) == list(range(6))
    small = ensemble_member.get_config("3,small")
    assert _differences(small, small_table2.get_config("bn_x30")) <= MEMBER_KEYS
    assert small.per_activation_bn_last and small.seed == 3
    with pytest.raises(ValueError, match="Unknown member '6'"):
        ensemble_member.get_config("6")
