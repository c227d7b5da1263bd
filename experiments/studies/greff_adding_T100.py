"""Greff's ablation on the adding problem, T = 100, 2,000 steps, fixed protocol (5 seeds).

The published snapshot behind the README's "Adding problem, T = 100" table
(docs/results/greff_adding_T100).
"""

from experiments.studies import _greff


def get_config():
    return _greff.config(
        "greff_adding_T100", task="adding", lengths=100, steps=2000, batch_size=50,
        eval_every=200,
    )  # fmt: skip
