#!/usr/bin/env bash
# The paper's Table 2 and Figure 2 at CPU scale (configs/small_table2.py; the protocol,
# fixed before the runs, is docs/small_table2_protocol.md): trains every row (three
# seeds for Inception, BN-x5 and BN-x30; the paper's no-BN controls; the constant-rate
# sweeps), two at a time, then writes runs/small/table2.md (every pre-registered
# criterion held or not) and runs/small/figure2.png. --quick: every row, shorter
# (runs/small_quick); --seeds=A,B,C: the seeded rows with other seeds; --calibrate:
# the calibration of Inception's rate (run once, recorded in the README). Stopped
# (SIGINT/SIGTERM), every run checkpoints; running it again resumes unfinished runs.
# Arguments go to scripts/reproduce_small.py (--quick, --seeds, --calibrate,
# --parallel=1, --only=NAME).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
# Compiled programs are kept on disk, so resumed and repeated runs do not compile again.
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-runs/jax_cache}
exec python scripts/reproduce_small.py "$@"
