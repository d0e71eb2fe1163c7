"""configs/small_table2.py and configs/ensemble_member.py: derived, not copied."""

import importlib

import pytest

from bn_repro import step_chunks
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
    "weight_decay",
    "total_steps",
    "eval_every_steps",
    "checkpoint_every_steps",
    "log_every_steps",
    "interval_growth",
    "keep_checkpoints",
    "steps_per_loop",
    "warmup_steps",
    "epoch_examples",
    "train_examples",
    # ImageNet's pipeline keys, in their small-dataset form (checked below).
    "distortions",
    "min_crop_area",
    "shuffle",
    "lrn_pixel_scale",
}
EVAL_KEYS = {"eval_every_steps", "checkpoint_every_steps", "log_every_steps", "interval_growth"}
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
    assert small.distortions == small_table2.DISTORTIONS
    assert small.distortion_strength == imagenet.distortion_strength  # 1 or ½ (BN-x*)
    assert small.shuffle == ("batches" if imagenet.shuffle_buffer == 0 else "examples")
    assert small.weight_decay == pytest.approx(imagenet.weight_decay * small_table2.L2_SCALE)

    imagenet_base = importlib.import_module("bn_repro.configs.inception").get_config()
    small_base = small_table2.get_config("inception")
    # Learning-rate multiples (1×, 5×, 30×) are exact, decay intervals rounded to whole
    # steps; BN-x* run BN_X_FRACTION of Inception's length, the others all of it.
    assert small.learning_rate / small_base.learning_rate == pytest.approx(
        imagenet.learning_rate / imagenet_base.learning_rate
    )
    decay = small_base.lr_decay_steps * imagenet.lr_decay_steps / imagenet_base.lr_decay_steps
    assert abs(small.lr_decay_steps - decay) <= 0.5
    long_run = imagenet.total_steps == imagenet_base.total_steps
    length = small_table2.INCEPTION_STEPS * (1 if long_run else small_table2.BN_X_FRACTION)
    assert abs(small.total_steps - length) <= small.steps_per_loop / 2
    assert small.total_steps % small.steps_per_loop == 0


def test_every_row_is_evaluated_on_the_same_grid():
    grids = {
        row: step_chunks.evaluations(small_table2.get_config(row)) for row in small_table2.ROWS
    }
    longest = grids["inception"]
    for row, grid in grids.items():
        inside = [s for s in range(1, longest.total + 1) if longest.due(s) and s < grid.total]
        assert [s for s in range(1, grid.total) if grid.due(s)] == inside, row
        assert grid.due(grid.total)


@pytest.mark.parametrize("row", small_table2.ROWS)
def test_quick_rows_are_the_same_experiment_shorter(row):
    full, quick = small_table2.get_config(row), small_table2.get_config(f"{row},quick")
    assert _differences(full, quick) <= {
        "lr_decay_steps",
        "total_steps",
        "weight_decay",
        "warmup_steps",
        "eval_examples",
    }
    ratio = small_table2.QUICK_INCEPTION_STEPS / small_table2.INCEPTION_STEPS
    assert abs(quick.total_steps - full.total_steps * ratio) <= quick.steps_per_loop / 2
    # The quick run's L2 gives the same λ·Σ rates as the full run's (Inception's by
    # construction; others' to the rounding of their decay intervals to whole steps).
    tolerance = 1e-6 if row == "inception" else 0.25
    strength = small_table2.l2_strength(full)
    assert small_table2.l2_strength(quick) == pytest.approx(strength, rel=tolerance)


def test_controls_are_inception_at_a_higher_rate_for_bn_x_length():
    inception, bn_x5 = small_table2.get_config("inception"), small_table2.get_config("bn_x5")
    for row, multiple in small_table2.CONTROLS.items():
        control = small_table2.get_config(row)
        assert _differences(control, inception) == {"learning_rate", "total_steps", "total_epochs"}
        assert control.learning_rate == pytest.approx(multiple * inception.learning_rate)
        assert control.total_steps == bn_x5.total_steps and control.norm == "none"


def test_bn_x5_without_l2_differs_from_bn_x5_only_in_l2():
    no_l2 = small_table2.get_config(small_table2.NO_L2)
    assert _differences(no_l2, small_table2.get_config("bn_x5")) == {"weight_decay"}
    assert no_l2.weight_decay == 0


@pytest.mark.parametrize("bn, recipe", [("bn", "bn_baseline"), ("nobn", "inception")])
def test_sweeps_are_a_recipe_at_constant_multiples_of_its_rate(bn, recipe):
    base = small_table2.get_config(recipe)
    for multiple in small_table2.SWEEP_MULTIPLES:
        sweep = small_table2.get_config(f"sweep_{bn}_x{multiple}")
        assert _differences(sweep, base) <= {"learning_rate", "schedule", "total_steps"} | EVAL_KEYS
        assert sweep.learning_rate == pytest.approx(multiple * base.learning_rate)
        assert sweep.schedule == "constant" and sweep.total_steps == small_table2.SWEEP_STEPS


def test_calibration_is_inception_with_its_schedule_compressed():
    calibration, inception = (small_table2.get_config(r) for r in ("calibration", "inception"))
    changed = {"lr_decay_steps", "warmup_steps", "total_steps"}  # warm-up: a no-op at batch 32
    assert _differences(calibration, inception) <= changed | EVAL_KEYS
    fraction = small_table2.CALIBRATION_FRACTION
    assert calibration.total_steps == round(inception.total_steps * fraction)
    # The same number of decays over the run (97 on ImageNet).
    decays = inception.total_steps / inception.lr_decay_steps
    assert calibration.total_steps / calibration.lr_decay_steps == pytest.approx(decays, rel=0.03)
    assert small_table2.INCEPTION_LR in small_table2.CALIBRATION_RATES


def _staircase_sum(rate: float, decay: float, every: int, steps: int) -> float:
    """Σ over steps of rate·decay^floor(s/every), by the geometric series."""
    whole = steps // every
    return rate * every * (1 - decay**whole) / (1 - decay) + rate * (steps % every) * decay**whole


def test_l2_strength_is_lambda_times_the_sum_of_rates():
    # ImageNet Inception: λ·Σ rates ≈ 0.47 over its run (the linear rule's warm-up aside).
    imagenet = importlib.import_module("bn_repro.configs.inception").get_config()
    assert small_table2.l2_strength(imagenet) == pytest.approx(0.47, abs=0.01)
    small = small_table2.get_config("inception")
    expected = small.weight_decay * _staircase_sum(
        small.learning_rate, small.lr_decay_rate, small.lr_decay_steps, small.total_steps
    )
    assert small_table2.l2_strength(small) == pytest.approx(expected, rel=1e-5)
    assert small.weight_decay == pytest.approx(4e-5 * small_table2.L2_SCALE)


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
