r"""Lag-window forecasting: predict the next ``m`` values of a series from the last ``n``.

A series is split by time: the first ``1 - test_fraction`` is for training, the rest for
testing. Windows come from :func:`lstmx.tasks.windows` with ``lag = n`` and
``horizon = m``: training windows lie wholly inside the training part, and test windows
are cut from ``series[split - n:]``, so every test *target* lies after the split (the
first test forecast reads the last ``n`` training values, as a forecaster deployed at the
split would).

Models, all scored by mean squared error over the ``m`` steps and all test windows, in
the series' original units:

* **last value**: repeat the last observed value ``m`` times.
* **linear AR**: direct multi-step linear autoregression, ``y_{t+k} = a_k \cdot
  x_{t-n+1..t} + c_k`` for ``k = 1..m``, fit by least squares (``numpy.linalg.lstsq``,
  float64) on the training windows; one output per horizon step.
* **RNN forecasters**: a cell (any :func:`lstmx.variant`) reads the ``n`` values, a
  linear read-out maps its last hidden state to the ``m`` values; MSE, Adam, global-norm
  clipping, minibatches drawn from the training windows. The network sees the series
  normalised with the mean and standard deviation of the training part only.

Series generators (numpy, float64, deterministic):

* :func:`noisy_sines`: a sum of sines with seeded random phases plus Gaussian noise.
* :func:`mackey_glass`: the Mackey & Glass (1977) delay differential equation,
  integrated with classical Runge–Kutta (RK4).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math
import os
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from experiments.shared import records, resume, training
from experiments.shared.training import Readout, Trainer, apply_readout, init_readout
from lstmx import _checks, tasks
from lstmx.cells import variant, variant_names
from lstmx.sequence import scan

Array = jax.Array

__all__ = [
    "BASELINES",
    "SERIES",
    "Config",
    "ForecastExperiment",
    "Forecaster",
    "Split",
    "fit_linear_ar",
    "format_table",
    "last_value_forecast",
    "linear_ar_forecast",
    "mackey_glass",
    "make_forecaster",
    "make_trainer",
    "make_series",
    "mse",
    "noisy_sines",
    "checkpoint_path",
    "plot_forecasts",
    "record_path",
    "RECORD_FORMAT",
    "run_forecast",
    "split_series",
    "write_outputs",
]

SERIES = ("sines", "mackey_glass")
BASELINES = ("last_value", "linear_ar")


# --------------------------------------------------------------------------------------
# Series.
# --------------------------------------------------------------------------------------


def noisy_sines(
    length: int,
    *,
    seed: int = 0,
    periods: Sequence[float] = (20.0, 33.0, 57.0),
    amplitudes: Sequence[float] = (1.0, 0.6, 0.4),
    noise_std: float = 0.1,
) -> np.ndarray:
    r"""A sum of sines with random phases plus white Gaussian noise.

    .. math::
        s_t = \sum_k a_k \sin(2\pi t / P_k + \phi_k) + \varepsilon_t, \qquad
        \phi_k \sim U[0, 2\pi), \quad \varepsilon_t \sim N(0, \sigma^2)

    Args:
      length: ``N`` samples, ``t = 0 .. N-1``.
      seed: seeds the phases and the noise (``numpy.random.default_rng``).
      periods: ``P_k`` in samples.
      amplitudes: ``a_k``, one per period.
      noise_std: ``sigma >= 0``.

    Returns:
      float64 ``[N]``.
    """
    length = _checks.positive_int("length", length)
    _checks.int_at_least("seed", seed, 0)
    if len(periods) != len(amplitudes) or not periods:
        raise ValueError("periods and amplitudes must be non-empty and of equal length.")
    if not (math.isfinite(noise_std) and noise_std >= 0):
        raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std}.")
    rng = np.random.default_rng(seed)
    phases = rng.uniform(0.0, 2 * np.pi, len(periods))
    t = np.arange(length, dtype=np.float64)
    clean = sum(
        a * np.sin(2 * np.pi * t / p + phi)
        for a, p, phi in zip(amplitudes, periods, phases, strict=True)
    )
    return clean + noise_std * rng.standard_normal(length)


def mackey_glass(
    length: int,
    *,
    tau: float = 17.0,
    beta: float = 0.2,
    gamma: float = 0.1,
    n: float = 10.0,
    x0: float = 1.2,
    dt: float = 0.1,
    sample_every: float = 1.0,
    discard: float = 500.0,
) -> np.ndarray:
    r"""The Mackey–Glass series (Mackey & Glass 1977), chaotic for ``tau = 17``.

    .. math::
        \frac{dx}{dt} = \beta \frac{x(t - \tau)}{1 + x(t - \tau)^n} - \gamma x(t),
        \qquad x(t) = x_0 \text{ for } t \le 0.

    Integrated with classical RK4 on a grid of step ``dt`` that divides ``tau``, so the
    delayed values at the grid points are stored ones; at the half steps RK4 needs, the
    delayed value is the mean of its two grid neighbours (linear interpolation, error
    ``O(dt^2)`` in that term). The first ``discard`` time units (the transient from the
    constant history) are dropped, then one value is kept every ``sample_every`` time
    units (a multiple of ``dt``).

    Args:
      length: ``N`` samples returned.
      tau, beta, gamma, n: the equation's constants (defaults: the chaotic benchmark).
      x0: the constant history.
      dt: integration step; ``tau / dt`` must be an integer.
      sample_every: time between returned samples; a multiple of ``dt``.
      discard: time units integrated and dropped before the first sample.

    Returns:
      float64 ``[N]``.
    """
    length = _checks.positive_int("length", length)
    for name, value in (("tau", tau), ("dt", dt), ("sample_every", sample_every)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value}.")
    if not (math.isfinite(discard) and discard >= 0):
        raise ValueError(f"discard must be a finite number >= 0, got {discard}.")
    delay = round(tau / dt)
    stride = round(sample_every / dt)
    skip = round(discard / dt)
    for name, value, steps in (("tau", tau, delay), ("sample_every", sample_every, stride)):
        if steps < 1 or abs(steps * dt - value) > 1e-9 * max(1.0, value):
            raise ValueError(f"{name}={value} must be a whole multiple of dt={dt}.")
    total = skip + (length - 1) * stride + 1
    x = [0.0] * (total + delay)  # x[k + delay] = x(k dt); indices < delay: the history
    for k in range(delay + 1):
        x[k] = float(x0)

    def f(value: float, delayed: float) -> float:
        return beta * delayed / (1.0 + delayed**n) - gamma * value

    half = 0.5 * dt
    for k in range(delay, delay + total - 1):
        now, past, past_next = x[k], x[k - delay], x[k - delay + 1]
        past_mid = 0.5 * (past + past_next)
        k1 = f(now, past)
        k2 = f(now + half * k1, past_mid)
        k3 = f(now + half * k2, past_mid)
        k4 = f(now + dt * k3, past_next)
        x[k + 1] = now + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    grid = np.asarray(x[delay:], dtype=np.float64)  # x(k dt), k = 0 .. total-1
    return grid[skip::stride][:length]


def make_series(name: str, length: int, *, seed: int = 0, noise_std: float = 0.1) -> np.ndarray:
    """The named series: "sines" (:func:`noisy_sines`) or "mackey_glass" (default constants)."""
    if name == "sines":
        return noisy_sines(length, seed=seed, noise_std=noise_std)
    if name == "mackey_glass":
        return mackey_glass(length)
    raise ValueError(f"series must be one of {', '.join(SERIES)}; got {name!r}.")


class Split(NamedTuple):
    """Windows of a series split by time, in original units (float64 numpy).

    Attributes:
      train_inputs: ``[W_train, lag]``; train_targets: ``[W_train, horizon]``.
      test_inputs: ``[W_test, lag]``; test_targets: ``[W_test, horizon]``; test window
        ``j`` forecasts ``series[split + j : split + j + horizon]``.
      split: index of the first test value.
      mean, std: of the training part, for normalisation.
    """

    train_inputs: np.ndarray
    train_targets: np.ndarray
    test_inputs: np.ndarray
    test_targets: np.ndarray
    split: int
    mean: float
    std: float


def split_series(series: Any, lag: int, horizon: int, test_fraction: float = 0.2) -> Split:
    """Splits by time and cuts (lag, horizon) windows with :func:`lstmx.tasks.windows`.

    Windows are computed in float32 (``tasks.windows`` converts through JAX) and returned
    as float64; the normalisation statistics come from the float64 training part.
    """
    series = np.asarray(series, dtype=np.float64)
    if series.ndim != 1:
        raise ValueError(f"series must be 1-D [N], got shape {series.shape}.")
    lag = _checks.positive_int("lag", lag)
    horizon = _checks.positive_int("horizon", horizon)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}.")
    split = len(series) - int(round(test_fraction * len(series)))
    need = lag + horizon
    if split < need or len(series) - split < horizon:
        raise ValueError(
            f"a series of {len(series)} values is too short for lag={lag}, horizon={horizon}: "
            f"the training part ({split}) needs at least {need} values and the test part "
            f"({len(series) - split}) at least {horizon}."
        )

    def cut(part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inputs, targets = tasks.windows(part, lag, horizon)
        return np.asarray(inputs[..., 0], np.float64), np.asarray(targets[..., 0], np.float64)

    train_inputs, train_targets = cut(series[:split])
    test_inputs, test_targets = cut(series[split - lag :])
    train = series[:split]
    std = float(train.std())
    return Split(
        train_inputs,
        train_targets,
        test_inputs,
        test_targets,
        split,
        float(train.mean()),
        std if std > 0 else 1.0,
    )


# --------------------------------------------------------------------------------------
# Baselines.
# --------------------------------------------------------------------------------------


def mse(prediction: Any, targets: Any) -> tuple[float, np.ndarray]:
    """Mean squared error overall and per horizon step ``[horizon]``."""
    error = np.asarray(prediction, np.float64) - np.asarray(targets, np.float64)
    if error.ndim != 2:
        raise ValueError(f"prediction and targets must be [W, horizon], got {error.shape}.")
    per_step = np.mean(error**2, axis=0)
    return float(per_step.mean()), per_step


def last_value_forecast(inputs: Any, horizon: int) -> np.ndarray:
    """Repeats each window's last value: ``[W, lag] -> [W, horizon]``."""
    inputs = np.asarray(inputs, np.float64)
    horizon = _checks.positive_int("horizon", horizon)
    return np.repeat(inputs[:, -1:], horizon, axis=1)


