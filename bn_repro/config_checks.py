"""Config validation before any work: `validate(config)` and `parse_flags(argv)`.

Every entry point that trains calls `validate` before it touches the workdir, reads
data or compiles, so a bad value costs no trained step, checkpoint or event file.
Each check has one owner: the enumerated keys are checked here against the choices
their modules define (`check_choice`, which those modules call too); the dataset's
own settings (distortions, crops, input range, shuffling) by the dataset module,
called from here. `parse_flags` turns an unknown ``--config.KEY`` or a config file
that cannot be loaded into one line instead of absl's chained tracebacks.
"""

import re
import sys
from collections.abc import Iterable

import ml_collections

# Keys counted in steps whose value is the period of something done "every N steps":
# 0 or less would divide by zero (or never happen) only after training started.
PERIOD_SUFFIXES = ("_every_steps", "_every_epochs")
POSITIVE_KEYS = ("steps_per_loop", "total_steps", "batch_size", "eval_batch_size")


def check_choice(key: str, value: object, choices: Iterable) -> None:
    """Raises ValueError unless ``config.key``'s ``value`` is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(
            f"Unknown {key} {value!r}; valid choices: {choices}. Set --config.{key} to one of them."
        )


def _enumerated_keys() -> dict[str, tuple]:
    """config key → its valid values, as defined by the module that uses the key.

    Imported here, not at the top: those modules import `check_choice` from this one.
    """
    from bn_repro import data, models, platforms, schedule, train_state
    from bn_repro.data import distortions, in_memory, pixels
    from bn_repro.models import geometry, inception, precision
    from bn_repro.models.activations import ACTIVATIONS

    return {
        "model": tuple(models.MODELS),
        "dataset": tuple(data.DATASETS),
        "norm": inception.NORMS,
        "activation": tuple(ACTIVATIONS),
        "dtype": tuple(precision.COMPUTE_DTYPES),
        "lr_scaling": schedule.LR_SCALINGS,
        "schedule": schedule.SCHEDULES,
        "optimizer": train_state.OPTIMIZERS,
        "stem": inception.STEMS,
        "first_conv": inception.FIRST_CONVS,
        "pool_proj_4cd": inception.POOL_PROJ_4CD_CHOICES,
        "padding": geometry.PADDINGS,
        "distortions": distortions.KINDS,
        "shuffle": in_memory.SHUFFLES,
        "input_range": pixels.INPUT_RANGES,
        "conv_impl": platforms.CONV_IMPLS,
        "matmul_precision": platforms.MATMUL_PRECISIONS,
    }


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ValueError (one line: the key, the bad value, the valid ones, the fix)
    for the first bad value in ``config``."""
    for key, choices in _enumerated_keys().items():
        if key in config:
            check_choice(key, config[key], choices)
    for key in config:
        periodic = key.endswith(PERIOD_SUFFIXES)
        if (periodic or key in POSITIVE_KEYS) and config[key] <= 0:
            raise ValueError(
                f"config.{key}={config[key]} must be > 0; set --config.{key} to a positive "
                "number" + (" (a large one to do it rarely)." if periodic else ".")
            )
    for key in ("warmup_steps", "profile_steps"):
        if config.get(key, 0) < 0:
            raise ValueError(f"config.{key}={config[key]} must be >= 0; set --config.{key}=0.")
    if config.get("interval_growth", 1.0) < 1:
        raise ValueError(
            f"config.interval_growth={config.interval_growth} must be >= 1 (1: evenly "
            "spaced evaluations); set --config.interval_growth=1."
        )
    if config.get("per_activation_bn_last") and config.norm != "batch":
        raise ValueError(
            "config.per_activation_bn_last needs config.norm='batch'; set "
            "--config.norm=batch or --config.per_activation_bn_last=false."
        )
    if config.dataset != "imagenet2012":
        from bn_repro.data import distortions

        distortions.check_config(config)
    if config.dataset == "imagenet2012":
        for key, default in (("distortions", "none"), ("shuffle", "examples")):
            if config[key] != default:
                raise ValueError(
                    f"{key}={config[key]!r} is for small in-memory datasets; ImageNet "
                    f"distorts and shuffles in its own pipeline. Set --config.{key}={default}."
                )
        # Imported on use: it loads TensorFlow, which the small datasets do not need;
        # quietly, without its CUDA probing lines.
        from bn_repro import console

        console.import_tensorflow_quietly(sys.argv)
        from bn_repro.data import imagenet

        imagenet.check_config(config)


_DID_YOU_MEAN = re.compile(r'Did you mean "([^"]+)" instead of "([^"]+)"')


def flag_error_line(error: BaseException) -> str:
    """One line for an error raised while parsing ``--config`` flags: the unknown key
    with the closest valid one, or why the config file did not load."""
    chain, seen = [], error
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for link in chain:
        match = _DID_YOU_MEAN.search(str(link))
        if match:
            good, bad = match.groups()
            return (
                f"error: unknown config key {bad!r}; did you mean --config.{good}? "
                "(every key is listed in configs/default.py)"
            )
    for link in chain:
        if isinstance(link, KeyError | AttributeError):
            key = str(link).strip("'\"").splitlines()[0]
            return f"error: unknown config key {key!r}; the keys are listed in configs/default.py."
    root = chain[-1]
    # config_flags lists every path it tried; the last line says why the file failed.
    lines = [line.strip() for line in str(root).splitlines() if line.strip()]
    message = (lines[-1] if lines else type(root).__name__).rstrip(".")
    config_arg = next((a for a in sys.argv[1:] if a.startswith("--config=")), "--config")
    return f"error: cannot load {config_arg}: {message}. Check the file's path and name."


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, for ``app.run(main, flags_parser=parse_flags)``: a bad
    flag or config ends the process with one line (exit status 2), not a traceback."""
    from absl import app, flags

    # absl's own --help exits with status 1, as if it had failed.
    if any(arg in ("-h", "-?", "--help", "-help", "--helpshort") for arg in argv[1:]):
        app.usage(shorthelp=True, writeto_stdout=True, exitcode=0)
    if "--helpfull" in argv[1:]:
        app.usage(writeto_stdout=True, exitcode=0)
    try:
        argv = flags.FLAGS(argv)
        if "config" in flags.FLAGS and flags.FLAGS.config is not None:
            # A config file that fails to load fails only when first read: read it now.
            _ = "model" in flags.FLAGS.config
        return argv
    except flags.Error as error:
        cause = error.__cause__ or error.__context__
        line = flag_error_line(cause) if cause else f"error: {error}; see --helpshort."
    except (KeyError, AttributeError, OSError, ValueError, TypeError, ImportError) as error:
        line = flag_error_line(error)
    print(line, file=sys.stderr)
    sys.exit(2)
