"""Chrono against the default initialisation on copy, T = 500, at Tallec & Ollivier's width.

The follow-up of ``chrono_copy_T500``, whose 20,000 steps at hidden 64 left both
initialisations at the memoryless baseline. Its protocol is fixed here, after that study's
result and before this one's first run.

Protocol:
* The LSTM (``lstm``) with the default initialisation (forget bias 1) and with chrono
  initialisation (Tallec & Ollivier 2018: ``b_f ~ log U[1, t_max - 1]``, ``b_i = -b_f``,
  t_max = 3T/2 = 750); **128 units**, as in the reproductions of their copy experiments;
  5 seeds (0-4) each, one seed per cell.
* RMSProp lr 1e-3 (decay 0.9), elementwise gradient clipping at 1, batch 20, 500 fresh
  held-out sequences per evaluation, an evaluation every 1,000 steps.
* Budget and stopping rule: **50,000 steps** for every seed (1M sequences, Arjovsky et
  al.'s budget), no early stop. Solved: held-out cross-entropy at most 0.1 x the
  memoryless baseline (10 ln 8 / 520); an unsolved seed is censored at 50,000 steps.
* Analysis: chrono against default: time to solve (log-rank), solve rates (Fisher), final
  loss (Welch, Hedges' g). If no seed of either solves, the study decides nothing about
  solving and says so.
"""

from experiments.studies import chrono_copy_T500


def get_config():
    """``chrono_copy_T500``'s study with the width, budget and evaluation interval above."""
    config = chrono_copy_T500.get_config()
    config.name = "chrono_copy_T500_h128"
    config.hidden_size = 128
    config.steps = 50000
    config.eval_every = 1000
    return config
