"""Character-level language model: text, metric, dropout, sampling, training, resume, CLI."""

import json
import math
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _cli import run_module

import lstmx
from experiments.char_lm import model as char_lm
from experiments.shared.regularization import Rates, nest_rates
from experiments.shared.resume import ConfigMismatchError

ROOT = Path(__file__).resolve().parents[1]

TINY_TEXT = "the cat sat on the mat. a cat ate the rat. " * 40
TINY = char_lm.Config(
    variant="rnn",
    num_layers=2,
    hidden_size=16,
    dropout=0.25,
    sequence_length=12,
    batch_size=8,
    steps=6,
    learning_rate=1e-2,
    eval_every=2,
    max_eval_windows=16,
)


def _corpus(config=TINY, text=TINY_TEXT):
    return char_lm.make_corpus(text, "tiny", config.sequence_length)


def _quiet(_line):
    pass


# Text ---------------------------------------------------------------------------------


def test_vocabulary_round_trip_and_unknown_characters():
    vocab = char_lm.Vocabulary.from_text("hello, wörld\n")
    assert vocab.chars == "\n ,dehlorwö"
    assert vocab.size == 11
    ids = vocab.encode("low, röd\n")
    np.testing.assert_array_equal(ids, [6, 7, 9, 2, 1, 8, 10, 3, 0])
    assert ids.dtype == np.int32
    assert vocab.decode(ids) == "low, röd\n"
    assert vocab.decode(vocab.encode("")) == ""
    with pytest.raises(ValueError, match=r"2 character\(s\) not in the vocabulary of 11: 'xz'"):
        vocab.encode("hex, zed")
    with pytest.raises(ValueError, match="ids must lie in"):
        vocab.decode([11])
    with pytest.raises(ValueError, match="sorted and distinct"):
        char_lm.Vocabulary("ba")


def test_default_corpus_is_offline_prose_and_deterministic():
    text = char_lm.default_corpus()
    assert text == char_lm.default_corpus()
    assert len(text) > 200_000
    assert 'The "if" statement' in text and "assignment statement" in text
    corpus = char_lm.make_corpus(text, char_lm.default_corpus_name(), 50)
    assert 60 <= corpus.vocab.size <= 200
    # The held-out part is the last 10 %, by position.
    assert corpus.held_out.size == round(0.1 * len(text))
    assert corpus.vocab.decode(corpus.held_out) == text[-corpus.held_out.size :]


