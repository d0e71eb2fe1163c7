"""A Figure-2 style plot from training runs' logs: validation accuracy against steps.

  python scripts/plot_curves.py DIR [DIR ...] --out FILE.png [--labels A B ...]
      [--target 0.722]

One curve of eval/accuracy per run (a training --workdir, named by its directory
name or --labels); --target draws that accuracy as a dotted line.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bn_repro.event_logs import read_scalars  # noqa: E402

TAG = "eval/accuracy"


def plot(
    workdirs: list[Path],
    out: Path,
    labels: list[str] | None = None,
    target: float | None = None,
    tag: str = TAG,
    title: str = "Validation accuracy",
) -> None:
    labels = labels or [Path(w).name for w in workdirs]
    if len(labels) != len(workdirs):
        raise ValueError(f"{len(labels)} labels for {len(workdirs)} runs.")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, workdir in zip(labels, workdirs, strict=True):
        scalars = read_scalars(workdir)
        if tag not in scalars:
            raise ValueError(f"{workdir} has no {tag!r} scalars yet (tags: {sorted(scalars)}).")
        ax.plot(*scalars[tag], label=label, linewidth=1.5)
    if target is not None:
        ax.axhline(target, color="grey", linestyle=":", linewidth=1, label=f"{target:.1%}")
    ax.set(title=title, xlabel="training steps", ylabel="accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workdirs", nargs="+", type=Path, metavar="DIR")
    parser.add_argument("--out", type=Path, required=True, help="the image to write (.png)")
    parser.add_argument("--labels", nargs="+", help="names of the runs, in the order of the DIRs")
    parser.add_argument("--target", type=float, help="draw this accuracy as a dotted line")
    parser.add_argument("--tag", default=TAG, help=f"scalar to plot (default {TAG})")
    parser.add_argument("--title", default="Validation accuracy")
    args = parser.parse_args()
    try:
        plot(args.workdirs, args.out, args.labels, args.target, args.tag, args.title)
    except (ValueError, FileNotFoundError) as error:
        parser.exit(1, f"error: {error}\n")
    print(f"Written to {args.out}")


if __name__ == "__main__":
    main()
