"""experiments.benchmark (harness and command line): correctness only, never speed.

Timings are not asserted anywhere: they depend on the machine and its load. What is
checked: the FLOP formula, that every contender computes a finite loss and gradient (and
the same loss as lstmx for the same weights), the round-robin order, the result layout and
files, skipped peers, and one-line errors for bad flags.
"""

import json
import sys
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _cli import run_module

import lstmx
from experiments.benchmark import harness as bench
from experiments.benchmark import memory as memory_benchmark
from experiments.benchmark import seeds as seeds_benchmark
from lstmx import convert

ROOT = Path(__file__).resolve().parents[1]
TINY = bench.Shape(batch=2, steps=3, inputs=2, hidden=4)


def _have(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


HAVE_HAIKU = _have("haiku")
HAVE_TORCH = _have("torch")


def _xs(shape: bench.Shape, seed: int = 1) -> np.ndarray:
    size = (shape.batch, shape.steps, shape.inputs)
    return np.random.default_rng(seed).standard_normal(size).astype(np.float32)


# ------------------------------------------------------------------------ shapes and FLOPs


def test_flop_formula_on_a_known_shape():
    shape = bench.Shape(batch=128, steps=100, inputs=10, hidden=128)
    # 2 * B * T * (I + H) * G * H
    assert bench.forward_flops(shape, 4) == 2 * 128 * 100 * 138 * 4 * 128 == 1_808_793_600
    assert bench.train_flops(shape, 4) == 3 * 1_808_793_600
    assert bench.forward_flops(shape, 3) == 1_356_595_200  # GRU: three gate blocks
    big = bench.Shape(32, 100, 128, 512)
    assert bench.forward_flops(big, 4) == 2 * 32 * 100 * 640 * 2048


def test_lstmx_flops_count_the_variants_weight_matrices():
    assert bench.contender_flops("lstmx:lstm", TINY, "train") == bench.train_flops(TINY, 4)
    assert bench.contender_flops("flax:LSTMCell", TINY, "train") == bench.train_flops(TINY, 4)
    # CIFG (i = 1 - f) has three gate blocks; FGR adds its [3H, 3H] gate recurrence.
    assert bench.contender_flops("lstmx:cifg", TINY, "inference") == bench.forward_flops(TINY, 3)
    B, T, I, H = TINY
    fgr = 2 * B * T * ((I + H) * 4 * H + (3 * H) ** 2)
    assert bench.contender_flops("lstmx:fgr", TINY, "inference") == fgr
    assert bench.contender_flops("torch:GRU", TINY, "inference") == bench.forward_flops(TINY, 3)
    prepared = bench.prepare("lstmx:gru", TINY, _xs(TINY), ["inference"])
    assert prepared.steps["inference"].flops == bench.forward_flops(TINY, 3)


@pytest.mark.parametrize("variant", lstmx.variant_names())
def test_every_variants_flops_are_its_matrix_entries(variant):
    # Independent of the options' own count: every params leaf of two or more axes but the
    # peepholes p [3, H] (elementwise) is a matrix that each step multiplies, sLSTM's
    # block-diagonal [K, d, 4d] included; 2 FLOPs per entry per example and step.
    cell = lstmx.variant(variant, 8)
    params = jax.eval_shape(lambda: cell.init(jax.random.key(0), 3))
    entries = sum(
        leaf.size
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
        if leaf.ndim >= 2 and jax.tree_util.keystr(path) != ".p"
    )
    shape = bench.Shape(batch=2, steps=5, inputs=3, hidden=8)
    assert bench.contender_flops(f"lstmx:{variant}", shape, "inference") == 2 * 2 * 5 * entries


def test_parse_shape():
    assert bench.parse_shape("128x100x10x128") == bench.Shape(128, 100, 10, 128)
    assert bench.parse_sweep_shape("32X10x128") == bench.SweepShape(32, 10, 128)
    for bad in ("128x100x10", "0x1x1x1", "axbxcxd", "1x1x1x-1", ""):
        with pytest.raises(ValueError, match="BxTxIxH"):
            bench.parse_shape(bad)
    with pytest.raises(ValueError, match="BxIxH"):
        bench.parse_sweep_shape("1x2")


def test_contenders_follow_the_variant_family():
    assert bench.contenders_for(["lstm", "cifg"], ["flax", "torch"]) == [
        "lstmx:lstm",
        "lstmx:cifg",
        "flax:LSTMCell",
        "flax:OptimizedLSTMCell",
        "torch:LSTM",
    ]
    assert bench.contenders_for(["gru"], ["flax", "haiku"]) == [
        "lstmx:gru",
        "flax:GRUCell",
        "haiku:GRU",
    ]
    assert bench.family("lstmx:gru_cho") == "gru"
    assert bench.family("lstmx:rnn") == "rnn"


# ------------------------------------------------------------------------------ contenders

JAX_CONTENDERS = [
    "lstmx:lstm",
    "lstmx:gru",
    "flax:LSTMCell",
    "flax:OptimizedLSTMCell",
    "flax:GRUCell",
    pytest.param("haiku:LSTM", marks=pytest.mark.skipif(not HAVE_HAIKU, reason="no haiku")),
    pytest.param("haiku:GRU", marks=pytest.mark.skipif(not HAVE_HAIKU, reason="no haiku")),
]


@pytest.mark.parametrize("contender", JAX_CONTENDERS)
def test_jax_training_step_gives_finite_gradients(contender):
    prepared = bench.prepare(contender, TINY, _xs(TINY), ["train", "inference"])
    loss, grads = prepared.steps["train"].run()
    assert np.isfinite(float(loss)) and float(loss) > 0
    leaves = jax.tree_util.tree_leaves(grads)
    assert leaves and all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in leaves)
    assert any(float(jnp.max(jnp.abs(leaf))) > 0 for leaf in leaves)
    ys = prepared.steps["inference"].run()
    assert ys.shape == (TINY.batch, TINY.steps, TINY.hidden)
    for step in prepared.steps.values():
        assert step.peak_bytes is not None and step.peak_bytes > 0, step.memory_source