def test_load_text_refuses_bad_files(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("ok ü\n", encoding="utf-8")
    assert char_lm.load_text(good) == "ok ü\n"
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        char_lm.load_text(bad)
    with pytest.raises(ValueError, match="does not exist"):
        char_lm.load_text(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        char_lm.load_text(tmp_path / "empty.txt")
    with pytest.raises(ValueError, match="too short for sequence_length=50"):
        char_lm.make_corpus("abc" * 100, "short", 50)


def test_eval_windows_cover_the_held_out_text_once():
    held_out = np.arange(23, dtype=np.int32)
    windows = char_lm.eval_windows(held_out, 5, max_windows=100)
    np.testing.assert_array_equal(windows[:, 0], [0, 5, 10, 15])
    np.testing.assert_array_equal(windows[:, 1:].reshape(-1), np.arange(1, 21))
    capped = char_lm.eval_windows(held_out, 5, max_windows=2)
    np.testing.assert_array_equal(capped[:, 0], [0, 15])


# Model and metric ------------------------------------------------------------------------


# One small model shared by the metric tests, so that they compile once.
METRIC_MODEL = ("lstm", 7, 5, 2)  # variant, V, H, layers
METRIC_WINDOWS = np.random.default_rng(0).integers(0, 7, size=(9, 6))


def test_uniform_model_scores_log2_vocab_bits():
    model = char_lm.make_model(*METRIC_MODEL)
    params = model.init(jax.random.key(0))
    params = params._replace(w_out=jnp.zeros_like(params.w_out))  # logits all zero
    bpc = char_lm.bits_per_character(model, params, METRIC_WINDOWS, chunk_size=4)  # padded
    np.testing.assert_allclose(bpc, math.log2(7), rtol=1e-6, atol=0)


def test_bits_per_character_is_mean_cross_entropy_over_ln2():
    model = char_lm.make_model(*METRIC_MODEL)
    params = model.init(jax.random.key(1))
    windows = jnp.asarray(METRIC_WINDOWS)
    logits = np.asarray(model.apply(params, windows[:, :-1]), np.float64)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    targets = np.asarray(windows[:, 1:])
    nats = -np.take_along_axis(log_probs, targets[..., None], -1).mean()
    np.testing.assert_allclose(
        char_lm.bits_per_character(model, params, windows, chunk_size=4),
        nats / math.log(2),
        rtol=1e-5,
        atol=0,
    )
    np.testing.assert_allclose(
        float(char_lm.cross_entropy(model, params, windows)), nats, rtol=1e-5, atol=0
    )


def test_dropout_between_layers_in_training_only():
    # Layers 1 and 2 of 3 get y * m / keep, m ~ Bernoulli(keep) drawn from fold_in(key, layer).
    keep = 0.7
    model = char_lm.make_model("rnn", vocab_size=5, hidden_size=6, num_layers=3, dropout=0.3)
    apply = jax.jit(model.apply)
    params = model.init(jax.random.key(5))
    ids = jnp.asarray([[0, 3, 1, 4], [2, 2, 0, 1]])
    key = jax.random.key(6)
    layer = lstmx.variant("rnn", 6)
    xs = jax.nn.one_hot(ids, 5)
    for index, layer_params in enumerate(params.cell.layers):
        _, xs = lstmx.scan(layer, layer_params, xs)
        if index < 2:
            mask = np.asarray(jax.random.bernoulli(jax.random.fold_in(key, index), keep, xs.shape))
            assert 0 < mask.mean() < 1
            xs = np.where(mask, np.asarray(xs) / keep, 0.0)
    expected = np.asarray(xs @ params.w_out) + np.asarray(params.b_out)
    train_logits = apply(params, ids, key)
    np.testing.assert_allclose(train_logits, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(train_logits - apply(params, ids, jax.random.key(7)))).max() > 1e-3
    # Evaluation (no key): no dropout, exactly the stacked cell through lstmx.scan, and the
    # sampler's one-step function agrees.
    _, ys = lstmx.scan(model.cell, params.cell, jax.nn.one_hot(ids, 5))
    eval_logits = apply(params, ids)
    expected = np.asarray(ys @ params.w_out) + np.asarray(params.b_out)
    np.testing.assert_allclose(eval_logits, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(train_logits - eval_logits)).max() > 1e-3
    _, step_logits = model.step(params, model.initial_state((2,)), ids[:, 0])
    np.testing.assert_allclose(step_logits, eval_logits[:, 0], rtol=1e-5, atol=1e-6)
    # dropout=0: the key changes nothing.
    plain = char_lm.make_model("rnn", vocab_size=5, hidden_size=6, num_layers=3, dropout=0.0)
    np.testing.assert_allclose(plain.apply(params, ids, key), eval_logits, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="dropout acts between stacked layers"):
        char_lm.make_model("lstm", vocab_size=9, hidden_size=6, num_layers=1, dropout=0.1)
    with pytest.raises(ValueError, match=r"dropout must lie in \[0, 1\)"):
        char_lm.make_model("lstm", vocab_size=9, hidden_size=6, num_layers=2, dropout=1.0)


# Sampling --------------------------------------------------------------------------------


def test_sampling_validates_is_reproducible_and_greedy_when_cold():
    corpus = _corpus()
    model = char_lm.make_model("gru", corpus.vocab.size, 8, 2)
    params = model.init(jax.random.key(0))
    key = jax.random.key(7)
    text = char_lm.sample(model, params, corpus.vocab, "the ", 12, 1.0, key)
    assert len(text) == 12 and set(text) <= set(corpus.vocab.chars)
    assert text == char_lm.sample(model, params, corpus.vocab, "the ", 12, 1.0, key)
    others = {
        char_lm.sample(model, params, corpus.vocab, "the ", 12, 1.0, jax.random.key(k))
        for k in range(3)
    }
    assert len(others) > 1
    assert char_lm.sample(model, params, corpus.vocab, "the ", 0, 1.0, key) == ""
    # Temperature -> 0 is argmax decoding: compare with a greedy loop over model.step.
    cold = char_lm.sample(model, params, corpus.vocab, "the ", 12, 1e-4, key)
    state = model.initial_state()
    for char in corpus.vocab.encode("the "):
        state, logits = model.step(params, state, char)
    greedy = []
    for _ in range(12):
        greedy.append(int(jnp.argmax(logits)))
        state, logits = model.step(params, state, jnp.asarray(greedy[-1]))
    assert cold == corpus.vocab.decode(greedy)
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            char_lm.sample(model, params, corpus.vocab, "the ", 5, bad, key)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        char_lm.sample(model, params, corpus.vocab, "THE", 5, 1.0, key)
    with pytest.raises(ValueError, match="prompt must be a non-empty string"):
        char_lm.sample(model, params, corpus.vocab, "", 5, 1.0, key)


# Training, resume, records -----------------------------------------------------------


def test_loss_decreases_on_a_tiny_corpus():
    corpus = _corpus()
    trainer = char_lm.make_trainer(TINY, corpus)  # compiled once, shared with the resume test
    state = trainer.init()
    before = float(trainer.evaluate(state)["held_out_bpc"][0])
    losses = []
    for _ in range(25):
        state, chunk = trainer.train(state, 2)
        losses.extend(np.asarray(chunk)[:, 0].tolist())  # [steps, seeds=1]
    after = float(trainer.evaluate(state)["held_out_bpc"][0])
    assert before == pytest.approx(math.log2(corpus.vocab.size), abs=0.6)
    assert after < 0.7 * before
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:4])


