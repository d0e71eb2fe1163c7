"""Each Section 4.2.1 ablation arm is BN-x5 with exactly one named change undone."""

import pytest

from bn_repro.configs import small_ablation, small_table2
from tests.test_small_configs import _differences

EXPECTED = {  # arm → the keys that differ from BN-x5, and Inception's values
    "rate": {"learning_rate"},
    "dropout": {"dropout_rate"},
    "l2": {"weight_decay"},
    "decay": {"lr_decay_steps"},
    "lrn": {"use_lrn"},
    "shuffle": {"shuffle"},
    "distortions": {"distortion_strength"},
}


@pytest.mark.parametrize("arm", sorted(EXPECTED))
def test_each_arm_undoes_one_change(arm):
    bn_x5, inception = small_table2.get_config("bn_x5"), small_table2.get_config("inception")
    config = small_ablation.get_config(arm)
    assert _differences(config, bn_x5) == EXPECTED[arm]
    for key in EXPECTED[arm]:
        assert config[key] == inception[key] != bn_x5[key]


def test_the_arms_undo_all_seven_changes_of_section_4_2_1():
    assert len(small_ablation.UNDO) == 7
    # The values the arms restore, by hand: rate 1/5, dropout 0.4, L2 ×5, decay 6×
    # slower, LRN on, fixed batches, full photometric strength.
    bn_x5 = small_table2.get_config("bn_x5")
    arms = {arm: small_ablation.get_config(arm) for arm in small_ablation.UNDO}
    assert arms["rate"].learning_rate == pytest.approx(bn_x5.learning_rate / 5)
    assert arms["dropout"].dropout_rate == 0.4
    assert arms["l2"].weight_decay == pytest.approx(bn_x5.weight_decay * 5)
    assert arms["decay"].lr_decay_steps == pytest.approx(bn_x5.lr_decay_steps * 6, abs=3)
    assert arms["lrn"].use_lrn and arms["shuffle"].shuffle == "batches"
    assert arms["distortions"].distortion_strength == 1.0


def test_controls_take_only_bn_x5s_schedule():
    bn_x5 = small_table2.get_config("bn_x5")
    for arm, (recipe, _) in small_ablation.CONTROLS.items():
        config, base = small_ablation.get_config(arm), small_table2.get_config(recipe)
        assert _differences(config, base) <= {"lr_decay_steps", "total_steps", "total_epochs"}
        assert config.lr_decay_steps == bn_x5.lr_decay_steps
        assert config.total_steps == bn_x5.total_steps
    assert small_ablation.get_config("inception_bn_x5_schedule").norm == "none"


def test_unknown_arm():
    with pytest.raises(ValueError, match="Unknown arm 'bn'; valid choices"):
        small_ablation.get_config("bn")