def fit_linear_ar(inputs: Any, targets: Any) -> np.ndarray:
    """Least-squares direct AR coefficients ``[lag + 1, horizon]`` (last row: intercepts).

    Solves ``[inputs, 1] @ coef ≈ targets`` in float64 with ``numpy.linalg.lstsq`` (the
    minimum-norm solution when the lag columns are collinear).
    """
    inputs = np.asarray(inputs, np.float64)
    targets = np.asarray(targets, np.float64)
    design = np.concatenate([inputs, np.ones((inputs.shape[0], 1))], axis=1)
    coef, *_ = np.linalg.lstsq(design, targets, rcond=None)
    return coef


def linear_ar_forecast(coef: np.ndarray, inputs: Any) -> np.ndarray:
    """Applies :func:`fit_linear_ar` coefficients: ``[W, lag] -> [W, horizon]``."""
    inputs = np.asarray(inputs, np.float64)
    return inputs @ coef[:-1] + coef[-1]


# --------------------------------------------------------------------------------------
# RNN forecaster.
# --------------------------------------------------------------------------------------


class Forecaster(NamedTuple):
    """A cell over the lag window and a linear read-out of its last hidden state.

    Attributes:
      init: ``init(key) -> Readout`` (input size 1; ``w_out [H, horizon]``).
      predict: ``predict(params, inputs [B, lag]) -> [B, horizon]``, normalised units.
      horizon: ``m``.
    """

    init: Callable[[Array], Readout]
    predict: Callable[[Readout, Array], Array]
    horizon: int