def _without_times(record):
    record = json.loads(json.dumps(record))
    for key in ("wall_time", "steps_per_second", "versions"):
        record.pop(key)
    for point in record["history"]:
        point.pop("wall_time")
        point.pop("steps_per_second")
    return record


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path):
    corpus = _corpus()
    options = {"prompt": "the ", "sample_length": 30}
    whole = char_lm.run_char_lm(TINY, corpus, tmp_path / "a", **options, log=_quiet)
    lines = []
    stopped = char_lm.run_char_lm(
        TINY, corpus, tmp_path / "b", **options, log=lines.append, stop_after=2
    )
    assert stopped is None
    assert not char_lm.record_path(tmp_path / "b", "rnn").exists()
    assert char_lm.checkpoint_path(tmp_path / "b", "rnn").exists()
    resumed = char_lm.run_char_lm(TINY, corpus, tmp_path / "b", **options, log=lines.append)
    assert "resumed from step 2 (char_lm_rnn.msgpack)" in lines
    assert _without_times(resumed) == _without_times(whole)
    on_disk = json.loads(char_lm.record_path(tmp_path / "b", "rnn").read_text())
    assert on_disk["format"] == char_lm.RECORD_FORMAT
    assert [p["step"] for p in on_disk["history"]] == [2, 4, 6]
    assert on_disk["final_bpc"] == on_disk["history"][-1]["held_out_bpc"]
    assert on_disk["uniform_bpc"] == pytest.approx(math.log2(corpus.vocab.size))
    assert on_disk["corpus"]["sha256"] == corpus.sha256
    assert len(on_disk["samples"][0]["text"]) == 30
    # Finished: started again it only samples, here with another temperature.
    again = char_lm.run_char_lm(
        TINY, corpus, tmp_path / "b", prompt="cat ", temperature=0.5, sample_length=30, log=_quiet
    )
    assert again["history"] == resumed["history"]
    assert again["samples"][0]["temperature"] == 0.5
    # Asking for more steps trains on, as if they had been asked for from the start.
    short = char_lm.Config(**{**TINY.to_dict(), "steps": 4})
    char_lm.run_char_lm(short, corpus, tmp_path / "c", **options, log=_quiet)
    longer = char_lm.run_char_lm(TINY, corpus, tmp_path / "c", **options, log=_quiet)
    assert _without_times(longer) == _without_times(whole)
    with pytest.raises(ConfigMismatchError, match="trained for 6 steps"):
        char_lm.run_char_lm(short, corpus, tmp_path / "c", **options, log=_quiet)
    # Other settings or another text in the same workdir are refused.
    with pytest.raises(ConfigMismatchError, match="hidden_size: 16 on disk"):
        other = char_lm.Config(**{**TINY.to_dict(), "hidden_size": 8})
        char_lm.run_char_lm(other, corpus, tmp_path / "b", prompt="the ", log=_quiet)
    with pytest.raises(ConfigMismatchError, match="corpus text differs"):
        char_lm.run_char_lm(
            TINY, _corpus(text=TINY_TEXT + "!"), tmp_path / "b", prompt="the ", log=_quiet
        )
    with pytest.raises(ValueError, match="the prompt has 1 character"):
        char_lm.run_char_lm(TINY, corpus, tmp_path / "b", prompt="Q", log=_quiet)


def test_config_refuses_bad_settings():
    with pytest.raises(ValueError, match="Unknown variant 'lstn'"):
        char_lm.Config(variant="lstn")
    with pytest.raises(ValueError, match="learning_rate must be a positive finite number"):
        char_lm.Config(learning_rate=0.0)
    with pytest.raises(ValueError, match="dropout acts between stacked layers"):
        char_lm.Config(num_layers=1, dropout=0.2)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        char_lm.Config(optimizer="lbfgs")
    with pytest.raises(ValueError, match=r"zoneout_h must lie in \[0, 1\], got 1.5"):
        char_lm.Config(rates=Rates(zoneout_h=1.5))
    with pytest.raises(ValueError, match=r"input_dropout must lie in \[0, 1\), got 1"):
        char_lm.Config(rates={"input_dropout": 1})
    with pytest.raises(ValueError, match="variant 'gru' cannot take zoneout_c=0.1: .* no 'c'"):
        char_lm.Config(variant="gru", rates=Rates(zoneout_c=0.1))


