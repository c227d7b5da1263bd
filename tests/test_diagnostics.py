"""lstmx.diagnostics: gradient norms against finite differences, gate statistics by hand,
the reports, and the experiments.gradient_flow command line. Bad input to the
diagnostics is in tests/test_bad_input.py.

Tolerances: finite differences in float64 with central steps of 1e-6 have truncation error
~1e-12 and rounding error ~1e-10 relative, so Jacobian norms are compared with rtol=1e-7;
float32 identities (sqrt(H), means over a batch) with rtol=1e-6 or 1e-5.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _cli import run_module
from _helpers import random_like as _random_like
from _helpers import random_params as _random_params

import lstmx
from experiments.gradient_flow import report
from lstmx import diagnostics
from lstmx.sequence import StackState

ROOT = Path(__file__).resolve().parents[1]
EPS = 1e-6


def _perturb_h(state, delta):
    """Adds ``delta [N, H]`` to the hidden output ``h`` of a batched state (top layer)."""
    if isinstance(state, StackState):
        return StackState((*state.layers[:-1], _perturb_h(state.layers[-1], delta)))
    return state._replace(h=jnp.asarray(np.asarray(state.h) + delta))


def _output_h(state):
    return _output_h(state.layers[-1]) if isinstance(state, StackState) else state.h


def _finite_difference_norms(cell, params, xs):
    """||dh_T/dx_t||_F and ||dh_T/dh_t||_F by central differences through lstmx.scan.

    Every perturbation runs in one batch; ``lengths`` (right padding) gives each batch
    entry its own number of steps, so the whole check is three calls of fixed shape.
    """
    T, I = xs.shape
    H = cell.output_size
    # Inputs: all T*I perturbations of x_t[k], both signs: rows [sign, t, k].
    basis = EPS * np.eye(T * I).reshape(T * I, T, I)
    _, ys = lstmx.scan(cell, params, jnp.asarray(np.concatenate([xs + basis, xs - basis])))
    h_last = np.asarray(ys[:, -1]).reshape(2, T, I, H)
    jac_x = (h_last[0] - h_last[1]) / (2 * EPS)
    wrt_inputs = np.sqrt(np.sum(jac_x**2, axis=(1, 2)))
    # States: the state after step t (t = 1..T-1) for every t, from sequences cut at t.
    steps = np.arange(1, T)
    xs_all = jnp.asarray(np.broadcast_to(xs, (T - 1, T, I)))
    states, _ = lstmx.scan(cell, params, xs_all, lengths=jnp.asarray(steps))
    # Perturb h_t by +-EPS e_j and run steps t+1..T from there: rows [t, sign, j].
    repeat = jax.tree_util.tree_map(lambda a: jnp.asarray(np.repeat(a, 2 * H, axis=0)), states)
    unit = np.concatenate([np.eye(H), -np.eye(H)])
    perturbed = _perturb_h(repeat, EPS * np.tile(unit, (T - 1, 1)))
    rest = np.stack([np.roll(xs, -t, axis=0)[: T - 1] for t in range(1, T)])  # x_{t+1}, ...
    final, _ = lstmx.scan(
        cell,
        params,
        jnp.asarray(np.repeat(rest, 2 * H, axis=0)),
        perturbed,
        lengths=jnp.asarray(np.repeat(T - steps, 2 * H)),
    )
    h_last = np.asarray(_output_h(final)).reshape(T - 1, 2, H, H)  # [t, sign, unit, output]
    jac_h = (h_last[:, 0] - h_last[:, 1]) / (2 * EPS)
    wrt_states = np.sqrt(np.sum(jac_h**2, axis=(1, 2)))
    return wrt_inputs, np.append(wrt_states, math.sqrt(H))  # dh_T/dh_T = I


CELLS = {
    "lstm": lambda: lstmx.variant("lstm", 2),
    "gru": lambda: lstmx.variant("gru", 2),
    "rnn": lambda: lstmx.variant("rnn", 2),
    "stack": lambda: lstmx.stack([lstmx.rnn(3), lstmx.rnn(2)]),
}


@pytest.mark.parametrize("name", CELLS)
def test_gradient_norms_match_finite_differences(name):
    with jax.enable_x64(True):
        cell = CELLS[name]()
        params = _random_params(cell, 2, seed=1, dtype=jnp.float64)
        xs = np.random.default_rng(2).standard_normal((4, 2))
        flow = diagnostics.gradient_norms(cell, params, jnp.asarray(xs))
        expected_inputs, expected_states = _finite_difference_norms(cell, params, xs)
        assert flow.wrt_inputs.shape == flow.wrt_states.shape == (4,)
        np.testing.assert_allclose(flow.wrt_inputs, expected_inputs, rtol=1e-7, atol=0)
        np.testing.assert_allclose(flow.wrt_states, expected_states, rtol=1e-7, atol=0)
        np.testing.assert_array_equal(flow.lags, [3, 2, 1, 0])
        # dh_T/dh_T is the identity: norm sqrt(H).
        np.testing.assert_allclose(flow.wrt_states[-1], math.sqrt(cell.output_size), rtol=1e-12)


def test_batch_norms_are_the_mean_of_each_sequences_norms():
    cell = lstmx.rnn(3)
    params = _random_params(cell, 2, seed=1)
    xs = np.random.default_rng(2).standard_normal((2, 2, 5, 2), np.float32)  # 2 batch axes
    state = _random_like(jax.eval_shape(lambda: cell.initial_state((2, 2))), seed=3)
    flow = diagnostics.gradient_norms(cell, params, jnp.asarray(xs), state)
    singles = [
        diagnostics.gradient_norms(
            cell, params, jnp.asarray(xs[a, b]), lstmx.RNNState(state.h[a, b])
        )
        for a in range(2)
        for b in range(2)
    ]
    for field in ("wrt_inputs", "wrt_states"):
        expected = np.mean([getattr(single, field) for single in singles], axis=0)
        np.testing.assert_allclose(getattr(flow, field), expected, rtol=1e-5, atol=0)


def test_rnn_gradients_vanish_faster_than_lstm_at_initialisation():
    """Qualitative, fixed seeds: from lag 1 to lag 40 the tanh RNN's ||dh_T/dh_t|| falls
    by a factor > 1000, the default-init LSTM's by < 100 (seen: 1.4e4 and 28)."""
    rng = np.random.default_rng(0)  # adding-problem inputs: values, two markers
    markers = np.zeros((2, 60))
    markers[:, [7, 41]] = 1.0
    xs = jnp.asarray(np.stack([rng.uniform(size=(2, 60)), markers], -1), jnp.float32)
    ratios = {}
    for name in ("rnn", "lstm"):
        cell = lstmx.variant(name, 16)
        flow = diagnostics.gradient_norms(cell, cell.init(jax.random.key(10), 2), xs)
        by_lag = np.asarray(flow.wrt_states)[::-1]
        ratios[name] = by_lag[1] / by_lag[40]
    assert ratios["rnn"] > 1000 > 100 > ratios["lstm"] > 1, ratios


