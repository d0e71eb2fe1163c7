"""Figure 1 of the paper from two MNIST runs' TensorBoard logs, and a summary.

  python scripts/plot_figure1.py --baseline runs/mnist_baseline --bn runs/mnist_bn \
      --out runs/figure1.png

(a) test accuracy against training steps, without and with BN;
(b), (c) the 15th, 50th and 85th percentiles over the test set of the input to one
sigmoid of the last hidden layer, without (b) and with (c) BN.
Also prints, per run: final test accuracy and the first evaluated step at which test
accuracy reached 95% and 97%.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bn_repro.event_logs import first_step_reaching, read_scalars  # noqa: E402

TARGETS = (0.95, 0.97)


def summary(name: str, curves: dict) -> str:
    steps, accuracy = curves["eval/accuracy"]
    reached = ", ".join(
        f"{target:.0%} at step {step:,}"
        if (step := first_step_reaching(steps, accuracy, target))
        else f"{target:.0%} never"
        for target in TARGETS
    )
    return f"{name:>12}: final test accuracy {accuracy[-1]:.4f} (step {steps[-1]:,}); {reached}"


def plot(baseline: dict, bn: dict, out: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for curves, label, style in ((baseline, "Without BN", "--"), (bn, "With BN", "-")):
        axes[0].plot(*curves["eval/accuracy"], style, label=label)
    axes[0].set(title="(a) Test accuracy", xlabel="training steps", ylim=(0.7, 1.0))
    axes[0].legend(loc="lower right")
    for ax, curves, title in ((axes[1], baseline, "(b) Without BN"), (axes[2], bn, "(c) With BN")):
        for q in (15, 50, 85):
            ax.plot(*curves[f"eval/sigmoid_input/p{q}"], color="C0", label=f"{q}th percentile")
        ax.set(title=f"{title}: input to a last-layer sigmoid", xlabel="training steps")
    axes[2].sharey(axes[1])
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, type=Path, help="workdir of the no-BN run")
    parser.add_argument("--bn", required=True, type=Path, help="workdir of the BN run")
    parser.add_argument("--out", default=Path("runs/figure1.png"), type=Path)
    args = parser.parse_args()
    baseline, bn = read_scalars(args.baseline), read_scalars(args.bn)
    plot(baseline, bn, args.out)
    print(summary("without BN", baseline))
    print(summary("with BN", bn))
    print(f"Figure 1 written to {args.out}")


if __name__ == "__main__":
    main()
