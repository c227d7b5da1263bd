"""IndRNN on the adding problem at T = 1000 (Li et al. 2018), the published snapshot.

The IndRNN with Li et al.'s adding-problem settings (their code, adding/adding.py): two
layers, |u| <= 2^(1/T), their init (``init="li"``), Adam at 2e-4, no gradient clipping;
hidden 64 (theirs: 128) to fit 5 seeds on 2 cores. Beside it a one-layer LSTM of the same
width with their learning rate for tanh models, Adam at 2e-3 (docs/results/
indrnn_adding_T1000). Two grids, since the two models differ in more than one setting.
"""

import ml_collections


def get_config():
    return ml_collections.ConfigDict(
        {
            "name": "indrnn_adding_T1000",
            "reference": "indrnn+li",
            "task": "adding",
            "lengths": 1000,
            "hidden_size": 64,
            "seeds": 5,
            "optimizer": "adam",
            "clip_mode": "none",
            "steps": 5000,
            "batch_size": 50,
            "eval_every": 250,
            "grids": [
                {"variants": "indrnn", "init": "li", "num_layers": 2, "learning_rates": 2e-4},
                {"variants": "lstm", "learning_rates": 2e-3},
            ],
        }
    )
