"""scripts/reproduce_small.py's job list and scheduler, with real subprocesses."""

import sys

from bn_repro.configs import small_table2 as plan
from tests.test_reports import REPO, load_script

sys.path.insert(0, str(REPO / "scripts"))  # the script imports its sibling scripts
driver = load_script("reproduce_small")


def test_population_checks_wait_for_their_run_and_both_inception_seeds(tmp_path):
    every = driver.jobs(False, tmp_path)
    checks = {job.name: job.needs for job in every if not job.trains}
    inception = {"inception_seed0", "inception_seed1"}
    # The BN rows of Table 2, every seed; not Inception, its sigmoid, or the rows without BN.
    assert checks == {
        f"{name}_population": frozenset({name, *inception})
        for name in (
            "bn_baseline_seed0",
            "bn_x5_seed0",
            "bn_x5_seed1",
            "bn_x30_seed0",
            "bn_x30_seed1",
            "bn_x5_sigmoid_seed0",
        )
    }
    training = [job for job in every if job.trains]
    assert len(training) == len(plan.CALIBRATION_RATES) * len(plan.CALIBRATION_SEEDS) + 11
    calibration = [job for job in training if job.name.startswith("calibration_")]
    assert {job.name for job in calibration} == {
        f"calibration_lr{rate:g}_seed{seed}"
        for rate in plan.CALIBRATION_RATES
        for seed in plan.CALIBRATION_SEEDS
    }
    assert all(f"--config.seed={job.name[-1]}" in job.arguments for job in calibration)
    assert [job.steps for job in training] == sorted((job.steps for job in training), reverse=True)
    assert training[0].steps == plan.INCEPTION_STEPS


def python_job(name: str, order_file, needs=()):
    code = f"open({str(order_file)!r}, 'a').write({name!r} + '\\n')"
    return driver.Job(name, ("-c", code), 0, trains=False, needs=frozenset(needs))


def test_a_job_starts_only_after_what_it_needs(tmp_path):
    (tmp_path / "logs").mkdir()
    order = tmp_path / "order.txt"
    # Listed first but needs b and c, which finish one after the other on one slot.
    todo = [python_job("a", order, {"b", "c"}), python_job("b", order), python_job("c", order)]
    done = set()
    assert driver.run_all(todo, done, tmp_path, parallel=1)
    assert order.read_text().split() == ["b", "c", "a"]
    assert done == {"a", "b", "c"} and not todo


def test_a_job_whose_needs_cannot_finish_stops_the_run(tmp_path, capsys):
    (tmp_path / "logs").mkdir()
    order = tmp_path / "order.txt"
    todo = [python_job("a", order, {"missing"}), python_job("b", order)]
    assert not driver.run_all(todo, set(), tmp_path, parallel=2)
    assert order.read_text().split() == ["b"]
    assert "Cannot start ['a']" in capsys.readouterr().out
