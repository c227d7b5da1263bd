"""What the Greff studies share: their variants and their fixed protocol.

Greff et al. (2017)'s vanilla LSTM V (``peephole``) and its ablations (NP, V without
peepholes, is ``lstm``), then the GRU, the second round's cells and the tanh RNN. One
protocol for every variant: hidden 64, RMSProp lr 1e-3 decay 0.9, elementwise gradient
clipping at 1, 5 seeds (0-4) trained together, 500 fresh held-out sequences per seed and
evaluation.
"""

import ml_collections

VARIANTS = (
    "peephole", "lstm", "nfg", "noaf", "cifg", "nig", "nog", "niaf", "fgr", "gru", "mgu",
    "indrnn", "min_gru", "min_lstm", "slstm", "lstmp", "ln_lstm", "rnn",
)  # fmt: skip


def config(name: str, **fields) -> ml_collections.ConfigDict:
    """A Greff study: the shared protocol, then ``fields``."""
    return ml_collections.ConfigDict(
        {
            "name": name,
            "reference": "peephole",
            "variants": VARIANTS,
            "hidden_size": 64,
            "seeds": 5,
            "optimizer": "rmsprop",
            "learning_rates": 1e-3,
            "clip": 1.0,
            "clip_mode": "value",
            **fields,
        }
    )