@pytest.mark.parametrize(
    "peer, to_lstmx, variant",
    [
        ("flax:LSTMCell", convert.from_flax_lstm, "lstm"),
        ("flax:OptimizedLSTMCell", convert.from_flax_lstm, "lstm"),
        ("flax:GRUCell", convert.from_flax_gru, "gru"),
    ],
)
def test_lstmx_and_flax_compute_the_same_loss_for_the_same_weights(peer, to_lstmx, variant):
    xs = jnp.asarray(_xs(TINY))
    flax_model = bench.jax_model(peer, TINY, jax.random.key(3))
    lstmx_model = bench.jax_model(f"lstmx:{variant}", TINY, jax.random.key(4))
    params = to_lstmx(flax_model.params["params"]["cell"])
    assert isinstance(params, type(lstmx_model.params))
    np.testing.assert_allclose(
        lstmx_model.loss(params, xs), flax_model.loss(flax_model.params, xs), rtol=1e-5, atol=0
    )


@pytest.mark.skipif(not HAVE_TORCH, reason="torch is an optional benchmark peer")
@pytest.mark.parametrize(
    "peer, to_lstmx, variant",
    [("torch:LSTM", convert.from_torch_lstm, "lstm"), ("torch:GRU", convert.from_torch_gru, "gru")],
)
def test_torch_contender_matches_lstmx_and_reports_memory(peer, to_lstmx, variant):
    import torch

    xs = _xs(TINY)
    prepared = bench.prepare(peer, TINY, xs, ["train", "inference"])
    loss = prepared.steps["train"].run()
    assert np.isfinite(float(loss))
    ys = prepared.steps["inference"].run()
    assert tuple(ys.shape) == (TINY.batch, TINY.steps, TINY.hidden)
    for step in prepared.steps.values():
        assert step.peak_bytes is None or step.peak_bytes > 0

    # The same seed rebuilds the same module: its weights through lstmx give its loss.
    torch.manual_seed(0)
    module = getattr(torch.nn, peer.split(":")[1])(TINY.inputs, TINY.hidden, batch_first=True)
    weights = [module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0]
    params = to_lstmx(*(w.detach().numpy() for w in weights))
    lstmx_model = bench.jax_model(f"lstmx:{variant}", TINY, jax.random.key(0))
    np.testing.assert_allclose(
        float(lstmx_model.loss(params, jnp.asarray(xs))), float(loss), rtol=1e-5, atol=0
    )


# --------------------------------------------------------------------------------- timing


def test_time_interleaved_rotates_round_robin():
    calls = []
    runs = {name: (lambda name=name: calls.append(name)) for name in "ABC"}
    times = bench.time_interleaved(runs, repetitions=4, warmup=1)
    assert calls == list("ABC" + "ABC" + "BCA" + "CAB" + "ABC")
    assert {name: len(values) for name, values in times.items()} == {"A": 4, "B": 4, "C": 4}
    assert all(value >= 0 for values in times.values() for value in values)


ROW_KEYS = {
    "shape",
    "contender",
    "name",
    "library",
    "family",
    "mode",
    "median_ms",
    "iqr_ms",
    "q25_ms",
    "q75_ms",
    "min_ms",
    "times_ms",
    "flops",
    "gflops_per_s",
    "peak_memory_mib",
    "memory_source",
    "compile_s",
}


