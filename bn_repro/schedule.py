"""The learning-rate schedule and a run's length, counted in examples seen.

The paper's rates are per update of one worker's mini-batch of ``worker_batch_size``
(32) examples; we train one synchronous global batch of ``batch_size``. Two readings
of a rate η (``config.lr_scaling``):

* ``per_worker``: η as written, applied to the mean gradient of the global batch.
  Each example's gradient is scaled by η / batch_size, batch_size / 32 times less
  than in a 32-example update.
* ``linear``: η · k with k = batch_size / worker_batch_size (Goyal et al. 2017,
  "Accurate, Large Minibatch SGD"): each example's gradient is scaled by η / 32, as
  in the paper's asynchronous workers, each applying η to its own 32 examples.

Warm-up (``warmup_steps``, Goyal et al.'s "gradual warmup"): the factor k rises
linearly from 1 at step 0 to its full value at ``warmup_steps``, so the run starts
at the per-worker rate; the decay is counted from step 0 throughout. Under
``per_worker`` (k = 1) it changes nothing.

`link_steps_to_epochs` makes a config's step keys follow epoch keys and the batch
size lazily (ml_collections field references), so ``--config.batch_size=N`` on the
command line keeps the schedule per example seen; setting a step key directly
(``--config.total_steps=2``) pins it.
"""

import dataclasses
import functools

import ml_collections
import optax

from bn_repro.config_checks import check_choice

LR_SCALINGS = ("per_worker", "linear")
SCHEDULES = ("constant", "exponential")
# Step key → the epoch key it follows in configs built with `link_steps_to_epochs`.
EPOCH_KEYS = {
    "total_steps": "total_epochs",
    "lr_decay_steps": "lr_decay_epochs",
    "warmup_steps": "warmup_epochs",
    "eval_every_steps": "eval_every_epochs",
    "checkpoint_every_steps": "checkpoint_every_epochs",
}


def lr_scale(config: ml_collections.ConfigDict) -> float:
    """k: the factor ``lr_scaling`` applies to ``learning_rate`` after any warm-up."""
    check_choice("lr_scaling", config.lr_scaling, LR_SCALINGS)
    if config.lr_scaling == "per_worker":
        return 1.0
    return config.batch_size / config.worker_batch_size  # "linear"


def _decay(config: ml_collections.ConfigDict) -> optax.Schedule:
    check_choice("schedule", config.schedule, SCHEDULES)
    if config.schedule == "constant":
        return optax.constant_schedule(config.learning_rate)
    return optax.exponential_decay(  # "exponential"
        init_value=config.learning_rate,
        transition_steps=config.lr_decay_steps,
        decay_rate=config.lr_decay_rate,
        staircase=config.lr_staircase,
    )


def create_learning_rate_fn(config: ml_collections.ConfigDict) -> optax.Schedule:
    """Step → learning rate applied to the global batch's mean gradient."""
    scale = lr_scale(config)
    decay = _decay(config)
    if config.warmup_steps == 0 or scale == 1.0:
        return lambda step: scale * decay(step)
    factor = optax.linear_schedule(1.0, scale, transition_steps=config.warmup_steps)
    return lambda step: factor(step) * decay(step)


def _rounded_steps(epochs, config: ml_collections.ConfigDict):
    steps = epochs * config.get_ref("epoch_examples") / config.get_ref("batch_size")
    return (steps + 0.5).to_int()


def link_steps_to_epochs(config: ml_collections.ConfigDict, **epochs: float) -> None:
    """Sets epoch keys (``total_epochs=...``) and makes their step keys follow them.

    Each step key of `EPOCH_KEYS` becomes round(epochs · epoch_examples / batch_size),
    recomputed whenever the epoch key, ``epoch_examples`` or ``batch_size`` changes.
    """
    for steps_key, epochs_key in EPOCH_KEYS.items():
        if epochs_key in epochs:
            config[epochs_key] = float(epochs.pop(epochs_key))
            config[steps_key] = _rounded_steps(config.get_ref(epochs_key), config)
    if epochs:
        raise ValueError(
            f"Unknown epoch keys {sorted(epochs)}; valid: {list(EPOCH_KEYS.values())}."
        )


