"""scripts/steps_to_accuracy.py and scripts/plot_curves.py on event files with known curves."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest
from clu import metric_writers

REPO = Path(__file__).resolve().parents[1]

# eval/accuracy per run, as (step, value); sixteenths are exact in float32.
CURVES = {
    "inception": [(s, (6 + k) / 16) for k, s in enumerate(range(1000, 6001, 1000))],  # → 11/16
    "bn_x5": [(250, 8 / 16), (500, 11 / 16), (750, 12 / 16), (1000, 11 / 16)],
    "bn_x30": [(250, 7 / 16), (500, 10 / 16), (750, 11 / 16), (1000, 13 / 16)],
    "sigmoid": [(250, 1 / 16), (500, 1 / 16), (750, 2 / 16)],
}


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("logs")
    for name, curve in CURVES.items():
        writer = metric_writers.SummaryWriter(str(root / name))
        for step, value in curve:
            writer.write_scalars(step, {"eval/accuracy": value, "train/loss": 1.0 - value})
        writer.close()
    return [root / name for name in CURVES]


def test_table_against_the_known_curves(workdirs):
    report = load_script("steps_to_accuracy").report
    table = report(workdirs, baseline_name="inception").splitlines()
    # The target is the baseline's maximum, 11/16 = 68.75%, first reached at 6000.
    assert table[0] == "| Model | Steps to 68.8% | Speed-up | Max accuracy | at step |"
    assert table[2:] == [
        "| inception | 6,000 | 1.0× | 68.8% | 6,000 |",
        "| bn_x5 | 500 | 12.0× | 75.0% | 750 |",
        "| bn_x30 | 750 | 8.0× | 81.2% | 1,000 |",
        "| sigmoid | never | — | 12.5% | 750 |",
    ]


def test_explicit_target_labels_and_errors(workdirs):
    report = load_script("steps_to_accuracy").report
    labels = ["Inception", "BN-x5", "BN-x30", "Sigmoid"]
    table = report(workdirs, labels, target=0.8, baseline_name="BN-x30").splitlines()
    assert table[0].startswith("| Model | Steps to 80.0% |")
    assert table[4] == "| BN-x30 | 1,000 | 1.0× | 81.2% | 1,000 |"
    assert table[2].startswith("| Inception | never | — |")
    with pytest.raises(ValueError, match="--baseline 'bn' is not one of the runs"):
        report(workdirs, baseline_name="bn")
    with pytest.raises(ValueError, match="has no 'eval/top5' scalars"):
        report(workdirs, target=0.5, tag="eval/top5")


def test_command_line_and_plot(workdirs, tmp_path):
    table_file, image = tmp_path / "table.md", tmp_path / "curves.png"
    result = subprocess.run(
        [sys.executable, "scripts/steps_to_accuracy.py", *map(str, workdirs)]
        + ["--target", "0.722", "--baseline", "inception", "--out", str(table_file)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| bn_x5 | 750 | — | 75.0% | 750 |" in result.stdout
    assert table_file.read_text() == result.stdout

    load_script("plot_curves").plot(workdirs, image, target=0.722)
    height, width, _ = matplotlib.image.imread(image).shape
    assert (height, width) == (540, 840)
