"""The CPU-scale Table 2's job list and the job runner, with real subprocesses."""

from bn_repro.configs import small_table2 as plan
from bn_repro.experiments import runner
from bn_repro.experiments.table2_runs import jobs


def test_the_jobs_are_every_row_of_the_plan_longest_first(tmp_path):
    every = jobs(False, tmp_path, seeds=(0, 1, 2), calibrate=False)
    names = [job.name for job in every]
    seeded = [f"{row}_seed{seed}" for row in plan.SEEDED_ROWS for seed in (0, 1, 2)]
    single = [f"{row}_seed0" for row in plan.ROWS if row not in plan.SEEDED_ROWS]
    controls = [f"{row}_seed0" for row in (*plan.CONTROLS, plan.NO_L2, *plan.SWEEPS)]
    assert sorted(names) == sorted(seeded + single + controls)
    assert all(f"--config.seed={job.name[-1]}" in job.arguments for job in every)
    assert [job.steps for job in every] == sorted((job.steps for job in every), reverse=True)
    assert every[0].steps == plan.INCEPTION_STEPS
    # Other seeds: the seeded rows take them, the other rows the first of them.
    other = {job.name for job in jobs(False, tmp_path, seeds=(3, 4, 5), calibrate=False)}
    assert "bn_x30_seed5" in other and "bn_baseline_seed3" in other and "bn_x5_seed0" not in other


def test_calibration_jobs_are_every_rate_and_seed(tmp_path):
    calibration = jobs(False, tmp_path, seeds=(0, 1, 2), calibrate=True)
    assert {job.name for job in calibration} == {
        f"calibration_lr{rate:g}_seed{seed}"
        for rate in plan.CALIBRATION_RATES
        for seed in plan.CALIBRATION_SEEDS
    }
    for job in calibration:
        rate = job.name.split("_")[1][2:]
        assert f"--config.learning_rate={rate}" in job.arguments


def python_job(name: str, order_file, needs=()):
    code = f"open({str(order_file)!r}, 'a').write({name!r} + '\\n')"
    return runner.Job(name, ("-c", code), 0, trains=False, needs=frozenset(needs))


def test_a_job_starts_only_after_what_it_needs(tmp_path):
    (tmp_path / "logs").mkdir()
    order = tmp_path / "order.txt"
    # Listed first but needs b and c, which finish one after the other on one slot.
    todo = [python_job("a", order, {"b", "c"}), python_job("b", order), python_job("c", order)]
    done = set()
    assert runner.run_all(todo, done, tmp_path, parallel=1)
    assert order.read_text().split() == ["b", "c", "a"]
    assert done == {"a", "b", "c"} and not todo


def test_a_job_whose_needs_cannot_finish_stops_the_run(tmp_path, capsys):
    (tmp_path / "logs").mkdir()
    order = tmp_path / "order.txt"
    todo = [python_job("a", order, {"missing"}), python_job("b", order)]
    assert not runner.run_all(todo, set(), tmp_path, parallel=2)
    assert order.read_text().split() == ["b"]
    assert "Cannot start ['a']" in capsys.readouterr().out
