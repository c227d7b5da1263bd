"""Long sequences: training memory against T, with and without rematerialisation.

For an LSTM at ``B x I x H`` (default 32 x 32 x 256) and each sequence length T, compiles
the training step (loss and its gradient with respect to the parameters) of
:func:`lstmx.scan` without and with ``remat=k`` (``k = round(sqrt(T))``, the size that
minimises ``T / k + k``) and of Flax's ``nn.RNN(nn.LSTMCell)``, and reads XLA's buffer
assignment (arguments + outputs + temporaries - aliased, as the main table). Two losses:

* **last**: ``mean(h_T ** 2)``, a loss on the final state (sequence classification, the
  adding problem): with remat nothing of size T need be kept;
* **all**: ``mean(ys ** 2)`` over every output, as the main table: the outputs ``ys`` and
  their cotangent are ``[T, B, H]`` whatever the backward keeps.

At the longest T it also times a few training steps of the "last" loss with and without
remat (the price of recomputing each block's forward once more).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from experiments.benchmark.contenders import jax_memory

__all__ = ["DEFAULT_MEMORY_SHAPE", "DEFAULT_MEMORY_STEPS", "run_memory_benchmark"]

DEFAULT_MEMORY_STEPS = (1000, 2500, 5000, 10000)
DEFAULT_MEMORY_SHAPE = (32, 32, 256)  # B, I, H
_MIB = 2.0**20
LOSSES = ("last", "all")


def remat_block(steps: int) -> int:
    """The block size ``k = round(sqrt(T))`` (at least 1)."""
    return max(1, round(math.sqrt(steps)))


def _loss(contender: str, loss: str, hidden: int, inputs: int, remat: int | None):
    """``(params, loss_fn(params, xs))`` for ``lstmx`` or ``flax``."""
    key = jax.random.key(0)
    if contender == "lstmx":
        import lstmx

        cell = lstmx.lstm(hidden)
        params = cell.init(key, inputs)

        def outputs(params, xs):
            final, ys = lstmx.scan(cell, params, xs, remat=remat)
            return final.h, ys

    else:
        import flax.linen as nn

        module = nn.RNN(nn.LSTMCell(hidden), return_carry=True)
        params = module.init(key, jnp.zeros((1, 2, inputs)))

        def outputs(params, xs):
            (_, h), ys = module.apply(params, xs)
            return h, ys

    def loss_fn(params, xs):
        last, ys = outputs(params, xs)
        return jnp.mean((last if loss == "last" else ys) ** 2)

    return params, loss_fn


def _compiled(contender, loss, batch, steps, inputs, hidden, remat):
    params, loss_fn = _loss(contender, loss, hidden, inputs, remat)
    xs = jax.ShapeDtypeStruct((batch, steps, inputs), jnp.float32)
    compiled = jax.jit(jax.value_and_grad(loss_fn)).lower(params, xs).compile()
    peak_bytes, _ = jax_memory(compiled)
    return compiled, params, None if peak_bytes is None else peak_bytes / _MIB


def run_memory_benchmark(
    steps: Sequence[int] = DEFAULT_MEMORY_STEPS,
    shape: Sequence[int] = DEFAULT_MEMORY_SHAPE,
    repetitions: int = 3,
    time_interleaved: Callable | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> dict:
    """Memory rows for every T, loss and way; timing at the longest T.

    Returns:
      ``{"shape": "BxIxH", "rows": [{"steps", "loss", "contender", "remat", "peak_mib"}],
      "timing": {"steps", "remat", "plain_ms", "remat_ms", "remat_over_plain"}}``.
    """
    from experiments.benchmark.harness import time_interleaved as default_timer

    timer = time_interleaved or default_timer
    batch, inputs, hidden = shape
    rows = []
    kept = {}  # the longest T's "last"-loss programs, timed below without compiling again
    for num_steps in steps:
        log(f"  memory: compiling T = {num_steps}")
        for loss in LOSSES:
            for contender, remat in (
                ("lstmx", None),
                ("lstmx", remat_block(num_steps)),
                ("flax", None),
            ):
                compiled, params, mib = _compiled(
                    contender, loss, batch, num_steps, inputs, hidden, remat
                )
                if num_steps == max(steps) and loss == "last" and contender == "lstmx":
                    kept[remat] = compiled, params
                rows.append(
                    {
                        "steps": num_steps,
                        "loss": loss,
                        "contender": contender,
                        "remat": remat,
                        "peak_mib": mib,
                    }
                )
    timing = None
    if steps:
        longest = max(steps)
        xs = jax.random.normal(jax.random.key(1), (batch, longest, inputs))
        runs = {}
        for remat in (None, remat_block(longest)):
            compiled, params = kept[remat]
            runs[remat] = lambda compiled=compiled, params=params: jax.block_until_ready(
                compiled(params, xs)
            )
        log(f"  memory: timing T = {longest}, {repetitions} repetitions")
        times = timer({str(k): run for k, run in runs.items()}, repetitions, 1)
        plain = float(np.median(times["None"]))
        remat = float(np.median(times[str(remat_block(longest))]))
        timing = {
            "steps": longest,
            "remat": remat_block(longest),
            "plain_ms": plain,
            "remat_ms": remat,
            "remat_over_plain": remat / plain,
        }
    return {"shape": "x".join(map(str, shape)), "rows": rows, "timing": timing}
