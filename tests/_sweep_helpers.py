"""What the sweep's tests share: a compilation cache for their subprocesses, and the
records of a study workdir with the times left out (times differ between any two runs)."""

import json
import os
from pathlib import Path

TIMES = ("wall_time", "steps_per_second", "versions")


def cached_environment(cache: Path) -> dict:
    """The environment of subprocesses that share one persistent JAX compilation cache."""
    return {
        **os.environ,
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


def records_without_times(workdir: Path) -> dict:
    """Every cell's records under a study workdir, times left out, by relative path."""
    out = {}
    for path in sorted(workdir.glob("cells/*/records/*.json")):
        record = json.loads(path.read_text())
        for key in TIMES:
            record.pop(key)
        for point in [*record["history"], record["final"]]:
            point.pop("wall_time")
        out[str(path.relative_to(workdir))] = record
    return out
