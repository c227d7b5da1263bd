"""The sweep engine: a study's grid as cells, run on a local pool, Ray or Slurm.

``python -m experiments.sweep`` (:mod:`experiments.sweep.__main__`); the grid and the
tuning rule in :mod:`~experiments.sweep.grid`, the study directory in
:mod:`~experiments.sweep.study`, the loop in :mod:`~experiments.sweep.engine`, where cells
run in :mod:`~experiments.sweep.backends`.
"""
