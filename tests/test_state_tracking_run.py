"""experiments.run on the state-tracking tasks: the answer position, the test, the records
and their comparison."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.compare import report
from experiments.run import loop, model
from experiments.shared.training import apply_readout, init_readout
from lstmx import tasks


def _config(**change):
    base = dict(task="parity", variant="lstm", length=6, hidden_size=5, seeds=(0, 1),
                steps=6, eval_every=3, batch_size=8, eval_batch_size=16,
                test_lengths="7-15:4", test_batch_size=8)  # fmt: skip
    return model.Config(**{**base, **change})


@pytest.mark.parametrize(
    "text, lengths",
    [("41-500", tuple(range(41, 501))), ("41-60:10", (41, 51, 60)), ("7", (7,)),
     ("41-61:10", (41, 51, 61))],
)  # fmt: skip
def test_parse_test_lengths(text, lengths):
    assert model.parse_test_lengths(text) == lengths


@pytest.mark.parametrize("task", tasks.STATE_TRACKING_TASKS)
def test_loss_reads_the_answer_token_after_each_string(task):
    """Against a Python loop of cell.step over each string, then the answer token."""
    config = _config(task=task)
    cell = model.make_cell(config)
    spec = tasks.state_tracking_task(task)
    params = init_readout(jax.random.key(1), cell, spec.vocab_size + 1, spec.num_classes)
    lengths = jnp.array([1, 4, 6, 3])
    batch = spec.generate(jax.random.key(2), 4, 6, lengths, 5)
    loss, accuracy = model.state_tracking_loss_and_accuracy(config, cell, params, batch)
    losses, hits = [], []
    for row, n, label in zip(np.asarray(batch.tokens), np.asarray(batch.lengths), batch.labels):
        state = cell.initial_state(())
        for symbol in [*row[:n], spec.vocab_size]:  # the string, then the answer token
            state, y = cell.step(params.cell, state, jax.nn.one_hot(symbol, spec.vocab_size + 1))
        logits = apply_readout(params, y)
        losses.append(-jax.nn.log_softmax(logits)[label])
        hits.append(int(jnp.argmax(logits)) == int(label))
    np.testing.assert_allclose(loss, np.mean(losses), rtol=1e-5)
    assert float(accuracy) == np.mean(hits)


def test_tester_gives_one_accuracy_per_seed_and_length_and_is_deterministic():
    config = _config()
    state = model.make_trainer(config).init()
    test = model.make_tester(config)
    first, again = np.asarray(test(state.params)), np.asarray(test(state.params))
    assert first.shape == (2, 3)  # seeds x (7, 11, 15)
    np.testing.assert_array_equal(first, again)
    assert ((first >= 0) & (first <= 1)).all()
    assert (first * config.test_batch_size == np.round(first * config.test_batch_size)).all()


def test_state_tracking_settings_are_left_out_of_other_tasks_records():
    adding = model.Config(task="adding", length=10, hidden_size=4, seeds=(0,))
    assert not {"test_lengths", "test_batch_size", "modulus"} & set(adding.to_dict())
    assert {"test_lengths", "test_batch_size", "modulus"} <= set(_config().to_dict())


def test_baseline_and_chance():
    assert model.task_baseline("parity", 40) == pytest.approx(np.log(2))
    assert model.task_baseline("modular_arithmetic", 40) == pytest.approx(np.log(5))
    assert model.task_chance("cycle_navigation") == pytest.approx(0.2)
    assert model.task_chance("even_pairs") == 0.5


def test_run_writes_test_accuracy_per_length_and_compare_tabulates_the_score(tmp_path):
    configs = [_config(), _config(variant="rnn")]
    for config in configs:
        loop.run_variant(config, tmp_path, log=lambda line: None)
    record = json.loads((tmp_path / "records" / "parity_T6_lstm_seed1.json").read_text())
    assert record["chance"] == 0.5
    assert record["test"]["lengths"] == [7, 11, 15]
    assert record["test"]["score"] == pytest.approx(np.mean(record["test"]["accuracy"]))
    records, problems = report.load_records(tmp_path)
    assert not problems and len(records) == 4
    rows = report.summarise_scores(records, reference="lstm")
    assert [r["row"] for r in rows] == ["lstm", "rnn"]
    lstm = [r["test"]["score"] for r in records if r["variant"] == "lstm"]
    assert rows[0]["score_mean"] == pytest.approx(np.mean(lstm))
    assert rows[0]["score_max"] == max(lstm)
    tables, written = report.write_summary(records, problems, tmp_path, reference="lstm")
    assert "## parity: trained on lengths 1–6, tested on 7-15:4" in tables
    names = {p.name for p in written}
    assert {"scores.csv", "accuracy_by_length_parity_T6.png"} <= names


def test_rerun_reproduces_the_test(tmp_path):
    config = _config()  # the trainer and tester compiled above are reused
    first = loop.run_variant(config, tmp_path / "a", log=lambda line: None)
    second = loop.run_variant(config, tmp_path / "b", log=lambda line: None)
    assert [r["test"] for r in first] == [r["test"] for r in second]
