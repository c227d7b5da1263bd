"""The benchmark's output: the machine it ran on, the Markdown tables and the files.

Reads the JSON-able result of :func:`experiments.benchmark.harness.run_benchmark`.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from experiments.benchmark.contenders import RATIO_COLUMNS, Shape, peer_column
from experiments.shared import records

__all__ = ["NOISY_IQR_FRACTION", "machine_info", "to_markdown", "write_results"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info() -> dict[str, Any]:
    """CPU, cores, device and the versions of everything timed."""
    import flax

    import lstmx

    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "lstmx": lstmx.__version__,
        "jax": jax.__version__,
        "flax": flax.__version__,
        "jax_backend": jax.default_backend(),
        "jax_device": str(jax.devices()[0].device_kind),
        "thread_environment": {
            name: os.environ[name]
            for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS")
            if name in os.environ
        },
    }
    for key, distribution in (("haiku", "dm-haiku"), ("torch", "torch")):
        try:
            info[key] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            info[key] = None
    torch = sys.modules.get("torch")  # thread counts only if the benchmark imported torch
    if torch is not None and hasattr(torch, "get_num_threads"):
        info["torch_threads"] = torch.get_num_threads()
        info["torch_interop_threads"] = torch.get_num_interop_threads()
    return info


def _machine_line(machine: Mapping[str, Any]) -> str:
    parts = [
        f"{machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable)",
        f"jax {machine['jax']} ({machine['jax_backend']}: {machine['jax_device']})",
        f"flax {machine['flax']}",
    ]
    if machine.get("haiku"):
        parts.append(f"dm-haiku {machine['haiku']}")
    if machine.get("torch"):
        threads = machine.get("torch_threads")
        parts.append(f"torch {machine['torch']}" + (f" ({threads} threads)" if threads else ""))
    parts.append(f"Python {machine['python']}, {machine['platform']}")
    if machine.get("load_average_before") is not None:
        parts.append(
            f"1-minute load average {machine['load_average_before']} before, "
            f"{machine.get('load_average_after')} after"
        )
    return "; ".join(parts)


NOISY_IQR_FRACTION = 0.25


def _format_ms(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _is_noisy(row: Mapping[str, Any]) -> bool:
    return row["iqr_ms"] > NOISY_IQR_FRACTION * row["median_ms"]


def _median_cell(row: Mapping[str, Any]) -> str:
    return _format_ms(row["median_ms"]) + (" †" if _is_noisy(row) else "")


def _format_memory(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _ratio_cells(row: Mapping[str, Any]) -> list[str]:
    ratios = row.get("ratios")
    if ratios is None:
        return [""] * len(RATIO_COLUMNS)
    by_column = {peer_column(peer): value for peer, value in ratios.items()}
    return [
        f"{by_column[column]:.2f}"
        if column in by_column and math.isfinite(by_column[column])
        else "–"
        for column in RATIO_COLUMNS
    ]


def _shape_text(shape: Mapping[str, int]) -> str:
    return str(Shape(**shape))


def to_markdown(result: Mapping[str, Any]) -> str:
    """The benchmark as Markdown: machine, settings, the main table, the sweep, skipped peers."""
    settings = result["settings"]
    lines = [
        "# lstmx benchmark",
        "",
        f"Machine: {_machine_line(result['machine'])}.",
        "",
        f"Median of {settings['repetitions']} interleaved repetitions after "
        f"{settings['warmup']} warm-up call(s). train = loss mean(ys²) and its gradient with "
        "respect to the parameters; inference = forward only. Shape = BxTxIxH. "
        "Ratio columns: lstmx median / peer median (below 1: lstmx faster). "
        "GFLOP/s from matrix products only: forward 2·B·T·(I+H)·G·H (G = 4 LSTM, 3 GRU), "
        "train 3× forward. Memory: JAX, XLA's buffer assignment for the compiled step "
        "(arguments + outputs + temporaries); torch, parameters + input + the allocator's "
        "peak during the step (torch.profiler).",
        "",
    ]
    header = ["shape", "contender", "mode", "median ms", "IQR ms"]
    header += [f"÷ {column}" for column in RATIO_COLUMNS] + ["GFLOP/s", "peak MiB"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in result["results"]:
        cells = [
            _shape_text(row["shape"]),
            row["name"],
            row["mode"],
            _median_cell(row),
            _format_ms(row["iqr_ms"]),
            *_ratio_cells(row),
            f"{row['gflops_per_s']:.2f}",
            _format_memory(row["peak_memory_mib"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if result.get("sweep"):
        sweep_shape = settings["sweep_shape"]
        lines += [
            "",
            f"## Sequence length sweep (train, BxIxH = {sweep_shape})",
            "",
            f"Median of {settings.get('sweep_repetitions', settings['repetitions'])} "
            "interleaved repetitions per T. Speed-up: lstmx lstm's time ÷ this row's (above 1: "
            "faster than the LSTM). minGRU and minLSTM run their default path, "
            '`parallel="auto"`: on CPU a sequential loop over blocks of up to 64 steps (one '
            "gate GEMM per block, an elementwise inner loop), elsewhere the log-space "
            "associative scan (depth log T).",
            "",
            "| T | contender | median ms | IQR ms | µs per time step | speed-up vs lstmx lstm "
            "| ÷ flax | ÷ torch | peak MiB |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        lstm_ms = {
            row["shape"]["steps"]: row["median_ms"]
            for row in result["sweep"]
            if row["contender"] == "lstmx:lstm"
        }
        for row in result["sweep"]:
            ratios = row.get("ratios") or {}
            flax_ratio = ratios.get("flax:LSTMCell")
            torch_ratio = ratios.get("torch:LSTM")
            lstm = lstm_ms.get(row["shape"]["steps"])
            cells = [
                str(row["shape"]["steps"]),
                row["name"],
                _median_cell(row),
                _format_ms(row["iqr_ms"]),
                f"{1e3 * row['median_ms'] / row['shape']['steps']:.0f}",
                "" if lstm is None else f"{lstm / row['median_ms']:.1f}×",
                "" if flax_ratio is None else f"{flax_ratio:.2f}",
                "" if torch_ratio is None else f"{torch_ratio:.2f}",
                _format_memory(row["peak_memory_mib"]),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    if result.get("seeds"):
        lines += [
            "",
            "## Many seeds (one training step of the default adding run)",
            "",
            "T = 50, batch 50 per seed, hidden 128, LSTM + linear read-out of the last "
            "output, RMSProp 1e-3 after clipping at 1 (`python -m experiments.run`'s "
            "settings). vmapped: one jitted `vmap` over the seeds; one after another: the "
            "1-seed program called S times. Flax: `nn.RNN(nn.LSTMCell)` + `nn.Dense`, built "
            "the same way. Medians, interleaved per S.",
            "",
            "| library | seeds S | vmapped ms | one after another ms | vmapped(S) ÷ vmapped(1) |",
            "|---|---|---|---|---|",
        ]
        for row in result["seeds"]:
            ratio = row["vmapped_over_one_seed"]
            cells = [
                row["library"],
                str(row["seeds"]),
                _format_ms(row["vmapped_ms"]),
                _format_ms(row["sequential_ms"]),
                "" if ratio is None else f"{ratio:.2f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    if result.get("memory"):
        memory = result["memory"]
        lines += [
            "",
            f"## Long sequences: training memory (LSTM, BxIxH = {memory['shape']})",
            "",
            "XLA's buffer assignment of the compiled training step, MiB. remat: "
            "`lstmx.scan(..., remat=k)` with k = round(√T). Loss *last*: mean(h_T²), a "
            "loss on the final state; *all*: mean(ys²) over every output, whose "
            "`[T, B, H]` outputs and cotangents no remat can avoid.",
            "",
            "| T | loss | lstmx | lstmx remat (k) | flax LSTMCell |",
            "|---|---|---|---|---|",
        ]
        cells: dict = {}
        for row in memory["rows"]:
            key = (row["steps"], row["loss"])
            way = "remat" if row["remat"] else row["contender"]
            cells.setdefault(key, {})[way] = row
        for (steps, loss), ways in cells.items():
            remat = ways.get("remat")
            lines.append(
                f"| {steps} | {loss} | {_format_memory(ways['lstmx']['peak_mib'])} | "
                f"{_format_memory(remat['peak_mib'])} ({remat['remat']}) | "
                f"{_format_memory(ways['flax']['peak_mib'])} |"
            )
        timing = memory.get("timing")
        if timing:
            lines += [
                "",
                f"One training step at T = {timing['steps']} (loss *last*): "
                f"{timing['plain_ms']:.0f} ms without remat, {timing['remat_ms']:.0f} ms with "
                f"remat={timing['remat']} ({timing['remat_over_plain']:.2f}×).",
            ]
    rows = list(result["results"]) + list(result.get("sweep") or [])
    if any(_is_noisy(row) for row in rows):
        lines += [
            "",
            f"† IQR above {NOISY_IQR_FRACTION:.0%} of the median: the machine was disturbed "
            "during these repetitions; rerun on an idle machine before quoting the number.",
        ]
    if result.get("skipped"):
        lines += ["", "Skipped peers:"]
        lines += [f"* {library}: {reason}" for library, reason in result["skipped"].items()]
    return "\n".join(lines) + "\n"


def write_results(result: Mapping[str, Any], workdir: str | os.PathLike) -> list[str]:
    """Writes ``benchmark.json`` and ``benchmark.md`` into ``workdir`` atomically; returns paths."""
    workdir = Path(workdir)
    json_path, md_path = workdir / "benchmark.json", workdir / "benchmark.md"
    records.write_json_atomic(json_path, result)
    records.write_atomic(md_path, to_markdown(result).encode())
    return [str(json_path), str(md_path)]
