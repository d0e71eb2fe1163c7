#!/usr/bin/env bash
# The paper's Table 2 and Figure 2 at CPU scale (configs/small_table2.py): trains
# Inception, BN-Baseline, BN-x5, BN-x30, BN-x5-Sigmoid and Inception-Sigmoid, a narrow
# BN-Inception on Fashion-MNIST, then writes runs/small/table2.md (steps to reach the
# Inception run's best accuracy, as the paper's 72.2%) and runs/small/figure2.png, and
# evaluates the BN runs' last checkpoints with Algorithm 2's population statistics.
# About an hour on 2 quiet CPU cores. A run stopped by SIGTERM/SIGINT checkpoints and
# stops the script; running it again resumes unfinished runs and skips finished ones.
# Extra arguments go to every training run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh

out=runs/small
rows=(inception bn_baseline bn_x5 bn_x30 bn_x5_sigmoid inception_sigmoid)
labels=(Inception BN-Baseline BN-x5 BN-x30 BN-x5-Sigmoid Inception-Sigmoid)
dirs=("${rows[@]/#/$out/}")
mkdir -p "$out"
# Compiled programs are kept on disk, so a resumed run does not compile again.
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$out/jax_cache}

# Whether the run in $1 has its checkpoint at the last step of its config.
finished() {
  python - "$1" <<'PY'
import json, sys
from pathlib import Path
workdir = Path(sys.argv[1])
total = json.loads((workdir / "config.json").read_text())["total_steps"]
steps = [int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()]
sys.exit(0 if steps and max(steps) >= total else 1)
PY
}

start=$SECONDS
for row in "${rows[@]}"; do
  echo "=== Training $row (configs/small_table2.py:$row) ==="
  python -m bn_repro.main --config="configs/small_table2.py:$row" --workdir="$out/$row" "$@"
  if ! finished "$out/$row"; then
    echo "$row stopped before its last step; run $0 again to resume." >&2
    exit 1
  fi
done
echo "=== Table 2 (target: the best accuracy of Inception) ==="
python scripts/steps_to_accuracy.py "${dirs[@]}" --labels "${labels[@]}" --baseline Inception \
  --out "$out/table2.md"
python scripts/plot_curves.py "${dirs[@]}" --labels "${labels[@]}" --out "$out/figure2.png" \
  --title "Fashion-MNIST test accuracy (configs/small_table2.py)"
echo "=== Last checkpoints with population statistics (Algorithm 2, 100 batches) ==="
for row in bn_baseline bn_x5 bn_x30 bn_x5_sigmoid; do
  python -m bn_repro.evaluate --workdir="$out/$row" --bn_stats=population
done
echo "Wall time of this script (set-up excluded): $((SECONDS - start)) s"