def describe(config: ml_collections.ConfigDict) -> str:
    """A config's schedule beside the paper's figures, for ``--dry_run``.

    The paper's column counts updates of ``worker_batch_size`` examples at the rate as
    written, decayed over the same examples seen.
    """
    scale, rate = lr_scale(config), create_learning_rate_fn(config)
    unscaled = _decay(config)
    batch, worker = config.batch_size, config.worker_batch_size

    def span(steps: int) -> tuple[str, str]:
        examples = steps * batch
        epochs = examples / config.epoch_examples
        return f"{steps:,} steps = {examples:,} ex. = {epochs:.4g} ep.", f"{examples / worker:,.0f}"

    def rates(step: int) -> tuple[str, str]:
        ours, paper = float(rate(step)), float(unscaled(step))
        return f"{ours:.4g} = {ours / batch:.3e}/ex.", f"{paper:.4g} = {paper / worker:.3e}/ex."

    rows = [
        ("global batch", f"{batch:,} = {batch / worker:.4g} × {worker}", f"{worker}"),
        ("lr_scaling", f"{config.lr_scaling}: {config.learning_rate:.4g} × {scale:.4g}", "–"),
        ("rate at step 0", *rates(0)),
    ]
    if config.warmup_steps and scale != 1.0:
        rows += [
            (f"warm-up, factor 1 → {scale:.4g}", *span(config.warmup_steps)),
            (f"rate at step {config.warmup_steps:,}", *rates(config.warmup_steps)),
        ]
    else:
        rows.append(("warm-up", "none", "–"))
    rows.append((f"rate at step {config.total_steps - 1:,} (last)", *rates(config.total_steps - 1)))
    if config.schedule == "exponential":
        kind = "staircase" if config.lr_staircase else "continuous"
        rows.append((f"decay ×{config.lr_decay_rate} ({kind}) every", *span(config.lr_decay_steps)))
    else:
        rows.append(("decay", f"none (schedule={config.schedule})", "–"))
    rows += [
        ("length", *span(config.total_steps)),
        ("evaluation every", *span(config.eval_every_steps)),
        ("checkpoint every", *span(config.checkpoint_every_steps)),
    ]
    header = ("", "this run (rates per step and per example)", f"paper (updates of {worker})")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(2)]
    return "\n".join(
        f"  {label:<{widths[0]}}  {ours:<{widths[1]}}  {paper}"
        for label, ours, paper in [header, *rows]
    )


@dataclasses.dataclass(frozen=True)
class Intervals:
    """The steps at which something periodic happens (an evaluation, a checkpoint).

    ``growth`` 1: every ``every`` steps and at ``total``. ``growth`` > 1: at ``every``,
    then each interval ``growth`` times the one before (rounded to whole ``multiple``s
    of steps), and at ``total``: the same relative resolution early and late in a
    run, and the same steps in every run that shares the three numbers.
    """

    every: int
    growth: float
    total: int
    multiple: int = 1

    def __post_init__(self):
        if self.every <= 0 or self.growth < 1:
            raise ValueError(
                f"Intervals of {self.every} steps growing ×{self.growth}: the interval must "
                "be > 0 and the growth >= 1; fix the config's *_every_steps / interval_growth."
            )

    @functools.cached_property
    def _points(self) -> tuple[int, ...]:
        points, x = {self.total}, float(self.every)
        while x < self.total:
            points.add(max(self.multiple, round(x / self.multiple) * self.multiple))
            x *= self.growth
        return tuple(sorted(p for p in points if p <= self.total))

    def due(self, step: int) -> bool:
        if self.growth == 1:
            return step % self.every == 0 or step == self.total
        return step in self._points

    def next_after(self, step: int) -> int:
        if self.growth == 1:
            return min(self.total, (step // self.every + 1) * self.every)
        return next((p for p in self._points if p > step), self.total)
