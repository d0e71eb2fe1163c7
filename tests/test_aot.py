"""The real TPU compiler compiles our step for a TPU slice on this CPU machine
(scripts/aot_compile.py, the command, run as documented).

The references come from the model, not from the compiler: the gradient all-reduce
carries every parameter once, BN's forward statistics are a mean and a mean square
per channel of each BN layer, and the step fits in a v4 chip's 32 GiB.
"""

import os
import re
import subprocess
from pathlib import Path

import jax
import numpy as np
import pytest

from bn_repro import models
from bn_repro.configs import small_table2
from bn_repro.models import summary

ROOT = Path(__file__).resolve().parents[1]
V4_HBM_GIB = 32


def _model_counts(config) -> tuple[int, int]:
    """Parameters, and BN channels (the length of every BN layer's mean)."""
    variables = summary.abstract_variables(models.create_model(config), summary.input_shape(config))
    params = sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(variables["params"]))
    means = [
        leaf.shape[-1]
        for path, leaf in jax.tree_util.tree_leaves_with_path(variables["batch_stats"])
        if jax.tree_util.keystr(path).endswith("['mean']")
    ]
    return params, sum(means)


@pytest.mark.slow
def test_small_inception_compiles_for_a_v4_slice():
    python = os.environ.get("BN_REPRO_TPU_PYTHON")
    if not python:
        pytest.skip("no TPU compiler: ./scripts/test.sh --slow installs libtpu into .venv-tpu")
    command = [
        python,
        "scripts/aot_compile.py",
        "--config=configs/small_table2.py:bn_x5",
        "--topology=v4-8",
        "--config.eval_batch_size=32",
    ]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    train = result.stdout.split("eval step:")[0]
    print(train)

    def values(group: str) -> tuple[int, int]:
        match = re.search(rf"all-reduce {group}: (\d+) ops, ([\d,]+) values", train)
        assert match, f"no {group!r} line in:\n{train}"
        return int(match.group(1)), int(match.group(2).replace(",", ""))

    params, bn_channels = _model_counts(small_table2.get_config("bn_x5"))
    assert "4 x TPU v4" in result.stdout
    # Every parameter's gradient is summed over the chips: in the gradient all-reduce,
    # or, for BN's γ and β (sums over the batch of what BN's backward pass already
    # sums), within BN's backward all-reduces.
    gradients, backward = values("gradients and metrics")[1], values("BN backward")[1]
    assert gradients <= params + 100 and gradients + backward >= params
    # Each BN layer's batch statistics: a mean and a mean square per channel.
    assert values("BN forward statistics")[1] == 2 * bn_channels
    assert values("BN backward")[0] > 0
    memory = float(re.search(r"memory per chip\s+([\d.]+) GiB", train).group(1))
    assert 0 < memory < V4_HBM_GIB