@functools.lru_cache(maxsize=32)
def make_forecaster(variant_name: str, hidden_size: int, horizon: int) -> Forecaster:
    """Builds a forecaster from a named variant (:func:`lstmx.variant`).

    Cached, and ``predict`` is jitted, so the record and the plot of one variant share one
    compiled prediction.
    """
    cell = variant(variant_name, hidden_size)
    horizon = _checks.positive_int("horizon", horizon)

    def init(key: Array) -> Readout:
        return init_readout(key, cell, 1, horizon)

    def predict(params: Readout, inputs: Array) -> Array:
        inputs = jnp.asarray(inputs, jnp.float32)
        _, ys = scan(cell, params.cell, inputs[..., None])
        return apply_readout(params, ys[..., -1, :])

    return Forecaster(init, jax.jit(predict), horizon)


def make_trainer(
    forecaster: Forecaster,
    windows: tuple[Any, Any, Any, Any],
    *,
    batch_size: int,
    learning_rate: float,
    key: Array,
    clip: float = 1.0,
) -> Trainer:
    """The trainer of one forecaster: minibatch MSE, Adam, global-norm clipping.

    The minibatch of step ``s`` is ``batch_size`` training windows drawn with replacement
    from ``fold_in(train_key, s)``, so training is a pure function of ``key``;
    ``evaluate`` gives ``{"test_mse": [1]}``, the MSE over every test window.

    Args:
      forecaster: from :func:`make_forecaster`.
      windows: normalised ``(train_inputs [W, lag], train_targets [W, horizon],
        test_inputs [W', lag], test_targets [W', horizon])``.
      batch_size: windows per step.
      learning_rate: Adam's step size.
      key: the root key (one seed).
      clip: global-norm clipping threshold.
    """
    batch_size = _checks.positive_int("batch_size", batch_size)
    data = tuple(jnp.asarray(part, jnp.float32) for part in windows)
    num_windows = data[0].shape[0]
    optimizer = training.make_optimizer("adam", learning_rate, clip, "global_norm")

    def loss_one(params: Readout, key: Array, data) -> Array:
        inputs, targets, _, _ = data
        rows = jax.random.randint(key, (batch_size,), 0, num_windows)
        return jnp.mean((forecaster.predict(params, inputs[rows]) - targets[rows]) ** 2)

    def evaluate_one(params: Readout, _key: Array, data) -> dict[str, Array]:
        _, _, inputs, targets = data
        return {"test_mse": jnp.mean((forecaster.predict(params, inputs) - targets) ** 2)}

    return training.make_trainer(
        forecaster.init, loss_one, optimizer, key[None], evaluate_one, data
    )


