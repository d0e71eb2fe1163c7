"""bn_repro/schedule.py: rates per example and schedules per example seen.

Expected numbers are worked out by hand from the paper's figures: BN-x5's rate
0.0075 per update of 32 examples is 0.0075 / 32 = 2.34375e-4 per example; BN-x5
trains 6·10⁶ updates of 32 = 1.92·10⁸ examples; its decay comes every 4/3 epoch of
1,281,167 images = 1,708,222.7 examples.
"""

import subprocess
import sys

import numpy as np
import pytest

from bn_repro import schedule
from bn_repro.configs import bn_x5, mnist_bn
from tests.helpers import small_mnist_config

BN_X5_PER_EXAMPLE = 0.0075 / 32  # the paper's rate per example
# optax evaluates schedules in float32; 0.96^112 = exp(112·ln 0.96) carries a relative
# error of about |112·ln 0.96|·eps32 ≈ 5e-7, so allow ~100 eps32.
RTOL = 1e-5


def _rates(config, steps) -> np.ndarray:
    rate = schedule.create_learning_rate_fn(config)
    return np.array([float(rate(step)) for step in steps], dtype=np.float64)


def test_exponential_staircase():
    config = small_mnist_config(schedule="exponential", learning_rate=0.1)
    config.lr_decay_rate, config.lr_decay_steps, config.lr_staircase = 0.5, 10, True
    np.testing.assert_allclose(_rates(config, (0, 9, 10, 25)), [0.1, 0.1, 0.05, 0.025], rtol=RTOL)


@pytest.mark.parametrize(
    ("batch", "rule", "per_step", "per_example"),
    [
        # per_worker: 0.0075 on the mean gradient of the global batch.
        (1600, "per_worker", 0.0075, 0.0075 / 1600),
        (3200, "per_worker", 0.0075, 0.0075 / 3200),
        # linear: ×1600/32 = 50 and ×3200/32 = 100, the paper's rate per example.
        (1600, "linear", 0.375, BN_X5_PER_EXAMPLE),
        (3200, "linear", 0.75, BN_X5_PER_EXAMPLE),
    ],
)
def test_rate_per_example(batch, rule, per_step, per_example):
    config = bn_x5.get_config()
    config.batch_size, config.lr_scaling, config.warmup_epochs = batch, rule, 0.0
    (rate,) = _rates(config, [0])
    assert rate == pytest.approx(per_step, rel=RTOL)
    assert rate / batch == pytest.approx(per_example, rel=RTOL)


