"""Greff's ablation on the copy task, T = 100, 4,000 steps, fixed protocol (5 seeds).

The published snapshot behind the README's "Copy memory, T = 100" table
(docs/results/greff_copy_T100).
"""

from experiments.studies import _greff


def get_config():
    return _greff.config(
        "greff_copy_T100", task="copy", lengths=100, steps=4000, batch_size=20, eval_every=250
    )