# --------------------------------------------------------------------------------------
# The experiment.
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of one forecasting comparison.

    Attributes:
      series: "sines" or "mackey_glass".
      variants: RNN variants to train (names from :func:`lstmx.variant_names`).
      length: samples in the series.
      lag: ``n``, values read.
      horizon: ``m``, values predicted.
      test_fraction: the last share of the series used for testing.
      steps, batch_size, hidden_size, learning_rate: RNN training.
      noise_std: the noise of "sines".
      seed: seeds the series ("sines") and each variant's training.
      plot_length: time steps of the test series drawn in the figure.
    """

    series: str = "mackey_glass"
    variants: tuple[str, ...] = ("lstm", "gru", "rnn")
    length: int = 3000
    lag: int = 30
    horizon: int = 10
    test_fraction: float = 0.2
    steps: int = 2000
    batch_size: int = 64
    hidden_size: int = 32
    learning_rate: float = 3e-3
    noise_std: float = 0.1
    seed: int = 0
    plot_length: int = 200

    def __post_init__(self):
        if self.series not in SERIES:
            raise ValueError(f"series must be one of {', '.join(SERIES)}; got {self.series!r}.")
        if not self.variants:
            raise ValueError("variants must name at least one variant.")
        for name in self.variants:
            if name not in variant_names():
                raise ValueError(
                    f"Unknown variant {name!r}; valid names: {', '.join(variant_names())}."
                )
        if len(set(self.variants)) != len(self.variants):
            raise ValueError(f"variants must be distinct, got {list(self.variants)}.")
        for name in ("length", "lag", "horizon", "steps", "batch_size", "hidden_size"):
            _checks.positive_int(name, getattr(self, name))
        _checks.positive_int("plot_length", self.plot_length)
        _checks.int_at_least("seed", self.seed, 0)
        training.check_optimizer_settings("adam", self.learning_rate, 1.0, "global_norm")
        if not (math.isfinite(self.noise_std) and self.noise_std >= 0):
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}.")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in (0, 1), got {self.test_fraction}.")
        split_size = self.length - int(round(self.test_fraction * self.length))
        if split_size < self.lag + self.horizon or self.length - split_size < self.horizon:
            raise ValueError(
                f"length={self.length} is too short for lag={self.lag}, "
                f"horizon={self.horizon} and test_fraction={self.test_fraction}: the training "
                f"part needs lag + horizon values and the test part horizon values."
            )

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "variants": list(self.variants)}


RECORD_FORMAT = "lstmx.forecast/1"


def record_path(workdir: str | os.PathLike, variant_name: str) -> Path:
    """Where the record of one variant's forecaster lives."""
    return Path(workdir) / "records" / f"forecast_{variant_name}.json"


