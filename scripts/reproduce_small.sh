#!/usr/bin/env bash
# The paper's Table 2 and Figure 2 at CPU scale (configs/small_table2.py): calibrates
# Inception's learning rate over two seeds, trains the six Table-2 rows (two seeds for
# Inception, BN-x5 and BN-x30) and the two rows without BN at ×5 and ×30, two at a
# time, then writes runs/small/table2.md (with population-statistics checks) and
# runs/small/figure2.png. 86 minutes measured on 2 quiet CPU cores; --quick: every
# row, shorter, 14 minutes (runs/small_quick). Stopped (SIGINT/SIGTERM), every run
# checkpoints; running it again resumes unfinished runs and skips finished ones.
# Arguments go to scripts/reproduce_small.py (--quick, --parallel=1, --only=NAME).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
# Compiled programs are kept on disk, so resumed and repeated runs do not compile again.
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-runs/jax_cache}
exec python scripts/reproduce_small.py "$@"