def test_tiny_run_has_the_expected_layout_and_writes_json_and_markdown(tmp_path):
    result = bench.run_benchmark(
        shapes=[TINY],
        variants=["gru"],
        peers=["flax"],
        repetitions=2,
        warmup=1,
        sweep_steps=[3],
        sweep_shape=bench.SweepShape(2, 2, 4),
        sweep_variants=["lstm", "min_gru"],
        seed_counts=[],
        memory_steps=[],
    )
    assert set(result) == {
        "format", "machine", "settings", "skipped", "results", "sweep", "seeds", "memory"
    }  # fmt: skip
    assert result["seeds"] == [] and result["memory"] is None
    assert result["format"] == bench.FORMAT and result["skipped"] == {}
    assert {"cpu", "cores", "jax", "flax", "jax_device"} <= set(result["machine"])
    rows = result["results"]
    assert [(row["contender"], row["mode"]) for row in rows] == [
        (contender, mode)
        for mode in ("train", "inference")
        for contender in ("lstmx:gru", "flax:GRUCell")
    ]
    for row in rows:
        assert set(row) >= ROW_KEYS
        assert row["shape"] == TINY._asdict() and len(row["times_ms"]) == 2
        assert row["median_ms"] > 0 and row["iqr_ms"] >= 0 and row["gflops_per_s"] > 0
        assert row["peak_memory_mib"] > 0
        assert ("ratios" in row) == (row["library"] == "lstmx")
    assert set(rows[0]["ratios"]) == {"flax:GRUCell"}
    sweep = result["sweep"]
    assert [(row["shape"]["steps"], row["contender"], row["mode"]) for row in sweep] == [
        (3, "lstmx:lstm", "train"),
        (3, "lstmx:min_gru", "train"),
        (3, "flax:LSTMCell", "train"),
    ]
    assert sweep[0]["ratios"] == {"flax:LSTMCell": sweep[0]["median_ms"] / sweep[2]["median_ms"]}

    paths = bench.write_results(result, tmp_path / "out")
    assert [Path(path).name for path in paths] == ["benchmark.json", "benchmark.md"]
    assert json.loads((tmp_path / "out" / "benchmark.json").read_text()) == json.loads(
        json.dumps(result)
    )
    markdown = (tmp_path / "out" / "benchmark.md").read_text()
    assert markdown == bench.to_markdown(result)
    assert "Machine: " in markdown and result["machine"]["cpu"] in markdown
    assert "| 2x3x2x4 | lstmx gru | train |" in markdown
    assert "## Sequence length sweep" in markdown
    assert "load average" in markdown

    steady = json.loads(json.dumps(result))
    for row in steady["results"] + steady["sweep"]:
        row["iqr_ms"] = 0.0
    assert "†" not in bench.to_markdown(steady)
    steady["results"][0]["iqr_ms"] = steady["results"][0]["median_ms"]
    assert "| 2x3x2x4 | lstmx gru | train | " in bench.to_markdown(steady)
    assert " † |" in bench.to_markdown(steady) and "IQR above 25%" in bench.to_markdown(steady)


def test_missing_peer_is_skipped_with_its_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "haiku", None)  # "import haiku" now raises ImportError
    available, skipped = bench.available_peers(["flax", "haiku"])
    assert available == ["flax"] and set(skipped) == {"haiku"}
    assert "dm-haiku" in skipped["haiku"]
    result = bench.run_benchmark(
        shapes=[TINY], variants=["gru"], peers=["haiku"], repetitions=1, warmup=0,
        modes=["inference"], sweep_steps=[], seed_counts=[], memory_steps=[],
    )  # fmt: skip
    assert [row["contender"] for row in result["results"]] == ["lstmx:gru"]
    assert result["results"][0]["ratios"] == {}
    assert "Skipped peers:" in bench.to_markdown(result) and "haiku" in result["skipped"]


def test_unknown_names_raise_value_errors():
    with pytest.raises(ValueError, match="Unknown peer 'mxnet'"):
        bench.available_peers(["mxnet"])
    with pytest.raises(ValueError, match="Unknown variant"):
        bench.run_benchmark(shapes=[TINY], variants=["lstn"], sweep_steps=[], seed_counts=[])
    with pytest.raises(ValueError, match="Unknown variant"):
        bench.run_benchmark(shapes=[TINY], sweep_variants=["min_gur"], seed_counts=[])
    with pytest.raises(ValueError, match="Unknown contender"):
        bench.prepare("flax:TransformerCell", TINY, _xs(TINY))


# ------------------------------------------------------------------------------------ CLI


