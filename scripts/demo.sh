#!/usr/bin/env bash
# The paper's MNIST experiment (Section 4.1, Figure 1) on real MNIST, offline:
# trains the sigmoid MLP without and with BN (50,000 steps each), then draws
# runs/figure1.png and prints final accuracies, steps to 95%/97% and wall time.
# Running it again resumes unfinished runs and skips finished ones. Arguments go to
# both runs (e.g. --config.total_steps=2000 for a short try); RUNS=DIR writes the runs
# and the figure under DIR instead of runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh

runs=${RUNS:-runs}
start=$SECONDS
for run in mnist_baseline mnist_bn; do
  echo "=== Training $run (configs/$run.py) ==="
  python -m bn_repro.main --config="configs/$run.py" --workdir="$runs/$run" "$@"
done
python scripts/plot_figure1.py --baseline "$runs/mnist_baseline" --bn "$runs/mnist_bn" \
  --out "$runs/figure1.png"
echo "Wall time of this demo (both runs, set-up excluded): $((SECONDS - start)) s"
echo "TensorBoard curves: tensorboard --logdir $runs"
