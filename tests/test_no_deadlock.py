"""No batched LAPACK call in any initialisation, and the multi-seed start that hung runs.

On XLA:CPU (jaxlib 0.10.2) a batched LAPACK kernel (the QR behind the orthogonal
initialiser, under ``jit(vmap(...))``) splits its batch over the intra-op thread pool it
runs on and blocks waiting for it; a few of them at once can deadlock the process, about
one launch in four on 2 cores. lstmx's initialisers map their QRs one key at a time
(:func:`lstmx.cells.base.orthogonal`). The first test reads the compiled programs, so it
finds a batched LAPACK call deterministically; the second runs the forms that hung, in a
subprocess under a timeout, so a regression fails instead of hanging the suite.
"""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import pytest

import lstmx
from experiments.run import model

ROOT = Path(__file__).resolve().parents[1]
_LAPACK_CALL = re.compile(r"custom_call @(lapack_\w+)\(.*?num_batch_dims = \"(\d+)\"")


def _batched_lapack_calls(lowered_text: str) -> list[str]:
    """The LAPACK custom calls of a lowered program that take a batch of matrices."""
    return [
        f"{name} (batch dims {dims})"
        for name, dims in _LAPACK_CALL.findall(lowered_text)
        if int(dims) > 0
    ]


def test_the_check_sees_a_batched_qr():
    # The form that deadlocks: jax's own initialiser under vmap lowers to a batched QR.
    keys = jax.random.split(jax.random.key(0), 5)
    orthogonal = jax.nn.initializers.orthogonal()
    text = jax.jit(jax.vmap(lambda key: orthogonal(key, (8, 8)))).lower(keys).as_text()
    assert _batched_lapack_calls(text) == [
        "lapack_sgeqrf_ffi (batch dims 1)",
        "lapack_sorgqr_ffi (batch dims 1)",
    ]


@pytest.mark.parametrize("name", lstmx.variant_names())
def test_vmapped_init_has_no_batched_lapack_call(name):
    cell = lstmx.variant(name, 8)
    keys = jax.random.split(jax.random.key(0), 5)
    one = jax.jit(jax.vmap(lambda key: cell.init(key, 3))).lower(keys).as_text()
    nested = jax.jit(jax.vmap(jax.vmap(lambda key: cell.init(key, 3))))
    two = nested.lower(keys.reshape(5, 1)).as_text()
    # Every cell with recurrent matrices draws them orthogonal (IndRNN's and minGRU's
    # recurrences are diagonal or absent).
    assert ("lapack_" in one) == (not name.startswith(("indrnn", "min_")))
    assert _batched_lapack_calls(one) == []
    assert _batched_lapack_calls(two) == []


@pytest.mark.parametrize("variant", ["lstm", "gru", "slstm"])
def test_multi_seed_trainer_init_has_no_batched_lapack_call(variant):
    config = model.Config(
        task="adding",
        variant=variant,
        length=5,
        steps=2,
        batch_size=2,
        hidden_size=8,
        eval_every=1,
        eval_batch_size=2,
        seeds=(0, 1, 2, 3, 4),
        num_layers=2,
    )
    text = model.make_trainer(config).init.lower().as_text()
    assert "lapack_" in text and _batched_lapack_calls(text) == []


_HUNG_FORMS = textwrap.dedent(
    """
    import jax
    import lstmx
    from experiments.run import model

    key = jax.random.key(0)
    # The reduced report: a fresh compiled program per size, each executed once (the
    # first execution of a program is where the deadlock struck).
    for size in range(16, 20):
        init = jax.jit(jax.vmap(lambda k: lstmx.lstm(size).init(k, 2)))
        jax.block_until_ready(init(jax.random.split(jax.random.fold_in(key, size), 5)))
    for name in ("gru", "slstm", "mgu", "rnn"):
        init = jax.jit(jax.vmap(lambda k: lstmx.variant(name, 24).init(k, 2)))
        jax.block_until_ready(init(jax.random.split(key, 5)))
    config = model.Config(task="adding", variant="lstm", length=100, steps=20,
                          batch_size=50, hidden_size=64, eval_every=10,
                          eval_batch_size=50, seeds=(0, 1, 2, 3, 4))
    jax.block_until_ready(model.make_trainer(config).init())
    print("finished")
    """
)


def test_the_forms_that_hung_finish_in_a_subprocess():
    result = subprocess.run(
        [sys.executable, "-c", _HUNG_FORMS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "finished"
