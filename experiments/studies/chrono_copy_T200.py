"""Chrono initialisation against the default on copy, T = 200 (Tallec & Ollivier 2018).

The LSTM at both inits, 12,000 steps, the Greff protocol otherwise (hidden 64, RMSProp
1e-3, clipping at 1, 5 seeds); docs/results/chrono_copy_T200.
"""

import ml_collections


def get_config():
    return ml_collections.ConfigDict(
        {
            "name": "chrono_copy_T200",
            "reference": "lstm",
            "task": "copy",
            "lengths": 200,
            "variants": "lstm",
            "init": ("default", "chrono"),
            "hidden_size": 64,
            "seeds": 5,
            "learning_rates": 1e-3,
            "steps": 12000,
            "batch_size": 20,
            "eval_every": 500,
        }
    )
