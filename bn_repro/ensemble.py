"""Ensemble evaluation (the paper's Table 3): class probabilities averaged over runs.

  python -m bn_repro.ensemble --workdirs A B C ... [--crops=center|144]
      [--bn_stats=ema|population] [--population_batches=K] [--out FILE.json]

Each run is evaluated as ``python -m bn_repro.evaluate`` would (its own config.json,
its latest checkpoint), so members may differ in their configs (configs/
ensemble_member.py builds the paper's six). The ensemble's prediction for an image is
the arithmetic mean of the members' class probabilities (each already averaged over
the crops); prints top-1 and top-5 of every member and of the ensemble.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bn_repro import console, evaluate, prediction
from bn_repro.console import say


def average_probabilities(members: list[prediction.Predictions]) -> np.ndarray:
    """log of the mean of the members' class probabilities (inputs and output are logs)."""
    labels = members[0].labels
    for member in members[1:]:
        if member.log_probs.shape != members[0].log_probs.shape or not np.array_equal(
            member.labels, labels
        ):
            raise ValueError(
                "The runs were evaluated on different images (labels or class counts "
                "differ); an ensemble needs the same evaluation split in the same order."
            )
    stacked = np.stack([m.log_probs.astype(np.float64) for m in members])
    return np.logaddexp.reduce(stacked, axis=0) - np.log(len(members))


def markdown_table(rows: list[tuple[str, int | str, dict[str, float]]]) -> str:
    lines = [
        "| model | step | top-1 error | top-5 error | loss |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, step, m in rows:
        lines.append(
            f"| {name} | {step} | {1 - m['accuracy']:.2%} | {1 - m['top5_accuracy']:.2%} "
            f"| {m['loss']:.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdirs", nargs="+", required=True, type=Path, help="the runs")
    parser.add_argument("--crops", choices=prediction.CROPS, default="center")
    parser.add_argument("--bn_stats", choices=prediction.BN_STATS, default="ema")
    parser.add_argument(
        "--population_batches", type=int, default=prediction.DEFAULT_POPULATION_BATCHES
    )
    parser.add_argument("--images_per_batch", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    console.quiet_logs()

    members, rows = [], []
    try:
        for workdir in args.workdirs:
            predictions = prediction.predict_run(
                workdir,
                bn_stats=args.bn_stats,
                population_batches=args.population_batches,
                crops=args.crops,
                images_per_batch=args.images_per_batch,
            )
            metrics = evaluate.accuracy_metrics(predictions.log_probs, predictions.labels)
            say(evaluate.summary_line(f"{workdir} step {predictions.step}", metrics))
            members.append(predictions)
            rows.append((str(workdir), predictions.step, metrics))
        ensemble = evaluate.accuracy_metrics(average_probabilities(members), members[0].labels)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    rows.append((f"ensemble of {len(members)}", "", ensemble))
    name = evaluate.variant_name(args.bn_stats, args.population_batches, args.crops)
    say(f"\nEnsemble ({name}):\n{markdown_table(rows)}")
    if args.out:
        results = {
            "variant": name,
            "members": [{"workdir": w, "step": s, **m} for w, s, m in rows[:-1]],
            "ensemble": ensemble,
        }
        args.out.write_text(json.dumps(results, indent=2))
        say(f"Written to {args.out}")


if __name__ == "__main__":
    main()
