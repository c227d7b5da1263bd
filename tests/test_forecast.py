"""Lag-window forecasting: series, split, baselines, the RNN forecaster, outputs, CLI."""

import csv
import json
from pathlib import Path

import jax
import numpy as np
import pytest
from _cli import run_module

import lstmx
from experiments.forecast import model as forecast
from lstmx import tasks

ROOT = Path(__file__).resolve().parents[1]


# Series -------------------------------------------------------------------------------


def test_mackey_glass_is_bounded_deterministic_and_chaotic():
    series = forecast.mackey_glass(1500)
    np.testing.assert_array_equal(series, forecast.mackey_glass(1500))
    assert series.shape == (1500,) and series.dtype == np.float64
    # The tau = 17 attractor lies roughly in [0.4, 1.35]; it neither settles nor blows up.
    assert 0.3 < series.min() < 0.5 and 1.2 < series.max() < 1.4
    assert series[-500:].std() > 0.15


def test_mackey_glass_solves_the_delay_equation():
    dt, delay = 0.1, 170  # tau = 17
    x = forecast.mackey_glass(1000, sample_every=dt, discard=0.0)
    k = np.arange(delay + 30, 999)
    derivative = (x[k + 1] - x[k - 1]) / (2 * dt)  # central difference, O(dt^2)
    right_side = 0.2 * x[k - delay] / (1 + x[k - delay] ** 10) - 0.1 * x[k]
    np.testing.assert_allclose(derivative, right_side, rtol=0, atol=1e-4)
    # Halving the step changes the first 100 time units by little (RK4, interpolated delay).
    half_step = forecast.mackey_glass(100, dt=0.05, discard=0.0)
    np.testing.assert_allclose(
        forecast.mackey_glass(100, discard=0.0), half_step, rtol=0, atol=1e-4
    )
    # x = 1 is the fixed point for beta / gamma = 2: a constant history stays there.
    np.testing.assert_allclose(forecast.mackey_glass(50, x0=1.0), 1.0, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="whole multiple of dt"):
        forecast.mackey_glass(10, dt=0.3)


def test_noisy_sines_are_seeded_sums_of_sines():
    clean = forecast.noisy_sines(200, seed=3, periods=(20.0,), amplitudes=(2.0,), noise_std=0.0)
    phase = np.random.default_rng(3).uniform(0, 2 * np.pi, 1)[0]
    np.testing.assert_allclose(
        clean, 2 * np.sin(2 * np.pi * np.arange(200) / 20 + phase), rtol=0, atol=1e-12
    )
    noisy = forecast.noisy_sines(4000, seed=1, noise_std=0.5)
    np.testing.assert_array_equal(noisy, forecast.noisy_sines(4000, seed=1, noise_std=0.5))
    residual = noisy - forecast.noisy_sines(4000, seed=1, noise_std=0.0)
    assert 0.47 < residual.std() < 0.53


def test_split_by_time_and_train_only_statistics():
    series = np.arange(100, dtype=np.float64) ** 1.5
    data = forecast.split_series(series, lag=5, horizon=3, test_fraction=0.2)
    assert data.split == 80
    np.testing.assert_allclose(data.mean, series[:80].mean(), rtol=1e-12)
    np.testing.assert_allclose(data.std, series[:80].std(), rtol=1e-12)
    # Training windows stay in the training part; every test target lies after the split.
    assert data.train_targets.shape == (80 - 5 - 3 + 1, 3)
    np.testing.assert_allclose(data.train_targets[-1], series[77:80], rtol=1e-6)
    assert data.test_inputs.shape == (20 - 3 + 1, 5)
    np.testing.assert_allclose(data.test_inputs[0], series[75:80], rtol=1e-6)
    np.testing.assert_allclose(data.test_targets[0], series[80:83], rtol=1e-6)
    np.testing.assert_allclose(data.test_targets[-1], series[97:100], rtol=1e-6)
    with pytest.raises(ValueError, match="too short"):
        forecast.split_series(series[:10], lag=5, horizon=3)


# Baselines -----------------------------------------------------------------------------


