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
* Verdicts on Greff et al.'s claims (rule written down on 2026-12-06, while the tuning
  cells trained and before any evaluation seed had): the primary endpoint is time to
  solve, the log-rank test against V with Holm over the 9 comparisons of the table; final
  loss (Welch, Holm, Hedges' g) and solve counts (Fisher, Holm) are reported beside it.
  "X hurts" (NFG, NOAF) is *agreed* when X is slower than V with Holm p <= 0.05, *not*
  when X is faster with Holm p <= 0.05, and *undecided* otherwise. "X does not hurt"
  (CIFG, NP) is *not* when X is slower with Holm p <= 0.05 and otherwise *agreed*, with
  the power stated beside it (a failure to find harm, not a proof of none). "Peepholes
  do not matter" (NP against V) is *not* when the two differ either way with Holm p <=
  0.05, otherwise agreed in the same sense. If V solves none of its seeds, every verdict
  is undecided: a budget nobody solves decides nothing.
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
