"""Workdirs whose checkpoints are damaged: evaluate falls back and says so, training
stops with one clear message and never restarts from step 0 over an earlier run's
files unless --config.allow_restart_from_scratch=true."""

from pathlib import Path

import pytest
from clu import metric_writers

from bn_repro import checkpointing, data, prediction, train
from tests.helpers import small_mnist_config


def _truncate(directory: Path) -> None:
    """Cuts every file of a checkpoint in half, as a full disk or a killed copy would."""
    for path in directory.rglob("*"):
        if path.is_file() and path.stat().st_size > 0:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_damaged_checkpoints_are_reported_and_never_silently_restarted(tmp_path, capsys):
    workdir = tmp_path / "run"
    config = small_mnist_config(total_steps=200)
    train.train_and_evaluate(config, workdir)
    _truncate(workdir / "checkpoints" / "200")
    capsys.readouterr()

    # evaluate: the newest readable checkpoint, named, instead of a traceback.
    trainer = train.Trainer(config, data.create_dataset(config))
    state = prediction.restore_checkpoint(trainer, workdir)
    assert int(state.step) == 100
    assert (
        f"warning: checkpoints [200] of {workdir} are unreadable; evaluating step 100, "
        "the newest readable one (pick one with --step)."
    ) in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"could be read .*pick another with --step"):
        prediction.restore_checkpoint(trainer, workdir, step=200)

    # training: every checkpoint damaged → stop, keeping them where a person finds them.
    _truncate(workdir / "checkpoints" / "100")
    longer = small_mnist_config(total_steps=300)
    with pytest.raises(ValueError, match=r"None of the checkpoints \[200, 100\]") as error:
        train.train_and_evaluate(longer, workdir)
    assert str(error.value).endswith(
        "pass --config.allow_restart_from_scratch=true to train from step 0 here anyway "
        "(the old curves stay in TensorBoard beside the new), or use another --workdir."
    )
    assert sorted(p.name for p in (workdir / "damaged_checkpoints").iterdir()) == ["100", "200"]

    # The same command again refuses to start over the earlier run's files.
    events_before = sorted(workdir.glob("events.out.tfevents.*"))
    with pytest.raises(ValueError, match=r"holds an earlier run's files \(damaged_checkpoints/, "):
        train.train_and_evaluate(longer, workdir)
    assert sorted(workdir.glob("events.out.tfevents.*")) == events_before
    assert not any((workdir / "checkpoints").iterdir())

    longer.allow_restart_from_scratch = True
    assert train.train_and_evaluate(longer, workdir)["step"] == 300


def test_event_files_past_a_checkpoint_step_without_checkpoint_are_not_trained_over(tmp_path):
    workdir = tmp_path / "run"
    config = small_mnist_config()  # a checkpoint every 100 steps
    writer = metric_writers.SummaryWriter(str(workdir))
    writer.write_scalars(50, {"train/loss": 1.0})
    writer.close()
    checkpointing.check_fresh_start(workdir, config.checkpoint_every_steps, False)  # killed early

    writer = metric_writers.SummaryWriter(str(workdir))
    writer.write_scalars(150, {"train/loss": 1.0})
    writer.close()
    with pytest.raises(ValueError, match=r"earlier run's files \(events.out.tfevents.*"):
        train.train_and_evaluate(config, workdir)
    assert not any((workdir / "checkpoints").iterdir())