# --------------------------------------------------------------------------------------
# Gate statistics.
# --------------------------------------------------------------------------------------


def _logistic(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def test_gates_with_zero_weights_are_the_sigmoid_of_the_bias():
    """Zero kernels: every gate is its bias's activation at every step, whatever the input."""
    H = 3
    cell = lstmx.lstm(H)
    params = _random_params(cell, 2, seed=0, scale=0.0)  # zeros
    b = {"i": [-4.0, 0.5, 4.0], "f": [1.0, 1.0, 1.0], "g": [-3.0, 0.0, 3.0], "o": [0.0, 2.0, -1.0]}
    params = params._replace(b=jnp.asarray(b["i"] + b["f"] + b["g"] + b["o"]))
    xs = jnp.asarray(np.random.default_rng(1).standard_normal((2, 6, 2)), jnp.float32)
    stats = diagnostics.gate_statistics(cell, params, xs)
    assert list(stats) == ["i", "f", "g", "o"]
    expected = {name: _logistic(b[name]) for name in "ifo"} | {"g": np.tanh(b["g"])}
    for name, values in expected.items():
        np.testing.assert_allclose(stats[name].mean, values.mean(), rtol=1e-6, atol=1e-7)
    # sigmoid(-4) = 0.018 < 0.05, sigmoid(4) = 0.982 > 0.95; tanh(+-3) = +-0.995.
    shares = {name: (s.saturated_low, s.saturated_high, s.activation) for name, s in stats.items()}
    assert shares == {
        "i": (pytest.approx(1 / 3, rel=1e-6), pytest.approx(1 / 3, rel=1e-6), "sigmoid"),
        "f": (0.0, 0.0, "sigmoid"),
        "g": (pytest.approx(1 / 3, rel=1e-6), pytest.approx(1 / 3, rel=1e-6), "tanh"),
        "o": (0.0, 0.0, "sigmoid"),
    }
    activations = diagnostics.gate_activations(cell, params, xs)
    assert activations["i"].shape == (2, 6, H)
    np.testing.assert_allclose(
        activations["i"], np.broadcast_to(_logistic(b["i"]), (2, 6, H)), rtol=1e-6, atol=1e-7
    )


@pytest.mark.parametrize("name", ["gru", "gru_cho"])
def test_gru_gates_with_zero_weights_and_both_reset_conventions(name):
    cell = lstmx.variant(name, 2)
    params = _random_params(cell, 1, seed=0, scale=0.0)  # zeros
    b_x = np.array([0.3, -0.2, 1.0, 0.5, -0.4, 0.1])  # r, z, n blocks
    b_h = np.array([0.2, 0.2, -0.5, 0.0, 0.8, 0.9])
    params = params._replace(b_x=jnp.asarray(b_x, jnp.float32), b_h=jnp.asarray(b_h, jnp.float32))
    stats = diagnostics.gate_statistics(cell, params, jnp.ones((4, 1)))
    assert list(stats) == ["r", "z", "n"]
    r = _logistic(b_x[:2] + b_h[:2])
    z = _logistic(b_x[2:4] + b_h[2:4])
    # Reset after the matmul: n = tanh(b_xn + r * b_hn); before: tanh(b_xn + (r * 0) W_hn + b_hn).
    n = np.tanh(b_x[4:] + (r if name == "gru" else 1.0) * b_h[4:])
    for gate, values in (("r", r), ("z", z), ("n", n)):
        np.testing.assert_allclose(stats[gate].mean, values.mean(), rtol=1e-6, atol=1e-7)


def _states(cell, params, xs):
    """Every state before and after each step: ([T, ...] before, [T, ...] after)."""

    def body(state, x):
        new, _ = cell.step(params, state, x)
        return new, (state, new)

    _, (before, after) = jax.lax.scan(
        body, cell.initial_state(xs.shape[:-2]), jnp.moveaxis(xs, -2, 0)
    )
    return before, after


EXPECTED_GATES = {
    "rnn": [],
    "lstm": ["i", "f", "g", "o"],
    "peephole": ["i", "f", "g", "o"],
    "cifg": ["f", "g", "o"],
    "gru": ["r", "z", "n"],
    "gru_cho": ["r", "z", "n"],
    "nig": ["f", "g", "o"],
    "nfg": ["i", "g", "o"],
    "nog": ["i", "f", "g"],
    "niaf": ["i", "f", "o"],
    "noaf": ["i", "f", "g", "o"],
    "np": ["i", "f", "g", "o"],
    "fgr": ["i", "f", "g", "o"],
}


@pytest.mark.parametrize("name", list(EXPECTED_GATES))
def test_gates_of_every_variant_rebuild_its_states(name):
    """The recomputed gates reproduce the cell's own states through its update equations
    (LSTM: c_t = f c_{t-1} + i g, h_t = o tanh(c_t); GRU: h_t = (1 - z) n + z h_{t-1}),
    and their statistics are shares."""
    cell = lstmx.variant(name, 3)
    params = _random_params(cell, 2, seed=1, scale=1.0)
    xs = jnp.asarray(np.random.default_rng(2).standard_normal((2, 5, 2)), jnp.float32)
    activations = diagnostics.gate_activations(cell, params, xs)
    assert list(activations) == EXPECTED_GATES[name]
    gates = {k: np.moveaxis(np.asarray(v), -2, 0) for k, v in activations.items()}  # [T, B, H]
    before, after = jax.tree_util.tree_map(np.asarray, _states(cell, params, xs))
    if name in ("gru", "gru_cho"):
        h = (1.0 - gates["z"]) * gates["n"] + gates["z"] * before.h
        np.testing.assert_allclose(h, after.h, rtol=1e-5, atol=1e-6)
    elif name != "rnn":
        f = gates.get("f", 1.0)
        i = 1.0 - f if name == "cifg" else gates.get("i", 1.0)
        o = gates.get("o", 1.0)
        # NIAF's g = z_g is not a gate and not reported: check h from the cell's own c.
        c = after.c if name == "niaf" else f * before.c + i * gates["g"]
        h = o * (c if name == "noaf" else np.tanh(c))
        np.testing.assert_allclose(c, after.c, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(h, after.h, rtol=1e-5, atol=1e-6)
        if name == "fgr":  # the FGR state carries the gate activations i, f, o
            carried = np.concatenate([gates["i"], gates["f"], gates["o"]], -1)
            np.testing.assert_allclose(carried, after.gates, rtol=1e-6, atol=1e-7)
    stats = diagnostics.gate_statistics(cell, params, xs)
    assert list(stats) == EXPECTED_GATES[name]
    for gate, value in stats.items():
        assert 0.0 <= value.saturated_low <= 1.0 and 0.0 <= value.saturated_high <= 1.0
        assert value.saturated_low + value.saturated_high <= 1.0
        assert value.activation == ("tanh" if gate in "gn" else "sigmoid")
        assert (-1.0 if value.activation == "tanh" else 0.0) <= value.mean <= 1.0
        np.testing.assert_allclose(
            value.mean, np.mean(np.asarray(activations[gate])), rtol=1e-6, atol=1e-7
        )


def test_gate_statistics_of_a_stack():
    cell = lstmx.stack([lstmx.lstm(3, peephole=True)] * 2)
    params = _random_params(cell, 2, seed=0)
    xs = jnp.asarray(np.random.default_rng(1).standard_normal((5, 2)), jnp.float32)
    stats = diagnostics.gate_statistics(cell, params, xs)
    assert list(stats) == [f"layers[{l}].{g}" for l in (0, 1) for g in "ifgo"]
    assert stats["layers[1].g"].activation == "tanh"
    # Layer 1 reads layer 0's outputs: its gates match a single cell run on them.
    _, hidden = lstmx.scan(lstmx.lstm(3, peephole=True), params.layers[0], xs)
    single = diagnostics.gate_statistics(lstmx.variant("peephole", 3), params.layers[1], hidden)
    for gate in "ifgo":
        np.testing.assert_allclose(
            stats[f"layers[1].{gate}"][:3], single[gate][:3], rtol=1e-6, atol=1e-7
        )


# --------------------------------------------------------------------------------------
# Reports and the command line.
# --------------------------------------------------------------------------------------


def _curves():
    flow = diagnostics.GradientFlow(jnp.array([0.01, 0.1, 1.0]), jnp.array([0.001, 0.5, 2.0]))
    stats = {"f": diagnostics.GateStats(0.7, 0.0, 0.25, "sigmoid")}
    return [
        report.FlowCurve("lstm", "init", 0, flow, stats),
        report.FlowCurve("lstm", "trained", 5, flow._replace(wrt_states=flow.wrt_states * 2)),
    ]


def test_flow_csv_rows(tmp_path):
    report.write_flow_csv(_curves(), tmp_path / "flow.csv")
    with open(tmp_path / "flow.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == list(report.FLOW_CSV_COLUMNS)
    assert len(rows) == 6
    assert rows[0] == {
        "variant": "lstm",
        "stage": "init",
        "train_steps": "0",
        "lag": "0",
        "norm_wrt_input": "1.0",
        "norm_wrt_state": "2.0",
    }
    assert (rows[5]["stage"], rows[5]["lag"]) == ("trained", "2")
    assert float(rows[5]["norm_wrt_state"]) == pytest.approx(0.002, rel=1e-6)
    report.write_gate_csv(_curves(), tmp_path / "gates.csv")
    with open(tmp_path / "gates.csv", newline="") as file:
        gate_rows = list(csv.DictReader(file))
    assert gate_rows == [
        {
            "variant": "lstm",
            "stage": "init",
            "train_steps": "0",
            "gate": "f",
            "activation": "sigmoid",
            "mean": "0.7",
            "saturated_low": "0.0",
            "saturated_high": "0.25",
        }
    ]


def test_plot_and_summary(tmp_path):
    report.plot_flow(_curves(), tmp_path / "flow.png", "title")
    assert (tmp_path / "flow.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = report.format_flow_summary(_curves()).splitlines()
    assert summary[0].split()[-2:] == ["1", "2"]  # lags 1 and the longest, 2
    assert summary[1].split()[-2:] == ["5.000e-01", "1.000e-03"]
    assert summary[2].startswith("lstm, after 5 steps")
    assert "f +0.70 (sat 0%/25%)" in summary[-1]


def _cli(*flags):
    return run_module("experiments.gradient_flow", *flags)


def test_cli_writes_csv_and_plot(tmp_path):
    out = tmp_path / "out"
    result = _cli(
        "--variants=gru", "--length=4", "--hidden_size=2", "--batch_size=2", f"--workdir={out}"
    )
    assert result.returncode == 0, result.stderr
    assert "deprecated" not in result.stderr
    with open(out / "gradient_flow.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(r["variant"], r["stage"], r["lag"]) for r in rows] == [
        ("gru", "init", str(lag)) for lag in range(4)
    ]
    assert float(rows[0]["norm_wrt_state"]) == pytest.approx(math.sqrt(2), rel=1e-6)
    assert (out / "gradient_flow.png").stat().st_size > 0
    assert (out / "gate_statistics.csv").read_text().count("\ngru,init,0,") == 3
    assert "||dh_T/dh_t|| at lag" in result.stdout


def test_cli_output_dir_is_a_deprecated_alias_of_workdir(tmp_path):
    # The alias is used (and noted) before anything is computed: a path under a file fails.
    (tmp_path / "file").write_text("keep me")
    result = _cli(f"--output_dir={tmp_path / 'file' / 'sub'}")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "experiments.gradient_flow: note: --output_dir is deprecated; use --workdir."
    assert "--output_dir" in lines[1] and "Not a directory" in lines[1] and len(lines) == 2


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--variants=lstm,lstn"], "--variants must be a non-empty list of: rnn, lstm"),
        (["--length=1"], "--length"),
        (["--output_dir=elsewhere"], "give --workdir or its deprecated alias --output_dir"),
    ],
)
def test_cli_bad_flags_exit_with_one_line(flags, message, tmp_path):
    result = _cli(*flags, f"--workdir={tmp_path / 'o'}")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert len([line for line in result.stderr.splitlines() if "rror" in line]) == 1, result.stderr