def checkpoint_path(workdir: str | os.PathLike, variant_name: str) -> Path:
    """Where a variant's training state lives; kept after training (the trained model)."""
    return Path(workdir) / "checkpoints" / f"forecast_{variant_name}.msgpack"


def _variant_settings(config: Config, name: str) -> dict:
    """What defines one variant's training: the config without the others and the plot."""
    settings = {k: v for k, v in config.to_dict().items() if k not in ("variants", "plot_length")}
    return {**settings, "variant": name}


def _history_points(chunk: resume.Chunk, wall_time: float) -> list[dict]:
    return [
        {
            "step": chunk.step,
            "train_mse": float(chunk.train_losses.mean()),
            "test_mse": float(chunk.metrics["test_mse"][0]),
            "wall_time": round(wall_time, 3),
        }
    ]


def variant_seed(name: str) -> int:
    """A stable 31-bit integer of a variant's name (CRC-32), folded into the seed's key:
    the same on every machine and Python, unlike ``hash``, and unmoved when a variant is
    added to the table (a position would move)."""
    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


@dataclasses.dataclass(eq=False)
class ForecastExperiment(resume.Experiment):
    """The resumable loop's view of one variant's training (one seed): its checkpoint is
    kept (the trained model) and ``steps`` may grow between calls.

    Attributes:
      config: the forecasting settings.
      variant: the variant's name.
      workdir: where its record and checkpoint live.
      windows: the ``(train, validation, test)`` lag windows.
      test_targets: the test targets in the series' units.
      scale: maps a normalised prediction back to the series' units.
    """

    config: Config
    variant: str
    workdir: Path
    windows: tuple
    test_targets: np.ndarray
    scale: Callable[[Array], Array]
    neutral_settings: tuple[str, ...] = ("steps",)
    keep_checkpoint: bool = True

    def __post_init__(self):
        config, name = self.config, self.variant
        self.name = f"forecast {name}"
        self.settings = _variant_settings(config, name)
        self.seeds = (config.seed,)
        self.steps = config.steps
        self.eval_every = max(1, config.steps // 4)
        self.checkpoint = checkpoint_path(self.workdir, name)
        self._forecaster = make_forecaster(name, config.hidden_size, config.horizon)
        self._trainer = make_trainer(
            self._forecaster,
            self.windows,
            batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            key=jax.random.fold_in(jax.random.key(config.seed), variant_seed(name)),
        )

    def record_path(self, seed: int) -> Path:
        return record_path(self.workdir, self.variant)

    def make_trainer(self, seeds: tuple[int, ...]):
        return self._trainer

    def history_points(self, chunk: resume.Chunk, wall_time: float) -> list[dict]:
        return _history_points(chunk, wall_time)

    def progress(self, step: int, points: list[dict], steps_per_second: float) -> str:
        return (
            f"forecast {self.variant:>8} step {step:>6}/{self.config.steps}  train MSE "
            f"(normalised) {points[0]['train_mse']:.5f}  {points[0]['wall_time']:.1f} s"
        )

    def make_record(self, outcome: resume.Outcome, index: int) -> dict:
        params = jax.tree_util.tree_map(lambda leaf: leaf[index], outcome.state.params)
        prediction = self.scale(self._forecaster.predict(params, self.windows[2]))
        total, per_step = mse(prediction, self.test_targets)
        variance = float(np.var(self.test_targets))
        return {
            "format": RECORD_FORMAT,
            "variant": self.variant,
            "config": self.settings,
            "num_params": outcome.num_params,
            "history": [points[index] for points in outcome.history],
            "test_mse": total,
            "test_nmse": total / variance if variance > 0 else float("nan"),
            "mse_per_step": per_step.tolist(),
            "steps_per_second": outcome.steps_per_second,
            "wall_time": outcome.wall_time,
            "versions": records.software_versions(),
        }


def run_forecast(
    config: Config, workdir: str | os.PathLike, *, log: Callable[[str], None] = print
) -> dict:
    """Generates the series, fits the baselines, trains every variant and scores them.

    Each variant trains through the shared resumable loop
    (:func:`experiments.shared.resume.run`): ``workdir`` is locked, its training state is
    checkpointed in ``workdir/checkpoints`` and kept (the trained model), and its record
    goes to ``workdir/records/forecast_{variant}.json``. Started again with the same
    settings, a finished variant is not trained again, an unfinished one resumes, and a
    larger ``steps`` trains on. Each variant's key is ``fold_in(key(seed),
    variant_seed(name))``, a stable hash of its name, so a variant's numbers depend neither
    on which others are trained alongside it nor on the order of lstmx's variant table.

    Returns:
      ``{"config", "series", "split", "mean", "std", "test_variance", "test_targets",
      "models": [{"model", "kind", "test_mse", "test_nmse", "mse_per_step",
      "num_params", "train_seconds", "predictions"}]}``; ``kind`` is "baseline" or
      "recurrent"; ``test_nmse`` is the test MSE divided by the variance of the test
      targets; a recurrent model's ``train_seconds`` is its training time over every call.

    Raises:
      ConfigMismatchError, WorkdirLockedError, PreemptedError, WriteError: see
        :func:`experiments.shared.resume.run`.
    """
    workdir = Path(workdir)
    series = make_series(config.series, config.length, seed=config.seed, noise_std=config.noise_std)
    data = split_series(series, config.lag, config.horizon, config.test_fraction)
    variance = float(np.var(data.test_targets))
    models = []

    def add(name, kind, prediction, num_params, seconds):
        total, per_step = mse(prediction, data.test_targets)
        models.append(
            {
                "model": name,
                "kind": kind,
                "test_mse": total,
                "test_nmse": total / variance if variance > 0 else float("nan"),
                "mse_per_step": per_step.tolist(),
                "num_params": num_params,
                "train_seconds": seconds,
                "predictions": np.asarray(prediction),
            }
        )

    add("last_value", "baseline", last_value_forecast(data.test_inputs, config.horizon), 0, 0.0)
    started = time.perf_counter()
    coef = fit_linear_ar(data.train_inputs, data.train_targets)
    seconds = time.perf_counter() - started
    add("linear_ar", "baseline", linear_ar_forecast(coef, data.test_inputs), coef.size, seconds)

    def normalise(values):
        return (values - data.mean) / data.std

    def scale(prediction):
        return np.asarray(prediction, np.float64) * data.std + data.mean

    windows = tuple(
        normalise(part)
        for part in (data.train_inputs, data.train_targets, data.test_inputs, data.test_targets)
    )
    with resume.lock_workdir(workdir):
        for name in config.variants:
            experiment = ForecastExperiment(
                config, name, workdir, windows, data.test_targets, scale
            )
            outcome = resume.run(experiment, log=log).outcome
            forecaster = make_forecaster(name, config.hidden_size, config.horizon)
            params = jax.tree_util.tree_map(lambda leaf: leaf[0], outcome.state.params)
            prediction = scale(forecaster.predict(params, windows[2]))
            add(name, "recurrent", prediction, outcome.num_params, outcome.wall_time)
    return {
        "config": config.to_dict(),
        "series": series,
        "split": data.split,
        "mean": data.mean,
        "std": data.std,
        "test_variance": variance,
        "test_targets": data.test_targets,
        "models": models,
    }


def format_table(result: dict) -> str:
    """A markdown table: test MSE (original units), NMSE, first and last step, params."""
    horizon = result["config"]["horizon"]
    lines = [
        f"| model | test MSE | NMSE | MSE t+1 | MSE t+{horizon} | params |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["models"]:
        name = f"`{row['model']}`" if row["kind"] == "recurrent" else f"{row['model']} (baseline)"
        lines.append(
            f"| {name} | {row['test_mse']:.3g} | {row['test_nmse']:.3g} | "
            f"{row['mse_per_step'][0]:.3g} | {row['mse_per_step'][-1]:.3g} | "
            f"{row['num_params']:,} |"
        )
    return "\n".join(lines)


def plot_forecasts(result: dict, path: str | os.PathLike) -> None:
    """PNG of forecasts against the truth on the start of the test series, atomically.

    One panel per model. Forecasts are made from origins ``horizon`` steps apart, so the
    ``horizon``-step forecasts tile the stretch: each segment is what the model predicted
    from the ``lag`` values before its origin (origins dotted).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    config = result["config"]
    horizon, split = config["horizon"], result["split"]
    targets = result["test_targets"]
    stretch = min(config["plot_length"], targets.shape[0] + horizon - 1)
    origins = list(range(0, stretch - horizon + 1, horizon))
    series = result["series"]
    context = config["lag"]
    t_truth = np.arange(split - context, split + stretch)
    models = result["models"]
    fig = Figure(figsize=(9.0, 1.7 * len(models) + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(models), 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    for i, (ax, row) in enumerate(zip(axes, models)):
        ax.plot(t_truth, series[t_truth], color="black", linewidth=1.0, label="truth")
        color = f"C{i % 10}"
        for k, origin in enumerate(origins):
            ax.plot(
                split + origin + np.arange(horizon),
                row["predictions"][origin],
                color=color,
                linewidth=1.6,
                label="forecast" if k == 0 else None,
            )
            ax.axvline(split + origin - 0.5, color="0.8", linewidth=0.6, linestyle=":")
        ax.axvline(split - 0.5, color="0.4", linewidth=1.0)
        ax.set_title(
            f"{row['model']}: test MSE {row['test_mse']:.4g} (NMSE {row['test_nmse']:.3g})",
            fontsize=9,
            loc="left",
        )
        if i == 0:
            ax.legend(fontsize=7, loc="upper right", framealpha=0.9)
    axes[-1].set_xlabel(
        f"time step (solid grey line: start of the test part; each segment forecasts "
        f"{horizon} steps from the {config['lag']} before it)"
    )
    fig.suptitle(
        f"{config['series']}: {horizon}-step forecasts from {config['lag']} lagged values",
        fontsize=10,
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    records.write_atomic(path, buf.getvalue())


def write_outputs(result: dict, output_dir: str | os.PathLike) -> list[Path]:
    """Writes ``forecast.csv``, ``forecast.json`` and ``forecast.png``, each atomically."""
    output_dir = Path(output_dir)
    horizon = result["config"]["horizon"]
    header = ["model", "kind", "test_mse", "test_nmse", "num_params", "train_seconds"]
    header += [f"mse_t+{k + 1}" for k in range(horizon)]
    lines = [",".join(header)]
    for row in result["models"]:
        cells = [row["model"], row["kind"], repr(row["test_mse"]), repr(row["test_nmse"])]
        cells += [str(row["num_params"]), f"{row['train_seconds']:.3f}"]
        cells += [repr(value) for value in row["mse_per_step"]]
        lines.append(",".join(cells))
    csv_path = output_dir / "forecast.csv"
    records.write_atomic(csv_path, ("\n".join(lines) + "\n").encode())
    json_path = output_dir / "forecast.json"
    summary = {
        "config": result["config"],
        "split": result["split"],
        "mean": result["mean"],
        "std": result["std"],
        "test_variance": result["test_variance"],
        "models": [
            {k: v for k, v in row.items() if k != "predictions"} for row in result["models"]
        ],
        "versions": records.software_versions(),
    }
    records.write_json_atomic(json_path, summary)
    png_path = output_dir / "forecast.png"
    plot_forecasts(result, png_path)
    return [csv_path, json_path, png_path]