def test_last_value_baseline_by_hand():
    series = np.asarray([1.0, 2.0, 4.0, 7.0, 11.0, 16.0])
    inputs, targets = tasks.windows(series, 2, 2)  # 3 windows
    prediction = forecast.last_value_forecast(inputs[..., 0], 2)
    np.testing.assert_array_equal(prediction, [[2, 2], [4, 4], [7, 7]])
    # Errors [2, 5], [3, 7], [4, 9].
    total, per_step = forecast.mse(prediction, targets[..., 0])
    np.testing.assert_allclose(per_step, [29 / 3, 155 / 3], rtol=1e-12)
    np.testing.assert_allclose(total, 184 / 6, rtol=1e-12)


def test_linear_ar_recovers_an_exact_ar2_process():
    # A sampled sine satisfies x_t = 2 cos(w) x_{t-1} - x_{t-2} exactly.
    w = 0.3
    series = np.sin(w * np.arange(400) + 0.7)
    data = forecast.split_series(series, lag=2, horizon=1)
    coef = forecast.fit_linear_ar(data.train_inputs, data.train_targets)
    # Windows pass through float32 (tasks.windows), hence the 1e-4.
    np.testing.assert_allclose(coef[:, 0], [-1.0, 2 * np.cos(w), 0.0], rtol=0, atol=1e-4)
    prediction = forecast.linear_ar_forecast(coef, data.test_inputs)
    assert forecast.mse(prediction, data.test_targets)[0] < 1e-10
    # A damped AR(2) with a mean, several steps ahead from a longer lag: still exact.
    x = [1.0, -0.5]
    for _ in range(118):
        x.append(1.2 * x[-1] - 0.5 * x[-2])
    damped = 3.0 + np.asarray(x)
    data = forecast.split_series(damped, lag=5, horizon=3)
    coef = forecast.fit_linear_ar(data.train_inputs, data.train_targets)
    prediction = forecast.linear_ar_forecast(coef, data.test_inputs)
    assert forecast.mse(prediction, data.test_targets)[0] < 1e-10


# RNN forecaster and the experiment -------------------------------------------------------


def test_forecaster_loss_decreases():
    data = forecast.split_series(forecast.noisy_sines(600, noise_std=0.05), lag=12, horizon=3)
    forecaster = forecast.make_forecaster("gru", hidden_size=8, horizon=3)
    windows = tuple(
        (part - data.mean) / data.std
        for part in (data.train_inputs, data.train_targets, data.test_inputs, data.test_targets)
    )
    trainer = forecast.make_trainer(
        forecaster, windows, batch_size=32, learning_rate=1e-2, key=jax.random.key(0)
    )
    state, losses = trainer.train(trainer.init(), 80)
    losses = np.asarray(losses)[:, 0]  # [steps, seeds=1]
    assert losses.shape == (80,)
    assert losses[-10:].mean() < 0.3 * losses[:5].mean()
    params = jax.tree_util.tree_map(lambda leaf: leaf[0], state.params)
    prediction = forecaster.predict(params, windows[2])
    assert prediction.shape == (data.test_inputs.shape[0], 3)
    test_mse = float(np.mean((np.asarray(prediction) - windows[3]) ** 2))
    np.testing.assert_allclose(
        trainer.evaluate(state)["test_mse"][0], test_mse, rtol=1e-5, atol=1e-7
    )


