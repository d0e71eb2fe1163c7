#!/usr/bin/env bash
# The paper's Table 2 and Figure 2 at CPU scale (configs/small_table2.py): trains
# Inception, BN-Baseline, BN-x5, BN-x30, BN-x5-Sigmoid and Inception-Sigmoid, a narrow
# BN-Inception on Fashion-MNIST, then writes runs/small/table2.md (steps to reach the
# Inception run's best accuracy, as the paper's 72.2%) and runs/small/figure2.png, and
# evaluates the BN runs' last checkpoints with Algorithm 2's population statistics.
# About an hour on 2 quiet CPU cores. Running it again resumes unfinished runs and
# skips finished ones; extra arguments go to every training run.
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

start=$SECONDS
for row in "${rows[@]}"; do
  echo "=== Training $row (configs/small_table2.py:$row) ==="
  python -m bn_repro.main --config="configs/small_table2.py:$row" --workdir="$out/$row" "$@"
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