def _run(*flags):
    return run_module("experiments.benchmark", *flags)


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--shapes=128x100x10", "--shapes must be a non-empty list of BxTxIxH"),
        ("--variants=lstm,lstn", "--variants must be a non-empty list of: rnn, lstm"),
        ("--peers=flax,mxnet", "--peers must be a list of: flax, haiku, torch"),
        ("--mode=train,backward", "--mode must be a non-empty list of: train, inference"),
        ("--sweep_steps=100,-4", "--sweep_steps must be a list of positive integers"),
        ("--seed_counts=1,0", "--seed_counts must be a list of positive integers"),
        ("--memory_steps=x", "--memory_steps must be a list of positive integers"),
        ("--sweep_variants=lstm,lstn", "--sweep_variants must be a list of: rnn, lstm"),
        ("--repetitions=0", "--repetitions"),
    ],
)
def test_bad_flags_exit_with_one_line(flag, message, tmp_path):
    result = _run(flag, f"--workdir={tmp_path / 'out'}")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "rror" in line]
    assert len(error_lines) == 1, result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", ["--workdir", "--output_dir"])
def test_cli_tiny_run_writes_both_files(tmp_path, flag):
    out = tmp_path / "out"
    result = _run(
        "--shapes=2x3x2x4",
        "--variants=lstm",
        "--peers=",
        "--mode=inference",
        "--sweep_steps=",
        "--seed_counts=",
        "--memory_steps=",
        "--repetitions=1",
        "--warmup=0",
        f"{flag}={out}",
    )
    assert result.returncode == 0, result.stderr
    # --output_dir is the deprecated alias of --workdir: same files, and one note.
    notes = [line for line in result.stderr.splitlines() if "deprecated" in line]
    assert notes == (
        ["experiments.benchmark: note: --output_dir is deprecated; use --workdir."]
        if flag == "--output_dir"
        else []
    )
    assert "| 2x3x2x4 | lstmx lstm | inference |" in result.stdout
    record = json.loads((out / "benchmark.json").read_text())
    assert record["settings"]["peers"] == [] and record["sweep"] == []
    assert (out / "benchmark.md").read_text() in result.stdout


def test_many_seeds_rows_and_table():
    rows = seeds_benchmark.run_seeds_benchmark((1, 2), repetitions=1, warmup=0)
    assert [(row["library"], row["seeds"]) for row in rows] == [
        ("lstmx", 1), ("flax", 1), ("lstmx", 2), ("flax", 2)
    ]  # fmt: skip
    for row in rows:
        assert row["vmapped_ms"] > 0 and row["sequential_ms"] > 0
    assert rows[0]["vmapped_over_one_seed"] == 1.0
    assert rows[2]["vmapped_over_one_seed"] == rows[2]["vmapped_ms"] / rows[0]["vmapped_ms"]
    markdown = bench.to_markdown(_empty_result(seeds=rows))
    assert "## Many seeds" in markdown and "| lstmx | 2 |" in markdown


def test_many_seeds_vmapped_step_trains_each_seed_as_alone():
    """Seed s of the vmapped step equals the 1-seed step on seed s's params and batch."""
    init, step = seeds_benchmark._train_step("lstmx")
    params, opt_state = init(jax.random.split(jax.random.key(0), 2))
    xs, ys = seeds_benchmark._data(2)
    together = step(params, opt_state, xs, ys)
    second = jax.tree_util.tree_map(lambda a: a[1:], (params, opt_state, xs, ys))
    alone = step(*second)
    chex.assert_trees_all_close(
        jax.tree_util.tree_map(lambda a: a[1:], together), alone, rtol=1e-5, atol=1e-6
    )


def test_remat_lowers_training_memory_of_a_final_state_loss():
    result = memory_benchmark.run_memory_benchmark(steps=(100, 200), shape=(2, 3, 8), repetitions=1)
    rows = {
        (r["steps"], r["loss"], r["contender"], r["remat"] is not None): r for r in result["rows"]
    }
    assert len(rows) == 12
    for steps in (100, 200):
        plain, remat = rows[steps, "last", "lstmx", False], rows[steps, "last", "lstmx", True]
        assert remat["remat"] == memory_benchmark.remat_block(steps)
        assert remat["peak_mib"] < plain["peak_mib"] / 2
    # Without remat memory grows with T; with it, far more slowly.
    assert (
        rows[200, "last", "lstmx", False]["peak_mib"]
        > 1.8 * rows[100, "last", "lstmx", False]["peak_mib"]
    )
    assert result["timing"]["steps"] == 200 and result["timing"]["remat_ms"] > 0
    markdown = bench.to_markdown(_empty_result(memory=result))
    assert "## Long sequences" in markdown and "| 200 | last |" in markdown


def _empty_result(**sections):
    result = bench.run_benchmark(
        shapes=[TINY], variants=["lstm"], peers=[], repetitions=1, warmup=0,
        modes=["inference"], sweep_steps=[], seed_counts=[], memory_steps=[],
    )  # fmt: skip
    return {**result, **sections}
