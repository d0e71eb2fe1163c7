"""Table 3 at CPU scale: single model and ensemble, single crop and multi-crop
(docs/small_table3_protocol.md).

The six members are configs/ensemble_member.py's variations of the CPU-scale BN-x30;
beside them, an ensemble of six plain BN-x30 seeds (no variations) shows the
variations' share. Every model is evaluated with its moving-average statistics on the
centre crop and on GoogLeNet's multi-crop views (the 48 distinct ones of a square
image), its predictions cached in WORKDIR/eval. With 10 classes top-5 error is ~0, so
the table gives top-1 and top-2 error.
"""

from pathlib import Path

import numpy as np

from bn_repro.configs import ensemble_member
from bn_repro.experiments import runner
from bn_repro.experiments.significance import mcnemar
from bn_repro.experiments.table2_runs import run_name

MEMBERS = tuple(range(len(ensemble_member.MEMBERS)))
PLAIN_SEEDS = (0, 1, 2, 3, 4, 5)
CROPS = ("center", "144")  # prediction.CROPS: "144" is 48 distinct views on square images
PAPER = {"single": 25.2, "multicrop": 21.99, "ensemble": 20.1}  # top-1 error, %
SIGNIFICANCE = 0.05


def member_name(index: int) -> str:
    return f"member{index}"


def jobs(quick: bool, runs: Path) -> list[runner.Job]:
    """The six members and the six plain BN-x30 seeds (three are Table 2's)."""
    suffix = ",quick" if quick else ""
    steps = ensemble_member.get_config(f"0,small{suffix}").total_steps
    members = [
        runner.training_job(
            member_name(i), f"configs/ensemble_member.py:{i},small{suffix}", runs, steps
        )
        for i in MEMBERS
    ]
    plain = [
        runner.training_job(
            run_name("bn_x30", seed),
            f"configs/small_table2.py:bn_x30{suffix}",
            runs,
            steps,
            f"--config.seed={seed}",
        )
        for seed in PLAIN_SEEDS
    ]
    return members + plain


def predictions(workdir: Path, crops: str) -> tuple[np.ndarray, np.ndarray]:
    """(log class probabilities, labels) of the run's last checkpoint, cached."""
    cache = workdir / "eval" / f"table3_{crops}.npz"
    if not cache.exists():
        from bn_repro import prediction  # JAX and the model only when something is missing

        found = prediction.predict_run(workdir, crops=crops)
        cache.parent.mkdir(exist_ok=True)
        np.savez(cache, log_probs=found.log_probs, labels=found.labels)
    saved = np.load(cache)
    return saved["log_probs"], saved["labels"]


def ensemble(log_probs: list[np.ndarray]) -> np.ndarray:
    """log of the mean of the members' class probabilities."""
    stacked = np.stack([p.astype(np.float64) for p in log_probs])
    return np.logaddexp.reduce(stacked, axis=0) - np.log(len(log_probs))


def correct(log_probs: np.ndarray, labels: np.ndarray, k: int = 1) -> np.ndarray:
    """Per image: is the label among the ``k`` most probable classes?"""
    top = np.argsort(-log_probs, axis=1, kind="stable")[:, :k]
    return np.any(top == labels[:, None], axis=1)


def _errors(log_probs: np.ndarray, labels: np.ndarray) -> str:
    return " | ".join(f"{100 * (1 - correct(log_probs, labels, k).mean()):.2f}%" for k in (1, 2))


def report(runs: Path) -> str:
    """The table in the paper's shape, relative reductions and paired tests."""
    names = {"members": [member_name(i) for i in MEMBERS],
             "plain": [run_name("bn_x30", s) for s in PLAIN_SEEDS]}  # fmt: skip
    found = {
        (group, crops): [predictions(runs / name, crops) for name in names[group]]
        for group in names
        for crops in CROPS
    }
    labels = found["members", "center"][0][1]
    lines = ["| model | crops | models | top-1 error | top-2 error |", "|---|---|---|---|---|"]
    error = {}
    for crops in CROPS:
        views = "1" if crops == "center" else "48"
        singles = [1 - correct(p, labels).mean() for p, _ in found["members", crops]]
        best = int(np.argmin(singles))
        error["single", crops] = float(np.mean(singles))
        lines.append(
            f"| single model: mean of 6 [min–max] | {views} | 1 | {np.mean(singles):.2%} "
            f"[{min(singles):.2%}–{max(singles):.2%}] | — |"
        )
        lines.append(f"| best member ({names['members'][best]}) | {views} | 1 | "
                     f"{_errors(*found['members', crops][best])} |")  # fmt: skip
        for group, label in (("members", "ensemble of the 6 members"),
                             ("plain", "ensemble of 6 BN-x30 seeds")):  # fmt: skip
            combined = ensemble([p for p, _ in found[group, crops]])
            error[group, crops] = 1 - correct(combined, labels).mean()
            lines.append(f"| {label} | {views} | 6 | {_errors(combined, labels)} |")
    tables = ["\n".join(lines), _reductions(error), _tests(found, labels)]
    return "\n\n".join([*tables, _criteria(found, labels, error)])