def test_run_forecast_scores_every_model_and_writes_outputs(tmp_path):
    config = forecast.Config(
        series="sines", variants=("rnn",), length=300, lag=8, horizon=4, steps=20, hidden_size=4
    )
    lines = []
    result = forecast.run_forecast(config, tmp_path / "work", log=lines.append)
    assert [row["model"] for row in result["models"]] == ["last_value", "linear_ar", "rnn"]
    assert any("forecast      rnn step     20/20" in line for line in lines)
    data = forecast.split_series(forecast.noisy_sines(300, seed=0, noise_std=0.1), lag=8, horizon=4)
    expected = forecast.mse(forecast.last_value_forecast(data.test_inputs, 4), data.test_targets)
    last_value = result["models"][0]
    np.testing.assert_allclose(last_value["test_mse"], expected[0], rtol=1e-12)
    np.testing.assert_allclose(last_value["mse_per_step"], expected[1], rtol=1e-12)
    np.testing.assert_allclose(
        last_value["test_nmse"], expected[0] / data.test_targets.var(), rtol=1e-12
    )
    # The linear AR beats repeating the last value on sines.
    assert result["models"][1]["test_mse"] < 0.5 * last_value["test_mse"]
    table = forecast.format_table(result)
    assert "| last_value (baseline) |" in table and "| `rnn` |" in table
    written = forecast.write_outputs(result, tmp_path)
    assert [path.name for path in written] == ["forecast.csv", "forecast.json", "forecast.png"]
    with open(tmp_path / "forecast.csv") as file:
        rows = list(csv.DictReader(file))
    assert [row["model"] for row in rows] == ["last_value", "linear_ar", "rnn"]
    assert float(rows[0]["test_mse"]) == last_value["test_mse"]
    assert float(rows[0]["mse_t+4"]) == last_value["mse_per_step"][3]
    summary = json.loads((tmp_path / "forecast.json").read_text())
    assert summary["config"]["variants"] == ["rnn"]
    assert (tmp_path / "forecast.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The variant's record, and its trained model kept: run again, it trains no more.
    record = json.loads(forecast.record_path(tmp_path / "work", "rnn").read_text())
    assert record["format"] == forecast.RECORD_FORMAT and record["variant"] == "rnn"
    assert [point["step"] for point in record["history"]] == [5, 10, 15, 20]
    assert record["test_mse"] == result["models"][2]["test_mse"]
    lines = []
    again = forecast.run_forecast(config, tmp_path / "work", log=lines.append)
    assert lines == ["resumed from step 20 (forecast_rnn.msgpack)"]
    np.testing.assert_array_equal(
        again["models"][2]["predictions"], result["models"][2]["predictions"]
    )


def test_config_refuses_bad_settings():
    with pytest.raises(ValueError, match="Unknown variant 'lstn'"):
        forecast.Config(variants=("lstn",))
    with pytest.raises(ValueError, match="series must be one of"):
        forecast.Config(series="random_walk")
    with pytest.raises(ValueError, match="too short for lag=300"):
        forecast.Config(length=200, lag=300)


# Command line --------------------------------------------------------------------------


def _run(*flags):
    return run_module("experiments.forecast", *flags)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--series=random_walk"], "--series"),
        (["--variants=lstm,lstn"], "--variants must be a non-empty list of: rnn, lstm"),
        (["--horizon=0"], "--horizon"),
        (["--length=100", "--lag=90"], "length=100 is too short for lag=90"),
    ],
)
def test_bad_flags_exit_with_one_line(flags, message, tmp_path):
    result = _run(*flags, f"--workdir={tmp_path / 'out'}")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "rror" in line]
    assert len(error_lines) == 1, result.stderr


TINY_FLAGS = [
    "--series=mackey_glass",
    "--variants=rnn",
    "--length=400",
    "--lag=10",
    "--horizon=5",
    "--steps=10",
    "--hidden_size=4",
]


def test_tiny_cli_run(tmp_path):
    result = _run(*TINY_FLAGS, f"--workdir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert "| linear_ar (baseline) |" in result.stdout and "| `rnn` |" in result.stdout
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        ".lock",
        "checkpoints",
        "forecast.csv",
        "forecast.json",
        "forecast.png",
        "records",
    ]
    assert [path.name for path in (tmp_path / "records").iterdir()] == ["forecast_rnn.json"]


def test_output_dir_is_a_deprecated_alias_of_workdir(tmp_path):
    result = _run(*TINY_FLAGS, "--steps=2", f"--output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert "note: --output_dir is deprecated; use --workdir." in result.stderr
    assert (tmp_path / "forecast.csv").exists() and (tmp_path / "records").is_dir()
    both = _run(*TINY_FLAGS, f"--workdir={tmp_path}", f"--output_dir={tmp_path / 'b'}")
    assert both.returncode != 0 and "Traceback" not in both.stderr
    assert "give --workdir or its deprecated alias --output_dir, not both" in both.stderr


def test_variant_seed_is_a_stable_hash_of_the_name():
    # Literal values: the seed of a variant never moves with the variant table's order,
    # the Python process or the machine.
    assert forecast.variant_seed("lstm") == 2119426233
    assert forecast.variant_seed("gru") == 264215152
    assert len({forecast.variant_seed(name) for name in lstmx.variant_names()}) == len(
        lstmx.variant_names()
    )
