"""IndRNN against the LSTM on the adding problem at T = 1000, both at Li et al.'s settings.

Li et al. (2018)'s code (Sunnydreamrain/IndRNN_Theano_Lasagne, adding/adding.py) trains
every model with the same flags: Adam at ``--lr`` 2e-4, ``--gradclipvalue`` 10, batch 32,
128 units. Its LSTM is Lasagne's ``LSTMLayer`` with forget bias 1, whose default has
peepholes: here ``peephole`` (Greff et al.'s V), one layer. Its IndRNN: two relu layers,
``w_x ~ N(0, 0.001^2)``, ``|u| <= 2^(1/T)``, the last layer's ``u ~ U[2^(-1/T), 2^(1/T)]``
(``init="li"``).

Protocol, fixed before the run:
* Both models: Adam 2e-4, batch 32, 128 units per layer, 5 seeds (0-4), one seed per cell
  so that each cell fits a working session; 500 fresh held-out sequences per evaluation,
  one every 250 steps.
* What differs from their code, and why: their ``grad_clipping=10`` clips the gradient
  that flows back through each layer's hidden state (a Lasagne layer option); lstmx has no
  such option, so both models clip each weight gradient element at 10 instead (the same
  threshold, the same treatment for both). Their learning rate drops ten-fold every
  20,100 steps, after this budget. Lasagne's initialisers (N(0, 0.1) gate weights) are
  replaced by lstmx's defaults for the LSTM.
* Budget and stopping rule: 5,000 steps for every seed (160,000 sequences), no early
  stop: at 128 units the LSTM trains at 0.9 steps/s on one core of the 2-core host, so a
  seed takes about 1.5 hours, the most a working session can hold. Solved: held-out MSE
  at most 0.1 x 1/6; an unsolved seed is censored at 5,000 steps.
* Analysis: LSTM against IndRNN: final loss (Welch, Hedges' g), solve rates (Fisher),
  time to solve (log-rank).
"""

import ml_collections


def get_config():
    return ml_collections.ConfigDict(
        {
            "name": "indrnn_adding_T1000_li",
            "reference": "indrnn+li",
            "task": "adding",
            "lengths": 1000,
            "hidden_size": 128,
            "seeds": 5,
            "seeds_per_cell": 1,
            "optimizer": "adam",
            "learning_rates": 2e-4,
            "clip": 10.0,
            "clip_mode": "value",
            "steps": 5000,
            "batch_size": 32,
            "eval_every": 250,
            "grids": [
                {"variants": "indrnn", "init": "li", "num_layers": 2},
                {"variants": "peephole"},
            ],
        }
    )
