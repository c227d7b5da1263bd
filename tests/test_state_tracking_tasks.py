"""lstmx.tasks' state-tracking generators against plain-Python definitions of the tasks.

The references restate Delétang et al. 2023's task definitions on Python strings, with
nothing shared with lstmx: a count of 1s, a count of unequal neighbours, a walk on the
cycle, and Python's own ``eval`` of the arithmetic expression (its precedence is the
task's: ``*`` before ``+`` and ``-``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstmx import tasks


def _parity(symbols):
    return symbols.count(1) % 2


def _even_pairs(symbols):
    text = "".join(map(str, symbols))
    unequal = sum(text[i : i + 2] in ("01", "10") for i in range(len(text) - 1))
    return unequal % 2


def _cycle(symbols, cycle_length=5):
    position = 0
    for action in symbols:
        position = (position + {0: -1, 1: 0, 2: 1}[action]) % cycle_length
    return position


def _modular(symbols, modulus=5):
    names = {modulus + i: op for op, i in tasks.MODULAR_OPERATORS.items()}
    text = "".join(names[s] if i % 2 else str(s) for i, s in enumerate(symbols))
    return eval(text) % modulus  # Python's precedence is the task's


REFERENCES = {
    "parity": (_parity, tasks.parity_check, 2),
    "even_pairs": (_even_pairs, tasks.even_pairs, 2),
    "cycle_navigation": (_cycle, tasks.cycle_navigation, 3),
    "modular_arithmetic": (_modular, tasks.modular_arithmetic, 5),
}


def _strings(batch):
    tokens, lengths = np.asarray(batch.tokens), np.asarray(batch.lengths)
    return [list(map(int, row[:n])) for row, n in zip(tokens, lengths)]


@pytest.mark.parametrize("name", list(REFERENCES))
def test_labels_match_the_definition_on_drawn_strings(name):
    reference, generate, _ = REFERENCES[name]
    key = jax.random.key(3)
    lengths = tasks.sample_lengths(jax.random.key(4), 400, 40)
    batch = jax.jit(generate, static_argnums=(1, 2))(key, 400, 40, lengths)
    strings = _strings(batch)
    assert [reference(s) for s in strings] == np.asarray(batch.labels).tolist()
    tokens, n = np.asarray(batch.tokens), np.asarray(batch.lengths)
    assert all((row[k:] == tasks.PAD).all() for row, k in zip(tokens, n))


@pytest.mark.parametrize("name", list(REFERENCES))
def test_symbols_are_uniform_and_of_the_right_alphabet(name):
    _, generate, alphabet = REFERENCES[name]
    batch = generate(jax.random.key(0), 300, 60)
    strings = _strings(batch)
    if name == "modular_arithmetic":
        numbers = [s for row in strings for s in row[0::2]]
        operators = [s for row in strings for s in row[1::2]]
        assert sorted(set(numbers)) == list(range(5))
        assert sorted(set(operators)) == [5, 6, 7]
        assert all(len(row) == 59 for row in strings)  # an even length drops its last token
        return
    symbols = np.concatenate(strings)
    counts = np.bincount(symbols, minlength=alphabet)
    assert len(counts) == alphabet
    np.testing.assert_allclose(counts / counts.sum(), 1 / alphabet, atol=0.02)


def test_the_references_give_the_papers_examples():
    assert _modular([1, 5, 2, 7, 3]) == 2  # 1 + 2 * 3 = 7 = 2 (mod 5)
    assert _modular([1, 6, 1, 6, 1]) == 4  # 1 - 1 - 1 = -1 = 4 (mod 5)
    assert _modular([0, 7, 1, 5, 4, 7, 3, 6, 2]) == 0  # 0 * 1 + 4 * 3 - 2 = 10
    assert _parity([1, 0, 1, 0, 1, 0, 0]) == 1
    assert _even_pairs([0, 0, 1, 1, 1, 0]) == 0
    assert _even_pairs([0, 1, 0, 1, 0, 0, 1]) == 1


def test_lengths_none_is_the_full_length_and_other_sizes():
    batch = tasks.cycle_navigation(jax.random.key(1), 200, 17, cycle_length=7)
    assert (np.asarray(batch.lengths) == 17).all()
    assert [_cycle(s, 7) for s in _strings(batch)] == np.asarray(batch.labels).tolist()
    batch = tasks.modular_arithmetic(jax.random.key(2), 200, 11, modulus=3)
    assert [_modular(s, 3) for s in _strings(batch)] == np.asarray(batch.labels).tolist()


def test_sample_lengths_is_uniform_over_one_to_max():
    lengths = np.asarray(tasks.sample_lengths(jax.random.key(0), 20000, 40))
    assert lengths.min() == 1 and lengths.max() == 40
    np.testing.assert_allclose(np.bincount(lengths)[1:] / 20000, 1 / 40, atol=0.006)


def test_state_tracking_task_table():
    assert tasks.STATE_TRACKING_TASKS == (
        "parity", "modular_arithmetic", "cycle_navigation", "even_pairs",
    )  # fmt: skip
    sizes = {n: tasks.state_tracking_task(n)[1:] for n in tasks.STATE_TRACKING_TASKS}
    assert sizes == {
        "parity": (2, 2), "modular_arithmetic": (9, 5), "cycle_navigation": (3, 5),
        "even_pairs": (2, 2),
    }  # fmt: skip
    task = tasks.state_tracking_task("modular_arithmetic", modulus=7)
    batch = task.generate(jax.random.key(0), 50, 9, None, 7)
    assert [_modular(s, 7) for s in _strings(batch)] == np.asarray(batch.labels).tolist()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: tasks.state_tracking_task("dyck"), "unknown state-tracking task 'dyck'"),
        (lambda: tasks.state_tracking_task("parity", modulus=1), "modulus"),
        (lambda: tasks.modular_arithmetic(jax.random.key(0), 2, 5, modulus=1), "modulus"),
        (lambda: tasks.cycle_navigation(jax.random.key(0), 2, 5, cycle_length=0), "cycle"),
        (lambda: tasks.parity_check(jax.random.key(0), 2, 0), "length"),
        (lambda: tasks.parity_check(jax.random.key(0), 0, 3), "batch_size"),
        (lambda: tasks.parity_check(jax.random.key(0), 2, 3, jnp.ones(3, int)), r"\[2\]"),
        (lambda: tasks.parity_check(jax.random.key(0), 2, 3, jnp.ones(2)), "integer"),
        (lambda: tasks.sample_lengths(jax.random.key(0), 2, 0), "max_length"),
    ],
)
def test_bad_sizes_are_refused_clearly(call, match):
    with pytest.raises(ValueError, match=match):
        call()