def _criteria(found: dict, labels: np.ndarray, error: dict) -> str:
    """T1-T3 of the protocol, held or not."""
    member_single = [correct(p, labels) for p, _ in found["members", "center"]]
    member_multi = [correct(p, labels) for p, _ in found["members", "144"]]
    members = correct(ensemble([p for p, _ in found["members", "144"]]), labels)
    plain = correct(ensemble([p for p, _ in found["plain", "144"]]), labels)
    helped = sum(
        mcnemar(a, b)["p_value"] < SIGNIFICANCE and b.mean() > a.mean()
        for a, b in zip(member_single, member_multi, strict=True)
    )
    best = max(m.mean() for m in member_multi)
    beats_all = all(
        mcnemar(m, members)["p_value"] < SIGNIFICANCE and members.mean() > m.mean()
        for m in member_multi
    )
    margin = members.mean() - best
    t3 = mcnemar(plain, members)["p_value"]
    rows = [
        ("T1", f"mean error {error['single', 'center']:.2%} → {error['single', '144']:.2%}; "
         f"{helped}/6 members significantly better",
         error["single", "144"] < error["single", "center"] and helped >= 4),
        ("T2", f"ensemble {1 - members.mean():.2%} vs best member {1 - best:.2%} "
         f"({margin * 100:+.2f} pt); p < 0.05 against every member: {beats_all}",
         margin >= 0.005 and beats_all),
        ("T3", f"members' ensemble {1 - members.mean():.2%} vs plain {1 - plain.mean():.2%} "
         f"(p = {t3:.2g})", members.mean() > plain.mean()),
    ]  # fmt: skip
    lines = ["| id | measured | criterion |", "|---|---|---|"]
    lines += [f"| {i} | {m} | {'**held**' if h else '**not held**'} |" for i, m, h in rows]
    return "\n".join(lines)


def _reductions(error: dict) -> str:
    """Relative top-1 error reductions of each step, next to the paper's."""
    steps = [
        ("multi-crop (single model)", error["single", "center"], error["single", "144"],
         PAPER["single"], PAPER["multicrop"]),
        ("ensemble (multi-crop)", error["single", "144"], error["members", "144"],
         PAPER["multicrop"], PAPER["ensemble"]),
    ]  # fmt: skip
    lines = ["| step | error before → after | relative reduction | paper |", "|---|---|---|---|"]
    for name, before, after, paper_before, paper_after in steps:
        ours = (before - after) / before
        paper = (paper_before - paper_after) / paper_before
        lines.append(f"| {name} | {before:.2%} → {after:.2%} | {ours:.1%} | {paper:.1%} |")
    return "\n".join(lines)


def _tests(found: dict, labels: np.ndarray) -> str:
    """McNemar's test for each step: per member, then the ensemble against each member."""
    lines = ["| step | b / c (median over pairs) | p-values (min–max) | pairs with p < 0.05 |",
             "|---|---|---|---|"]  # fmt: skip
    members_multi = [correct(p, labels) for p, _ in found["members", "144"]]
    pairs = {
        "single crop → multi-crop, each member": [
            (correct(p, labels), multi)
            for (p, _), multi in zip(found["members", "center"], members_multi, strict=True)
        ],
        "member (multi-crop) → ensemble (multi-crop)": [
            (multi, correct(ensemble([p for p, _ in found["members", "144"]]), labels))
            for multi in members_multi
        ],
        "plain BN-x30 ensemble → members' ensemble (multi-crop)": [
            (
                correct(ensemble([p for p, _ in found["plain", "144"]]), labels),
                correct(ensemble([p for p, _ in found["members", "144"]]), labels),
            )
        ],
    }
    for name, compared in pairs.items():
        results = [mcnemar(a, b) for a, b in compared]
        p_values = [r["p_value"] for r in results]
        b, c = np.median([r["b"] for r in results]), np.median([r["c"] for r in results])
        significant = sum(p < SIGNIFICANCE for p in p_values)
        lines.append(f"| {name} | {b:.0f} / {c:.0f} | {min(p_values):.2g}–{max(p_values):.2g} "
                     f"| {significant}/{len(p_values)} |")  # fmt: skip
    return "\n".join(lines)
