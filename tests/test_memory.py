"""The memory pre-flight (experiments.shared.memory): a training state that cannot fit is
refused with one line naming both numbers, before anything is allocated; a real XLA
allocation failure is recognised as out of memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from experiments.shared import memory

ROOT = Path(__file__).resolve().parents[1]
LIMIT_KB = 6_000_000  # ulimit -v: 6 GB of address space, as in the report


def _limited(command: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``command`` in bash under ``ulimit -v``, from the repository root."""
    return subprocess.run(
        ["bash", "-c", f"ulimit -v {LIMIT_KB} && {command}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_tree_bytes_counts_every_leaf():
    tree = {"a": jax.ShapeDtypeStruct((3, 4), jnp.float32), "b": jnp.zeros((5,), jnp.bfloat16)}
    assert memory.tree_bytes(tree) == 3 * 4 * 4 + 5 * 2


def test_check_fits_refuses_with_both_numbers(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: (1_000_000_000, "ulimit -v"))
    params = {"w": jax.ShapeDtypeStruct((20_000, 20_000), jnp.float32)}  # 1.6 GB
    state = {"params": params, "moment": params}
    with pytest.raises(
        memory.OutOfMemoryError,
        match=r"needs at least 4\.80 GB .* 1\.00 GB is available \(ulimit -v\)",
    ):
        memory.check_fits("adding T=10 lstm", state, params, 1)
    small = {"w": jax.ShapeDtypeStruct((10, 10), jnp.float32)}
    assert memory.check_fits("x", small, small, 1) == 800


def test_available_bytes_is_the_smallest_limit_that_applies():
    available = memory.available_bytes()
    assert available is not None and available[0] > 0
    assert available[1] in ("MemAvailable", "ulimit -v", "cgroup memory.max")


def test_a_run_too_large_for_the_address_space_is_refused_in_one_line(tmp_path):
    # hidden 20000: the LSTM's kernels alone are 6.4 GB per seed. Before the pre-flight
    # this hung at 0 % CPU inside XLA's allocator under the same limit.
    result = _limited(
        f"{sys.executable} -m experiments.run --task=adding --length=10 --variants=lstm "
        f"--seeds=1 --steps=20 --hidden_size=20000 --workdir={tmp_path / 'work'}"
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "experiments.run: error: adding T=10 lstm: the training state" in lines[0]
    assert "GB is available (ulimit -v)" in lines[0]
    assert not list((tmp_path / "work").rglob("*.json"))  # nothing trained, nothing recorded


def test_a_real_allocation_failure_counts_as_out_of_memory():
    script = textwrap.dedent(
        """
        import jax.numpy as jnp
        from experiments.shared import memory
        try:
            jnp.ones((2_000_000_000,), jnp.float32).block_until_ready()  # 8 GB
        except Exception as error:
            print("out of memory" if memory.is_out_of_memory(error) else repr(error))
        else:
            print("allocated")
        """
    )
    result = _limited(f"{sys.executable} -c '{script}'")
    assert result.stdout.strip() == "out of memory", (result.stdout, result.stderr)