@pytest.mark.parametrize("rule", ["linear", "per_worker"])
def test_schedule_per_example_seen(rule):
    """Batch 1600 and 3200: the same decays after the same examples, the same total."""
    small, large = bn_x5.get_config(), bn_x5.get_config()
    large.batch_size = 3200  # after get_config, as a command-line override
    for config in small, large:
        config.lr_scaling, config.warmup_epochs = rule, 0.0
    # 1,708,222.7 decay examples: 1067.6 → 1,068 steps of 1600, 533.8 → 534 of 3200.
    assert (small.lr_decay_steps, large.lr_decay_steps) == (1068, 534)
    # 1.92·10⁸ examples: 120,000 steps of 1600, 60,000 of 3200.
    assert (small.total_steps, large.total_steps) == (120_000, 60_000)
    # Every 2 epochs = 2,562,334 examples: 1601.5 → 1,601 and 800.7 → 801 steps.
    assert (small.eval_every_steps, large.eval_every_steps) == (1601, 801)

    decays = np.array([0, 1, 10, 112])  # 112 decays: the last step of the run
    examples = decays * 1068 * 1600
    per_example = [
        _rates(config, examples // config.batch_size) / config.batch_size
        for config in (small, large)
    ]
    paper = BN_X5_PER_EXAMPLE * 0.96**decays
    if rule == "linear":
        for ours in per_example:
            np.testing.assert_allclose(ours, paper, rtol=RTOL)
    else:  # 50× and 100× the paper's per-example rate, on the same schedule
        np.testing.assert_allclose(per_example[0], paper / 50, rtol=RTOL)
        np.testing.assert_allclose(per_example[1], paper / 100, rtol=RTOL)


def test_linear_warmup_ramps_the_factor():
    config = bn_x5.get_config()
    config.lr_scaling, config.batch_size, config.warmup_epochs = "linear", 3200, 5.0
    # 5 epochs of 1,281,167 at 3200 per step: 2001.8 → 2,002 steps.
    assert config.warmup_steps == 2002
    # Factor 1 → 100: 0.0075 at step 0, 0.0075·(1 + 99/2) half-way, 0.75 at the end;
    # the decay (every 534 steps) counts from step 0, so 3 decays by step 2,002.
    expected = np.array([0.0075, 0.0075 * 50.5 * 0.96, 0.75 * 0.96**3, 0.75 * 0.96**3])
    np.testing.assert_allclose(_rates(config, [0, 1001, 2002, 2135]), expected, rtol=RTOL)


def test_warmup_changes_nothing_at_factor_one():
    config = small_mnist_config(schedule="constant", learning_rate=0.1, warmup_steps=50)
    for rule in ("per_worker", "linear"):
        config.lr_scaling, config.worker_batch_size = rule, config.batch_size
        np.testing.assert_allclose(_rates(config, [0, 25, 50]), [0.1, 0.1, 0.1], rtol=RTOL)


def test_set_step_keys_stay_and_mnist_is_unchanged():
    config = bn_x5.get_config()
    config.total_steps = 7  # pinned, as --config.total_steps=7
    config.batch_size = 3200
    assert config.total_steps == 7 and config.lr_decay_steps == 534
    mnist = mnist_bn.get_config()
    mnist.batch_size = 120  # MNIST configs count in steps: nothing follows the batch
    assert mnist.total_steps == mnist_bn.get_config().total_steps
    (rate,) = _rates(mnist, [0])
    assert rate == pytest.approx(mnist.learning_rate, rel=RTOL)


def test_bad_lr_scaling():
    config = bn_x5.get_config()
    config.lr_scaling = "sqrt"
    with pytest.raises(
        ValueError, match=r"Unknown lr_scaling 'sqrt'; valid choices: \['per_worker', 'linear'\]"
    ):
        schedule.create_learning_rate_fn(config)


def _main(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "bn_repro.main", "--config=configs/bn_x5.py", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_dry_run_cli():
    result = _main(
        "--dry_run",
        "--config.batch_size=3200",
        "--config.lr_scaling=linear",
        "--config.warmup_epochs=0",
    )
    assert result.returncode == 0, result.stderr
    lines = {line.split("  ")[1]: line for line in result.stdout.splitlines()[1:]}
    assert "3,200 = 100 × 32" in lines["global batch"]
    assert "linear: 0.0075 × 100" in lines["lr_scaling"]
    assert "0.75 = 2.344e-04/ex." in lines["rate at step 0"]
    assert "60,000 steps = 192,000,000 ex." in lines["length"]
    assert lines["length"].endswith("6,000,000")  # the paper's steps


def test_dry_run_cli_rejects_a_bad_lr_scaling():
    result = _main("--dry_run", "--config.lr_scaling=sqrt")
    assert result.returncode != 0
    assert (
        "error: Unknown lr_scaling 'sqrt'; valid choices: ['per_worker', 'linear']" in result.stderr
    )


def test_growing_intervals_fall_on_hand_computed_steps():
    # 100 · 1.25^k rounded to multiples of 20: 100, 125→120, 156→160, 195→200, 244→240,
    # 305→300, 381→380, 477→480, 596→600, 745→740, 931→940; then the end.
    grid = schedule.Intervals(every=100, growth=1.25, total=1000, multiple=20)
    expected = [100, 120, 160, 200, 240, 300, 380, 480, 600, 740, 940, 1000]
    assert [s for s in range(1, 1001) if grid.due(s)] == expected
    assert grid.next_after(0) == 100 and grid.next_after(120) == 160
    assert grid.next_after(940) == 1000


def test_even_intervals_are_every_n_steps_and_the_end():
    grid = schedule.Intervals(every=300, growth=1.0, total=1000)
    assert [s for s in range(1, 1001) if grid.due(s)] == [300, 600, 900, 1000]
    assert grid.next_after(600) == 900 and grid.next_after(900) == 1000
    with pytest.raises(ValueError, match="must be > 0"):
        schedule.Intervals(every=0, growth=1.0, total=10)
