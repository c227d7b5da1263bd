"""Running an experiment script as a user would: ``python -m MODULE --flag=value ...``.

Most of such a command's time is importing JAX, Flax, optax, SciPy and matplotlib (about
3 s of CPU each time). So each test process keeps one *launcher*: a Python process that
imports them once and then, for each command, forks a child that runs the script as
``python -m`` does (``runpy.run_module(..., run_name="__main__")``, the command's argv,
working directory, stdout and stderr), and reports its exit status as the interpreter
would (``SystemExit`` codes, 1 and a traceback on stderr for an uncaught exception).
Nothing in the parent is initialised before the fork (no JAX backend, no threads), so the
child starts as a new interpreter would. ``tests/test_bad_input_table.py`` holds a
command run this way and by ``python -m`` to the same exit status and stderr.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAUNCHER = r"""
import json, os, runpy, sys, traceback
import absl.app, jax, matplotlib, scipy.stats  # shared, imported once
import experiments.benchmark.harness, experiments.compare.report, experiments.run.loop
from jax._src import xla_bridge

# A fork is only a fresh start while no backend (and none of its threads) exists.
assert not xla_bridge._backends, "an import initialised a JAX backend before the fork"

for line in sys.stdin:
    case = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.chdir(case["cwd"])
        os.environ.update(case["env"])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, case["stdout"]), (2, case["stderr"])):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        sys.argv = [case["module"], *case["flags"]]
        try:
            runpy.run_module(case["module"], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exit:  # what the interpreter does with it
            code = exit.code if isinstance(exit.code, int) else exit.code is not None
            if not isinstance(exit.code, (int, type(None))):
                print(exit.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(code))
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)
"""


class _Launcher:
    """One launcher process per test process, started on first use."""

    def __init__(self):
        self._process = None
        self._tmp = None

    def _start(self):
        self._tmp = tempfile.mkdtemp(prefix="lstmx-cli-")
        self._process = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        atexit.register(self.close)

    def _reply(self, timeout: float | None) -> dict:
        ready, _, _ = select.select([self._process.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the test launcher died")
        return json.loads(line)

    def run(self, module: str, flags: list[str], cwd: Path, timeout: float, env: dict):
        if self._process is None or self._process.poll() is not None:
            self._start()
        out, err = (Path(self._tmp) / name for name in ("out", "err"))
        case = {"module": module, "flags": flags, "cwd": str(cwd), "stdout": str(out),
                "stderr": str(err), "env": env}  # fmt: skip
        self._process.stdin.write(json.dumps(case) + "\n")
        self._process.stdin.flush()
        pid = self._reply(60)["pid"]
        try:
            code = self._reply(timeout)["code"]
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            self._reply(60)
            raise subprocess.TimeoutExpired([module, *flags], timeout) from None
        return subprocess.CompletedProcess(
            [sys.executable, "-m", module, *flags], code, out.read_text(), err.read_text()
        )

    def close(self):
        if self._process is not None and self._process.poll() is None:
            self._process.stdin.close()
            self._process.wait(timeout=60)


_LAUNCHER = _Launcher()


def run_module(
    module: str, *flags: str, cwd: Path = ROOT, timeout: int = 300, env: dict | None = None
):
    """Runs ``python -m module *flags`` from ``cwd`` (forked from the launcher), with
    ``env`` added to the environment; returns the CompletedProcess (text)."""
    return _LAUNCHER.run(module, list(flags), Path(cwd), timeout, dict(env or {}))
