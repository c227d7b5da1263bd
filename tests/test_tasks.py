"""Tests for lstmx.tasks: copy task, adding problem, lag windows."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from lstmx import tasks
from lstmx.tasks import (
    BLANK,
    COPY_LENGTH,
    DELIMITER,
    NUM_CLASSES,
    NUM_SYMBOLS,
    adding_baseline,
    adding_task,
    copy_baseline,
    copy_task,
    windows,
)


@pytest.fixture(autouse=True)
def _strict_rank_promotion():
    with jax.numpy_rank_promotion("raise"):
        yield


# --------------------------------------------------------------------------------------
# Copy task.
# --------------------------------------------------------------------------------------


def test_token_encoding_constants():
    assert NUM_SYMBOLS == 8
    assert BLANK == 8
    assert DELIMITER == 9
    assert NUM_CLASSES == 10
    assert COPY_LENGTH == 10
    assert set(tasks.__all__) >= {"copy_task", "copy_baseline", "adding_task", "windows"}


@pytest.mark.parametrize("delay", [1, 2, 5, 100])
def test_copy_shapes_and_dtypes(delay):
    inputs, targets = copy_task(jax.random.key(0), 3, delay)
    assert inputs.shape == (3, delay + 20)
    assert targets.shape == (3, delay + 20)
    assert inputs.dtype == jnp.int32
    assert targets.dtype == jnp.int32


@pytest.mark.parametrize("delay", [1, 2, 3, 17, 100])
def test_copy_layout_every_position(delay):
    inputs, targets = copy_task(jax.random.key(1), 16, delay)
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    T = delay
    # Inputs: 10 symbols at 0..9, blanks at 10..T+8, delimiter at T+9, blanks at T+10..T+19.
    symbols = inputs[:, :10]
    assert np.all((symbols >= 0) & (symbols < NUM_SYMBOLS))
    assert np.all(inputs[:, 10 : T + 9] == BLANK)
    assert inputs[:, 10 : T + 9].shape[1] == T - 1
    assert np.all(inputs[:, T + 9] == DELIMITER)
    assert np.all(inputs[:, T + 10 :] == BLANK)
    assert inputs[:, T + 10 :].shape[1] == 10
    # The delimiter occurs once, blanks never among the symbols.
    assert np.all((inputs == DELIMITER).sum(axis=1) == 1)
    assert np.all((inputs == BLANK).sum(axis=1) == T - 1 + 10)
    # Targets: blank for the first T+10 steps, then the symbols in order.
    assert np.all(targets[:, : T + 10] == BLANK)
    np.testing.assert_array_equal(targets[:, T + 10 :], symbols)


def test_copy_symbols_roughly_uniform():
    inputs, _ = copy_task(jax.random.key(2), 4096, 5)
    counts = np.bincount(np.asarray(inputs[:, :10]).ravel(), minlength=NUM_CLASSES)
    # No blank or delimiter among the symbols.
    assert counts[BLANK] == 0
    assert counts[DELIMITER] == 0
    # 40960 draws; chi-square goodness of fit to uniform over 8 symbols. The key is
    # fixed, so this is deterministic; p > 1e-3 fails only on a real bias.
    _, p_value = stats.chisquare(counts[:NUM_SYMBOLS])
    assert p_value > 1e-3
    np.testing.assert_allclose(counts[:NUM_SYMBOLS] / counts.sum(), 1 / 8, rtol=0, atol=0.01)


def test_copy_keys():
    a, _ = copy_task(jax.random.key(0), 8, 10)
    b, _ = copy_task(jax.random.key(0), 8, 10)
    c, _ = copy_task(jax.random.key(1), 8, 10)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # Legacy uint32 keys work as well.
    d, _ = copy_task(jax.random.PRNGKey(0), 8, 10)
    assert d.shape == (8, 30)


def test_copy_under_jit():
    @jax.jit
    def step(key):
        return copy_task(key, 4, 12)

    key = jax.random.key(3)
    jit_inputs, jit_targets = step(key)
    inputs, targets = copy_task(key, 4, 12)
    np.testing.assert_array_equal(jit_inputs, inputs)
    np.testing.assert_array_equal(jit_targets, targets)
    # batch_size and delay as static arguments.
    static = jax.jit(copy_task, static_argnums=(1, 2))
    np.testing.assert_array_equal(static(key, 4, 12)[0], inputs)


@pytest.mark.parametrize(("delay", "expected"), [(100, 0.1733), (500, 0.0400)])
def test_copy_baseline_published_values(delay, expected):
    np.testing.assert_allclose(round(copy_baseline(delay), 4), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        copy_baseline(delay), 10 * math.log(8) / (delay + 20), rtol=1e-12, atol=0
    )


@pytest.mark.parametrize("delay", [1, 100, 500])
def test_copy_baseline_is_memoryless_cross_entropy(delay):
    """The baseline is the loss of: blank with certainty, then uniform over 8 symbols."""
    T = delay
    _, targets = copy_task(jax.random.key(4), 32, delay)
    targets = np.asarray(targets)
    probs = np.zeros((T + 20, NUM_CLASSES))
    probs[: T + 10, BLANK] = 1.0
    probs[T + 10 :, :NUM_SYMBOLS] = 1.0 / NUM_SYMBOLS
    # p[b, t] = probability the model gives to the target token at step t.
    p = probs[np.arange(T + 20)[None, :], targets]
    cross_entropy = np.mean(-np.log(p))
    np.testing.assert_allclose(cross_entropy, copy_baseline(delay), rtol=1e-12, atol=0)


# --------------------------------------------------------------------------------------
# Adding problem.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [2, 3, 10, 101])
def test_adding_shapes_markers_and_target(length):
    x, y = adding_task(jax.random.key(5), 64, length)
    assert x.shape == (64, length, 2)
    assert y.shape == (64,)
    assert x.dtype == jnp.float32
    assert y.dtype == jnp.float32
    x, y = np.asarray(x), np.asarray(y)
    values, markers = x[..., 0], x[..., 1]
    half = length // 2
    # Markers are exactly 0 or 1, two per row, one in each half.
    assert np.all((markers == 0.0) | (markers == 1.0))
    np.testing.assert_array_equal(markers[:, :half].sum(axis=1), np.ones(64))
    np.testing.assert_array_equal(markers[:, half:].sum(axis=1), np.ones(64))
    assert np.all((values >= 0.0) & (values <= 1.0))
    np.testing.assert_allclose(y, (values * markers).sum(axis=1), rtol=1e-6, atol=1e-6)


def test_adding_marker_positions_cover_both_halves():
    T = 100
    x, _ = adding_task(jax.random.key(6), 4096, T)
    markers = np.asarray(x[..., 1])
    first = np.argmax(markers[:, : T // 2], axis=1)
    second = T // 2 + np.argmax(markers[:, T // 2 :], axis=1)
    # 4096 draws over 50 positions: P(some position never drawn) < 50 * (49/50)^4096 ~ 1e-34.
    assert first.min() == 0
    assert first.max() == T // 2 - 1
    assert second.min() == T // 2
    assert second.max() == T - 1
    _, p_first = stats.chisquare(np.bincount(first, minlength=T // 2))
    _, p_second = stats.chisquare(np.bincount(second - T // 2, minlength=T // 2))
    assert p_first > 1e-3
    assert p_second > 1e-3


def test_adding_keys_and_jit():
    key = jax.random.key(7)
    x, y = adding_task(key, 8, 20)
    x2, y2 = adding_task(key, 8, 20)
    x3, _ = adding_task(jax.random.key(8), 8, 20)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(x, x3)

    @jax.jit
    def step(key):
        return adding_task(key, 8, 20)

    jx, jy = step(key)
    np.testing.assert_allclose(jx, x, rtol=0, atol=0)
    np.testing.assert_allclose(jy, y, rtol=1e-6, atol=1e-6)


def test_adding_baseline_matches_empirical_mse():
    np.testing.assert_allclose(adding_baseline(), 1 / 6, rtol=1e-15, atol=0)
    _, y = adding_task(jax.random.key(9), 100_000, 20)
    mse = float(np.mean((np.asarray(y, dtype=np.float64) - 1.0) ** 2))
    # (y - 1) is triangular on [-1, 1]: E[(y-1)^4] = 1/15, so Var[(y-1)^2] = 1/15 - 1/36
    # = 7/180 and the standard error of the mean over 1e5 rows is sqrt(7/180/1e5) ~ 6.2e-4.
    # atol = 5 standard errors; the key is fixed, so the test is deterministic.
    standard_error = math.sqrt(7 / 180 / 100_000)
    np.testing.assert_allclose(mse, adding_baseline(), rtol=0, atol=5 * standard_error)


# --------------------------------------------------------------------------------------
# Lag windows.
# --------------------------------------------------------------------------------------


def test_windows_by_hand_1d():
    series = np.arange(6, dtype=np.float32)  # 0 1 2 3 4 5
    inputs, targets = windows(series, lag=3, horizon=2)
    # W = 6 - 3 - 2 + 1 = 2 windows.
    expected_inputs = np.array([[0, 1, 2], [1, 2, 3]], dtype=np.float32)[..., None]
    expected_targets = np.array([[3, 4], [4, 5]], dtype=np.float32)[..., None]
    assert inputs.shape == (2, 3, 1)
    assert targets.shape == (2, 2, 1)
    np.testing.assert_allclose(inputs, expected_inputs, rtol=0, atol=0)
    np.testing.assert_allclose(targets, expected_targets, rtol=0, atol=0)


def test_windows_by_hand_2d_int():
    series = np.arange(10, dtype=np.int32).reshape(5, 2)  # row t = [2t, 2t+1]
    inputs, targets = windows(series, lag=2, horizon=1)
    assert inputs.shape == (3, 2, 2)
    assert targets.shape == (3, 1, 2)
    assert inputs.dtype == jnp.int32
    np.testing.assert_array_equal(inputs[0], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(inputs[2], [[4, 5], [6, 7]])
    np.testing.assert_array_equal(targets[:, 0], [[4, 5], [6, 7], [8, 9]])


@pytest.mark.parametrize(("n", "lag", "horizon"), [(5, 1, 1), (5, 4, 1), (50, 7, 3), (12, 1, 11)])
def test_windows_general(n, lag, horizon):
    rng = np.random.default_rng(0)
    series = jnp.asarray(rng.normal(size=(n, 3)).astype(np.float32))
    inputs, targets = windows(series, lag, horizon)
    count = n - lag - horizon + 1
    assert inputs.shape == (count, lag, 3)
    assert targets.shape == (count, horizon, 3)
    for j in range(count):
        np.testing.assert_allclose(inputs[j], series[j : j + lag], rtol=0, atol=0)
        np.testing.assert_allclose(targets[j], series[j + lag : j + lag + horizon], rtol=0, atol=0)


def test_windows_under_jit():
    series = jnp.arange(20.0)
    f = jax.jit(windows, static_argnums=(1, 2))
    inputs, targets = f(series, 4, 2)
    ref_inputs, ref_targets = windows(series, 4, 2)
    np.testing.assert_allclose(inputs, ref_inputs, rtol=0, atol=0)
    np.testing.assert_allclose(targets, ref_targets, rtol=0, atol=0)


# --------------------------------------------------------------------------------------
# Bad inputs.
# --------------------------------------------------------------------------------------

KEY = jax.random.key(0)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: copy_task(KEY, 0, 10), ValueError, r"batch_size must be an int >= 1, got 0"),
        (lambda: copy_task(KEY, -3, 10), ValueError, r"batch_size .* got -3"),
        (lambda: copy_task(KEY, 4, 0), ValueError, r"delay must be an int >= 1, got 0"),
        (lambda: copy_task(KEY, 4.0, 10), TypeError, r"batch_size must be an int, got float"),
        (lambda: copy_task(KEY, 4, 10.0), TypeError, r"delay must be an int, got float"),
        (lambda: copy_task(KEY, True, 10), TypeError, r"batch_size must be an int, got bool"),
        (lambda: copy_baseline(0), ValueError, r"delay must be an int >= 1, got 0"),
        (lambda: copy_baseline(100.0), TypeError, r"delay must be an int, got float"),
        (lambda: adding_task(KEY, 0, 10), ValueError, r"batch_size must be an int >= 1, got 0"),
        (lambda: adding_task(KEY, 4, 1), ValueError, r"length must be an int >= 2 .*half.*got 1"),
        (lambda: adding_task(KEY, 4, 0), ValueError, r"length .* got 0"),
        (lambda: adding_task(KEY, 4, "10"), TypeError, r"length must be an int, got str"),
        (lambda: adding_task(KEY, False, 10), TypeError, r"batch_size must be an int, got bool"),
        (lambda: windows(np.arange(10.0), 0, 1), ValueError, r"lag must be an int >= 1, got 0"),
        (lambda: windows(np.arange(10.0), 2, 0), ValueError, r"horizon must be an int >= 1"),
        (lambda: windows(np.arange(10.0), 2.5, 1), TypeError, r"lag must be an int, got float"),
        (lambda: windows(np.arange(10.0), 2, True), TypeError, r"horizon must be an int"),
        (lambda: windows([1.0, 2.0, 3.0], 1, 1), TypeError, r"series must be a numpy or jax"),
        (
            lambda: windows(np.zeros((4, 2, 2)), 1, 1),
            ValueError,
            r"rank 1 \[N\] or 2 \[N, F\], got rank 3",
        ),
        (lambda: windows(np.array(3.0), 1, 1), ValueError, r"got rank 0"),
        (
            lambda: windows(np.arange(4.0), 3, 2),
            ValueError,
            r"too short.*lag \+ horizon = 5.*length 4",
        ),
    ],
)
def test_bad_inputs_raise_with_clear_messages(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_numpy_integer_sizes_accepted():
    inputs, _ = copy_task(KEY, np.int64(2), np.int32(3))
    assert inputs.shape == (2, 23)
    inputs, targets = windows(np.arange(5.0), np.int64(2), np.int64(1))
    assert inputs.shape == (3, 2, 1)
    assert targets.shape == (3, 1, 1)