def test_regularisers_label_the_run_and_rates_of_zero_change_nothing():
    zeros = dict(zoneout_h=0.0, zoneout_c=0.0, input_dropout=0.0, recurrent_dropout=0.0)
    plain = char_lm.Config(**nest_rates({**TINY.to_dict(), **zeros}))
    assert plain == TINY and plain.label == "rnn" and plain.to_dict().keys().isdisjoint(zeros)
    regularized = char_lm.Config(variant="lstm", rates=Rates(zoneout_h=0.1, zoneout_c=0.05))
    assert regularized.label == "lstm+zoneout_h0.1+zoneout_c0.05"
    assert regularized.to_dict()["zoneout_c"] == 0.05
    # Masks with a recurrent key (training); without one the expectation, here the plain model.
    plain_model = char_lm.make_model("lstm", 5, 4)
    dropped = char_lm.make_model("lstm", 5, 4, rates=Rates(recurrent_dropout=0.5))
    params = plain_model.init(jax.random.key(0))
    ids = jnp.arange(12).reshape(2, 6) % 5
    expected = plain_model.apply(params, ids)
    chex.assert_trees_all_close(dropped.apply(params, ids), expected, rtol=1e-6, atol=1e-6)
    trained = dropped.apply(params, ids, recurrent_key=jax.random.key(1))
    assert not np.allclose(trained, expected, rtol=1e-4, atol=1e-6)


# Command line --------------------------------------------------------------------------


def _run(*flags):
    return run_module("experiments.char_lm", *flags)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--variant=lstn"], "--variant must be one of: rnn, lstm"),
        (["--num_layers=1", "--dropout=0.2"], "--dropout acts between stacked layers"),
        (["--text_file=/nonexistent/book.txt"], "does not exist"),
        (["--prompt=\u2603"], "--prompt has 1 character(s) not in the vocabulary"),
    ],
)
def test_bad_flags_exit_with_one_line(flags, message, tmp_path):
    result = _run(*flags, f"--workdir={tmp_path / 'w'}")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "rror" in line]
    assert len(error_lines) == 1, result.stderr


def test_tiny_cli_run_on_a_text_file(tmp_path):
    text_file = tmp_path / "tiny.txt"
    text_file.write_text(TINY_TEXT, encoding="utf-8")
    flags = [
        f"--text_file={text_file}",
        "--variant=rnn",
        "--num_layers=2",
        "--dropout=0.1",
        "--hidden_size=8",
        "--sequence_length=10",
        "--batch_size=4",
        "--steps=4",
        "--eval_every=2",
        "--prompt=the ",
        "--sample_length=20",
        # the recurrent regularisers too (a plain run: test_default_prompt_comes_from_the_text)
        "--zoneout_h=0.1",
        "--input_dropout=0.1",
        "--recurrent_dropout=0.2",
        f"--workdir={tmp_path / 'w'}",
    ]
    result = _run(*flags)
    assert result.returncode == 0, result.stderr
    label = "rnn+zoneout_h0.1+indrop0.1+recdrop0.2"
    assert f"char_lm {label} step      2/4" in result.stdout and "held-out bpc" in result.stdout
    assert "sample (temperature 1):\nthe " in result.stdout
    record = json.loads((tmp_path / "w" / f"char_lm_{label}.json").read_text())
    assert record["corpus"]["name"] == str(text_file)
    assert record["config"]["dropout"] == 0.1
    assert (record["config"]["zoneout_h"], record["config"]["recurrent_dropout"]) == (0.1, 0.2)
    assert "zoneout_c" not in record["config"]  # rates of 0 are left out


def test_default_prompt_comes_from_the_text(tmp_path):
    # Three distinct characters, none of them in "The ": the old fixed default prompt.
    text = "ab\nba\naab\nbba\n" * 60
    corpus = char_lm.make_corpus(text, "few", 8)
    prompt = char_lm.default_prompt(corpus)
    assert len(prompt) == 4 and set(prompt) <= {"a", "b", "\n"}
    held_out = corpus.vocab.decode(corpus.held_out)
    start = held_out.index("\n") + 1
    assert prompt == held_out[start : start + 4]  # a line start of the held-out text
    assert char_lm.default_prompt(char_lm.make_corpus("abcabc" * 30, "one line", 8)) == "abca"
    text_file = tmp_path / "mine.txt"
    text_file.write_text(text, encoding="utf-8")
    result = _run(
        f"--text_file={text_file}",
        "--variant=rnn",
        "--num_layers=1",
        "--hidden_size=4",
        "--sequence_length=8",
        "--batch_size=2",
        "--steps=2",
        "--eval_every=2",
        "--sample_length=5",
        f"--workdir={tmp_path / 'w'}",
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "w" / "char_lm_rnn.json").read_text())
    assert record["samples"][0]["prompt"] == prompt
    assert f"sample (temperature 1):\n{prompt}" in result.stdout
