"""The CPU-scale Table 2 from the runs of scripts/reproduce_small.py, as markdown.

  python scripts/small_table2_report.py [--runs=runs/small] [--out=FILE] [--no_population]
  python scripts/small_table2_report.py --population_for=bn_x5_seed0  # only its checks

The definitions behind the tables (calibration, plateau, targets, speed-ups, the
population-statistics checks) are in bn_repro/experiments/small_table2.py.
"""

import argparse
import sys
from pathlib import Path

from bn_repro.configs import small_table2 as plan
from bn_repro.experiments import small_table2
from bn_repro.experiments.small_table2_report import report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/small"))
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    parser.add_argument(
        "--no_population",
        action="store_true",
        help="skip the population-statistics checks (no JAX computation)",
    )
    parser.add_argument(
        "--population_for",
        metavar="NAME",
        help="only make (and cache) the population checks of run NAME, e.g. bn_x5_seed0",
    )
    args = parser.parse_args()
    try:
        if args.population_for:
            row, _, seed = args.population_for.rpartition("_seed")
            if row not in plan.ROWS or not seed.isdigit():
                sys.exit(
                    f"error: --population_for={args.population_for!r} is not a run name; "
                    f"valid: ROW_seedN with ROW one of {list(plan.ROWS)}."
                )
            small_table2.check_population(args.runs, row, int(seed))
            return
        text = report(args.runs, population=not args.no_population)
    except FileNotFoundError as error:
        sys.exit(f"error: {error}; run ./scripts/reproduce_small.sh first.")
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
