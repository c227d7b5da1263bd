"""State tracking at ten times the budget, on the two tasks that 3,000 steps left undecided.

The follow-up of ``state_tracking``. There no variant generalised on modular arithmetic or
cycle navigation in 3,000 steps, so the study's rule decided nothing on either, while the
in-distribution held-out accuracy was still rising at the last step (modular arithmetic:
lstm 0.43 at step 2,000, 0.88 at 3,000; cycle navigation: rnn 0.69, 0.79). Parity and even
pairs were decided there and are not rerun. This protocol is fixed after that study's
result and before this one's first run.

Protocol:
* Tasks: modular arithmetic (bracket-free, modulus 5) and cycle navigation (cycle of 5),
  as in ``state_tracking``: training lengths 1-40, tested on 128 fresh strings at each of
  the lengths 41, 51, ..., 491 and 500; score = the mean accuracy over those lengths.
* Variants: the rows the published claims name, lstm and rnn (Delétang et al.), slstm
  (Beck et al.) against min_gru and min_lstm, and gru beside them. Hidden 64, one layer.
* Optimiser: Adam, global-norm clip 1, batch 128, as ``state_tracking``.
* Budget and stopping rule: **30,000 steps** for every seed, no early stop; an
  in-distribution evaluation on 500 fresh strings every 1,000 steps.
* Tuning: the learning rate over {1e-3, 3e-3} (``state_tracking`` picked 3e-3, its largest,
  for every variant and task at 3,000 steps; a ten times longer run may want a smaller
  one) on 3 tuning seeds (1000-1002), by the sweep's rule on the in-distribution held-out
  loss; then **5 evaluation seeds** (0-4; half of ``state_tracking``'s, to fit the budget:
  5 of 5 against 0 of 5 generalised is still Fisher p = 0.008).
* Analysis and verdicts: as ``state_tracking`` (``experiments.compare
  --claims=state_tracking``, the rule of ``experiments.compare.state_claims``); the claims
  on parity have no rows here and are not taken.
"""

from experiments.studies import state_tracking


def get_config():
    """``state_tracking``'s study with the tasks, variants and budget above."""
    config = state_tracking.get_config()
    config.name = "state_tracking_30k"
    config.task = ("modular_arithmetic", "cycle_navigation")
    config.variants = ("lstm", "rnn", "gru", "slstm", "min_gru", "min_lstm")
    config.steps = 30000
    config.eval_every = 1000
    config.learning_rates = (1e-3, 3e-3)
    config.seeds = 5
    return config
