"""Greff's ablation on the adding problem, T = 200, 2,000 steps, fixed protocol (5 seeds).

The published snapshot behind the README's "Adding problem, T = 200" table
(docs/results/greff_adding_T200).
"""

from experiments.studies import _greff


def get_config():
    return _greff.config(
        "greff_adding_T200", task="adding", lengths=200, steps=2000, batch_size=50,
        eval_every=200,
    )  # fmt: skip
