"""Experiments made of many runs: their job runner, their analyses, peer implementations.

* `runner`: training runs (and other commands) as jobs, side by side on pinned CPU
  cores, each once the jobs it needs have finished; resumable and stoppable.
* `small_table2`, `small_table2_report`: the CPU-scale Table 2 (configs/small_table2.py):
  its jobs, its measurements and its markdown report.
* `peer_nets`: BN-Inception in TF-slim and PyTorch, for speed and weight comparisons.

The command lines are in scripts/ (reproduce_small.py, small_table2_report.py,
lr_scaling_study.py, bench_model.py).
"""
