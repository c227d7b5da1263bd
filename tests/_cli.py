"""Running an experiment script as a user would: ``python -m MODULE --flag=value ...``."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_module(module: str, *flags: str, cwd: Path = ROOT, timeout: int = 300):
    """Runs ``python -m module *flags`` from ``cwd``; returns the CompletedProcess (text)."""
    return subprocess.run(
        [sys.executable, "-m", module, *flags],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
