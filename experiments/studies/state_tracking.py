"""State tracking: Delétang et al. (2023)'s regular tasks, trained on lengths 1-40, tested to 500.

Protocol, fixed before the run:
* Tasks (``lstmx.tasks``, as their code defines them): parity check, modular arithmetic
  (bracket-free, modulus 5), cycle navigation (cycle of 5), even pairs. Training strings
  of lengths drawn uniformly from 1 to 40, one answer token after each string, the loss
  and accuracy at that token.
* Variants: lstm, gru, rnn (tanh), slstm (sigmoid forget gate) and slstm_exp (exponential
  forget gate), min_gru, min_lstm, mgu, indrnn, cifg. Hidden 64, one layer (Delétang et
  al.: 256; a quarter to fit the CPU).
* Added on 6 December 2026 with ``--grow``, after 19 of the first variants' parity tuning
  cells had run and before any of theirs: min_gru_neg and min_lstm_neg, minGRU and minLSTM
  with Grazzi et al. (2025)'s transition in (-1, 1), under the same protocol, to test
  their fix against min_gru and min_lstm (their prediction: parity becomes solvable;
  counting modulo 3 or more needs non-triangular transitions, so the modulus-5 tasks should
  stay out of reach of a diagonal one).
* Optimiser: Adam, gradient clipping to global norm 1 (as their code), batch 128 (theirs),
  3,000 steps for every seed (theirs: 1,000,000; what fits 2 cores), no early stop. An
  in-distribution evaluation on 500 fresh strings every 250 steps.
* Tuning: the learning rate over {3e-4, 1e-3, 3e-3} per task and variant on 3 tuning
  seeds (1000-1002), picked by the sweep's selection rule on the in-distribution held-out
  loss (the test lengths are never looked at), then 10 evaluation seeds (0-9).
* Test after training: 128 fresh strings at each of the lengths 41, 51, ..., 491 and 500
  (every tenth length of Delétang et al.'s 41-500, and the last). Score = the mean
  accuracy over those lengths; chance 0.5 (parity, even pairs) and 0.2 (modulus 5).
* Analysis (``experiments.compare``): per task, the score's mean with a bootstrap CI,
  median and maximum (Delétang et al. report the maximum over seeds and learning rates);
  seeds with score >= 0.9 counted and tested with Fisher's exact test against the lstm;
  Welch's test of the score and Hedges' g against the lstm, Holm over the variants.
* Verdicts on the published claims (``experiments.compare --claims=state_tracking``):
  the rule of ``experiments.compare.state_claims``, written before any evaluation cell
  ran (only tuning cells had): Delétang et al.'s "the RNN and the LSTM generalise" per
  task, Beck et al.'s "the sLSTM solves it where minGRU / minLSTM do not" per task,
  Merrill et al.'s and Grazzi et al.'s on parity.
"""

import ml_collections


def get_config():
    return ml_collections.ConfigDict(
        {
            "name": "state_tracking",
            "reference": "lstm",
            "task": ("parity", "modular_arithmetic", "cycle_navigation", "even_pairs"),
            "variants": (
                "lstm",
                "gru",
                "rnn",
                "slstm",
                "slstm_exp",
                "min_gru",
                "min_lstm",
                "mgu",
                "indrnn",
                "cifg",
                "min_gru_neg",  # grown: appended, so every earlier cell keeps its id
                "min_lstm_neg",
            ),  # fmt: skip
            "lengths": 40,
            "hidden_size": 64,
            "optimizer": "adam",
            "clip": 1.0,
            "clip_mode": "global_norm",
            "batch_size": 128,
            "steps": 3000,
            "eval_every": 250,
            "eval_batch_size": 500,
            "test_lengths": "41-500:10",
            "test_batch_size": 128,
            "learning_rates": (3e-4, 1e-3, 3e-3),
            "tune": "learning_rate",
            "tuning_seeds": 3,
            "seeds": 10,
        }
    )
