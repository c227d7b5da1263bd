"""Chrono initialisation against the default on copy, T = 500 (Tallec & Ollivier 2018).

Protocol, fixed before the run:
* The LSTM (``lstm``) with the default initialisation (forget bias 1) and with chrono
  initialisation (``b_f ~ log U[1, t_max - 1]``, ``b_i = -b_f``, t_max = 3T/2 = 750);
  5 seeds (0-4) each, one seed per cell so that each cell fits a working session.
* The Greff copy protocol otherwise: hidden 64, RMSProp lr 1e-3 (decay 0.9), elementwise
  gradient clipping at 1, batch 20, 500 fresh held-out sequences per evaluation, an
  evaluation every 500 steps.
* Budget and stopping rule: 20,000 steps for every seed (400,000 sequences), no early
  stop: a seed trains at about 8.5 steps/s on one core of the 2-core host, so a cell
  takes about 40 minutes and the study about 7 process-hours, as much as the cores allow
  beside the other studies. Solved: held-out cross-entropy at
  most 0.1 x the memoryless baseline (10 ln 8 / 520); an unsolved seed is censored at
  20,000 steps.
* Analysis: chrono against default: final loss (Welch, Hedges' g), solve rates (Fisher),
  time to solve (log-rank).
"""

import ml_collections


def get_config():
    return ml_collections.ConfigDict(
        {
            "name": "chrono_copy_T500",
            "reference": "lstm",
            "task": "copy",
            "lengths": 500,
            "variants": "lstm",
            "init": ("default", "chrono"),
            "hidden_size": 64,
            "seeds": 5,
            "seeds_per_cell": 1,
            "optimizer": "rmsprop",
            "learning_rates": 1e-3,
            "clip": 1.0,
            "clip_mode": "value",
            "steps": 20000,
            "batch_size": 20,
            "eval_every": 500,
        }
    )
