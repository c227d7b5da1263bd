"""The README's default comparison: ``python -m experiments.run`` with no flags.

Adding problem, T = 50, lstm, peephole, cifg, gru and the tanh RNN, 3 seeds, 1,000 steps,
``experiments.run``'s defaults for the rest (RMSProp 1e-3, clipping at 1, hidden 128, batch
50); docs/results/default_adding_T50.
"""

import ml_collections


def get_config():
    return ml_collections.ConfigDict(
        {
            "name": "default_adding_T50",
            "reference": "lstm",
            "task": "adding",
            "lengths": 50,
            "variants": ("lstm", "peephole", "cifg", "gru", "rnn"),
            "seeds": 3,
            "steps": 1000,
            "batch_size": 50,
            "hidden_size": 128,
            "learning_rates": 1e-3,
            "eval_every": 100,
        }
    )
