"""The numbers of the CPU-scale Table 2 and its pre-registered criteria
(docs/small_table2_protocol.md), computed from the runs (`table2_runs`)."""

import dataclasses

import numpy as np

from bn_repro.configs import small_table2 as plan
from bn_repro.experiments import crossings
from bn_repro.experiments.table2_runs import Run

SWEEP_TRAINS = 0.5  # a sweep run trains if its final accuracy reaches this
FAILS_BELOW = 0.2  # "fails to train": smoothed maximum below this (or diverged)


@dataclasses.dataclass
class Pairs:
    """A row against Inception: one value per (Inception seed i, row seed j)."""

    speedups: np.ndarray  # [offset, i, j]; NaN where run j never reaches A*_i − offset
    steps: np.ndarray  # [offset, i, j]: run j's steps to A*_i − offset
    rates: np.ndarray  # [offset, i, j]: run j's learning rate there
    schedule_only: np.ndarray  # [offset, i, j]: the speed-up the schedules alone give

    def reached(self, offset: int) -> int:
        return int(np.sum(~np.isnan(self.speedups[offset])))

    def median(self, offset: int) -> float:
        values = self.speedups[offset]
        return float(np.nanmedian(values)) if self.reached(offset) else float("nan")


def targets(inception: list[Run]) -> list[dict]:
    """Per Inception seed: A*, its steps to A* − offset, its rate at A*, plateau gain."""
    found = []
    for run in inception:
        steps, smoothed = run.curve
        a_star = float(smoothed.max())
        reach = [crossings.crossing(steps, smoothed, a_star - o) for o in crossings.OFFSETS]
        found.append(
            {
                "a_star": a_star,
                "steps": reach,
                "rate": run.rate_at(reach[0]),
                "gain": run.plateau_gain(),
            }
        )
    return found


def _schedule_step(run: Run, rate: float) -> float:
    """The first step at which ``run``'s schedule is at or below ``rate`` (inf: never)."""
    below = np.nonzero(run.rates <= rate)[0]
    return float(below[0]) if len(below) else float("inf")


def pairs(inception: list[Run], row: list[Run]) -> Pairs:
    shape = (len(crossings.OFFSETS), len(inception), len(row))
    steps, rates, only = (np.full(shape, np.nan) for _ in range(3))
    for o, offset in enumerate(crossings.OFFSETS):
        for i, base in enumerate(inception):
            b_steps, b_smooth = base.curve
            target = b_smooth.max() - offset
            base_steps = crossings.crossing(b_steps, b_smooth, target)
            base_rate = base.rate_at(base_steps)
            for j, run in enumerate(row):
                reached = crossings.crossing(*run.curve, target) if len(run.steps) else None
                if reached is not None:
                    steps[o, i, j] = reached
                    rates[o, i, j] = run.rate_at(reached)
                only[o, i, j] = base_steps / max(1.0, _schedule_step(run, base_rate))
    base = np.array([t["steps"] for t in targets(inception)]).T  # [offset, i]
    return Pairs(base[:, :, None] / steps, steps, rates, only)


def tolerance(rows: dict[str, list[Run]], bn: str) -> int:
    """The largest multiple M of Inception's rate at which every sweep run up to M trains."""
    largest = 0
    for multiple in plan.SWEEP_MULTIPLES:
        run = rows[f"sweep_{bn}_x{multiple}"][0]
        if run.diverged or not run.final >= SWEEP_TRAINS:
            break
        largest = multiple
    return largest


def fails(run: Run) -> bool:
    return run.diverged is not None or not run.maximum >= FAILS_BELOW


Criterion = tuple[str, str, str, bool]  # id, claim, what was measured, held


