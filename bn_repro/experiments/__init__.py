"""Experiments made of many runs: their job runner, their analyses, peer implementations.

* `runner`: training runs (and other commands) as jobs, side by side on pinned CPU
  cores, each once the jobs it needs have finished; resumable and stoppable.
* The CPU-scale Table 2 (configs/small_table2.py, docs/small_table2_protocol.md):
  `table2_runs` (its jobs and their runs read back), `crossings` (targets, crossings,
  plateaus), `table2_analysis` (its numbers and pre-registered criteria),
  `table2_report` (the markdown report).
* `peer_nets`: BN-Inception in TF-slim and PyTorch, for speed and weight comparisons.

The command lines are in scripts/ (reproduce_small.py, lr_scaling_study.py,
bench_model.py).
"""
