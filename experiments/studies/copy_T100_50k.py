"""Copy memory at T = 100 at an informative budget: 50,000 steps (Arjovsky et al. 2016).

Protocol, fixed before the run:
* Variants: ``lstm``, ``lstm`` with chrono initialisation (Tallec & Ollivier 2018, t_max =
  3T/2 = 150), ``gru``, ``cifg``, ``nfg`` and ``indrnn``; 5 seeds (0-4) each.
* The Greff copy study's protocol otherwise (docs/results/greff_copy_T100): hidden 64, one
  layer, RMSProp lr 1e-3 (decay 0.9), elementwise gradient clipping at 1, batch 20, 500
  fresh held-out sequences per evaluation, an evaluation every 500 steps. Arjovsky et
  al.'s own LSTM had 40 units; this keeps the 4,000-step study's width so the two budgets
  compare.
* Budget and stopping rule: 50,000 steps for every seed (1M sequences at batch 20,
  Arjovsky et al.'s budget), no early stop. A seed has solved at the first evaluation
  whose held-out cross-entropy is at most 0.1 x the memoryless baseline (10 ln 8 / 120);
  a seed that never gets there is censored at 50,000 steps.
* Analysis: against ``lstm``: time to solve (Kaplan-Meier, log-rank, Holm), solve rates
  (Fisher's exact test, Holm), final loss (Welch, Holm, Hedges' g).
"""

import ml_collections


def get_config():
    return ml_collections.ConfigDict(
        {
            "name": "copy_T100_50k",
            "reference": "lstm",
            "task": "copy",
            "lengths": 100,
            "hidden_size": 64,
            "seeds": 5,
            "optimizer": "rmsprop",
            "learning_rates": 1e-3,
            "clip": 1.0,
            "clip_mode": "value",
            "steps": 50000,
            "batch_size": 20,
            "eval_every": 500,
            "grids": [
                {"variants": ("lstm", "gru", "cifg", "nfg", "indrnn")},
                {"variants": "lstm", "init": "chrono"},
            ],
        }
    )
