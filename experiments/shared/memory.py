"""Memory: a pre-flight check of a run's training state against what the machine has, and
the one-line error an allocation failure becomes.

An allocation that does not fit must end the run with a line naming both numbers, never a
hang: under ``ulimit -v`` XLA's CPU allocator can block instead of failing when the
training state is far too large, so the state is sized (``jax.eval_shape``, nothing
allocated) before anything is allocated.

The estimate is a lower bound: the parameters and optimizer state of every seed (the
:class:`~experiments.shared.training.TrainState`) plus one set of gradients (the size of
the parameters). Activations come on top and depend on the cell, the batch and the length;
a run refused here would certainly not fit, a run let through may still run out, and that
is reported by :func:`is_out_of_memory` in one line too.
"""

from __future__ import annotations

import math
import resource
from typing import Any

import jax

__all__ = ["OutOfMemoryError", "available_bytes", "check_fits", "is_out_of_memory", "tree_bytes"]


class OutOfMemoryError(RuntimeError):
    """The training state does not fit, or an allocation failed while training."""


def tree_bytes(tree: Any) -> int:
    """Bytes of every array (or ``ShapeDtypeStruct``) leaf of a pytree."""
    return sum(
        math.prod(leaf.shape) * jax.numpy.dtype(leaf.dtype).itemsize
        for leaf in jax.tree_util.tree_leaves(tree)
        if hasattr(leaf, "shape") and hasattr(leaf, "dtype")
    )


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _address_space_left() -> int | None:
    """What ``ulimit -v`` still allows this process to map, or None without a limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return max(0, soft - int(line.split()[1]) * 1024)
    except OSError:
        pass
    return soft


def _cgroup_left() -> int | None:
    """What a cgroup v2 memory limit still allows, or None without one."""
    try:
        with open("/sys/fs/cgroup/memory.max") as limit_file:
            limit = limit_file.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current") as current_file:
            return max(0, int(limit) - int(current_file.read().strip()))
    except (OSError, ValueError):
        return None


def available_bytes() -> tuple[int, str] | None:
    """``(bytes, where)``: the memory a new allocation can have, and which limit that is
    (``"device memory"``, ``"ulimit -v"``, ``"cgroup memory.max"``, ``"MemAvailable"``);
    the smallest of those that apply. None when nothing can be read (not Linux)."""
    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return stats["bytes_limit"] - stats.get("bytes_in_use", 0), "device memory"
        return None
    limits = [
        (value, where)
        for value, where in (
            (_address_space_left(), "ulimit -v"),
            (_cgroup_left(), "cgroup memory.max"),
            (_meminfo_available(), "MemAvailable"),
        )
        if value is not None
    ]
    return min(limits) if limits else None


def _gb(num_bytes: float) -> str:
    return f"{num_bytes / 1e9:.2f} GB" if num_bytes >= 1e7 else f"{num_bytes / 1e6:.2f} MB"


def check_fits(name: str, state_shape: Any, params_shape: Any, num_seeds: int) -> int:
    """Refuses a run whose training state cannot fit.

    Args:
      name: how the error names the run.
      state_shape: the abstract training state of all seeds (``jax.eval_shape`` of init).
      params_shape: the abstract parameters of all seeds (their gradients take as much).
      num_seeds: the seeds in the state, for the message.

    Returns:
      The estimate in bytes.

    Raises:
      OutOfMemoryError: the estimate is above :func:`available_bytes`.
    """
    needed = tree_bytes(state_shape) + tree_bytes(params_shape)
    available = available_bytes()
    if available is not None and needed > available[0]:
        raise OutOfMemoryError(
            f"{name}: the training state of {num_seeds} seed(s) needs at least {_gb(needed)} "
            f"(parameters, optimizer state and gradients; activations come on top), and "
            f"{_gb(available[0])} is available ({available[1]}); use fewer seeds or a smaller "
            "--hidden_size."
        )
    return needed


def is_out_of_memory(error: BaseException) -> bool:
    """Whether an exception is XLA's failure to allocate (``RESOURCE_EXHAUSTED``) or
    Python's ``MemoryError``."""
    if isinstance(error, MemoryError):
        return True
    text = str(error)
    return isinstance(error, jax.errors.JaxRuntimeError) and (
        "RESOURCE_EXHAUSTED" in text or "Out of memory" in text
    )
