"""Greff's ablation on the adding problem, T = 100, learning rate tuned per variant, 5,000 steps.

Protocol, fixed before the run:
* Variants: Greff et al. (2017)'s V (``peephole``), NP (``lstm``), CIFG, NIG, NFG, NOG,
  NIAF, NOAF, FGR, and the GRU. Hidden 64, one layer, RMSProp (decay 0.9), elementwise
  gradient clipping at 1, batch 50, 500 fresh held-out sequences per evaluation, an
  evaluation every 100 steps.
* Tuning: the learning rate over {3e-4, 1e-3, 3e-3} on 3 tuning seeds (1000-1002), each at
  the full budget; the value is picked by the sweep's selection rule (lowest median final
  held-out loss; ties by median steps to solve), then trained on 10 evaluation seeds (0-9).
* Budget and stopping rule: 5,000 steps for every seed, no early stop. A seed has solved
  at the first evaluation whose held-out MSE is at most 0.1 x the memoryless baseline
  (1/6); a seed that never gets there is censored at 5,000 steps.
* Analysis: time to solve (Kaplan-Meier, log-rank against V, Holm over the variants),
  solve rates (Fisher's exact test against V, Holm), final loss (Welch, Holm, Hedges' g).
"""

from experiments.studies import _greff


def get_config():
    config = _greff.config(
        "greff_adding_T100_tuned", task="adding", lengths=100, steps=5000, batch_size=50,
        eval_every=100, seeds=10, learning_rates=(3e-4, 1e-3, 3e-3),
    )  # fmt: skip
    config.variants = ("peephole", "lstm", "cifg", "nig", "nfg", "nog", "niaf", "noaf", "fgr",
                       "gru")  # fmt: skip
    config.tune = "learning_rate"
    config.tuning_seeds = 3
    return config