def regime_criteria(rows: dict[str, list[Run]]) -> list[Criterion]:
    """R1-R3: the experiment is in the paper's regime."""
    x5 = pairs(rows["inception"], rows["bn_x5"])
    gains = [run.plateau_gain() for row in plan.SEEDED_ROWS for run in rows[row]]
    only = float(np.median(x5.schedule_only[0]))
    norm = rows["bn_x5"][0].last("train/kernel_norm")
    free = rows[plan.NO_L2][0].last("train/kernel_norm")
    return [
        ("R1", "the runs plateau", f"largest gain {max(gains) * 100:+.2f} pt",
         max(gains) < crossings.PLATEAU_GAIN),
        ("R2", "not an annealing race",
         f"median {x5.median(0):.1f}× measured vs {only:.1f}× schedule-only", x5.median(0) > only),
        ("R3", "L2 acts", f"kernel norm {norm:.3g} vs {free:.3g} without L2 ({norm / free:.2f}×)",
         norm <= 0.8 * free),
    ]  # fmt: skip


def speed_criteria(rows: dict[str, list[Run]]) -> list[Criterion]:
    """C1-C8: BN-x5, BN-x30 and BN-Baseline against Inception."""
    inception = rows["inception"]
    x5, x30 = pairs(inception, rows["bn_x5"]), pairs(inception, rows["bn_x30"])
    baseline = pairs(inception, rows["bn_baseline"])
    n, faster = x5.speedups[0].size, int(np.nansum(x5.speedups[0] > 1))
    max5, max30 = (np.mean([r.maximum for r in rows[row]]) for row in ("bn_x5", "bn_x30"))
    early5, early30 = np.nanmedian(x5.steps[3]), np.nanmedian(x30.steps[3])
    found = targets(inception)
    halves = [baseline.steps[0, i, 0] < t["steps"][0] / 2 for i, t in enumerate(found)]
    return [
        ("C1", "BN-x5 reaches A*", f"{x5.reached(0)}/{n} pairs", x5.reached(0) == n),
        ("C2", "BN-x5 is faster at A*", f"{faster}/{n} pairs", faster == n),
        ("C3", "by the paper's 14×", f"median {x5.median(0):.1f}×", x5.median(0) >= 14),
        ("C4", "by at least 5×", f"median {x5.median(0):.1f}×", x5.median(0) >= 5),
        ("C5", "BN-x30 ends highest", f"{max30:.2%} vs BN-x5 {max5:.2%}", max30 >= max5),
        ("C6", "BN-x30 reaches A*", f"{x30.reached(0)}/{n} pairs", x30.reached(0) == n),
        ("C7", "BN-x30 starts slower",
         f"median steps to A*−2: {early30:,.0f} vs {early5:,.0f}", early30 > early5),
        ("C8", "BN-Baseline in < ½ the steps",
         f"{sum(halves)}/{len(halves)} Inception seeds", all(halves)),
    ]  # fmt: skip


def rate_criteria(rows: dict[str, list[Run]]) -> list[Criterion]:
    """C9-C12: which rates and nonlinearities train without and with BN."""
    x5, x30 = rows["inception_x5"][0], rows["inception_x30"][0]
    sigmoid, inception_sigmoid = rows["bn_x5_sigmoid"][0], rows["inception_sigmoid"][0]
    mean_a_star = np.mean([t["a_star"] for t in targets(rows["inception"])])
    with_bn, without = tolerance(rows, "bn"), tolerance(rows, "nobn")
    return [
        ("C9", "Inception ×5 fails", _outcome(x5), fails(x5)),
        ("C10", "Inception ×30 fails", _outcome(x30), fails(x30)),
        ("C11", "sigmoid: only with BN",
         f"Inception-Sigmoid {inception_sigmoid.maximum:.2%}, BN-x5-Sigmoid {sigmoid.maximum:.2%}",
         fails(inception_sigmoid) and sigmoid.maximum >= mean_a_star - 0.05),
        ("C12", "BN tolerates ≥ 4× the rate", f"×{with_bn} with BN, ×{without} without",
         with_bn >= 4 * without),
    ]  # fmt: skip


def criteria(rows: dict[str, list[Run]]) -> list[Criterion]:
    """Every pre-registered criterion, in the protocol's order."""
    found = regime_criteria(rows) + speed_criteria(rows) + rate_criteria(rows)
    return [(cid, claim, measured, bool(held)) for cid, claim, measured, held in found]


def _outcome(run: Run) -> str:
    return f"diverged ({run.diverged})" if run.diverged else f"maximum {run.maximum:.2%}"
