"""The sweep's three backends run the same cell to bit-identical records: the local pool,
a real local Ray cluster, and submitit's local executor (its Slurm path, run here).
Without the ``[cluster]`` extra, a backend is refused with one line saying what to install.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _sweep_helpers import records_without_times

from experiments.sweep import backends

ROOT = Path(__file__).resolve().parents[1]
GRID = ["--task=adding", "--lengths=5", "--variants=gru", "--seeds=2", "--steps=20",
        "--eval_every=10", "--hidden_size=4", "--batch_size=4", "--eval_batch_size=8",
        "--nocompare", "--workers=2"]  # fmt: skip


def test_local_ray_and_submitit_write_bit_identicalrecords_without_times(tmp_path):
    pytest.importorskip("ray", reason="the [cluster] extra is not installed")
    pytest.importorskip("submitit", reason="the [cluster] extra is not installed")
    found = {}
    for backend in (["--backend=local"], ["--backend=ray"],
                    ["--backend=slurm", "--submitit_cluster=local"]):  # fmt: skip
        workdir = tmp_path / backend[0].split("=")[1]
        result = subprocess.run(
            [sys.executable, "-m", "experiments.sweep", *GRID, *backend, f"--workdir={workdir}"],
            cwd=ROOT, capture_output=True, text=True, timeout=400, env={**os.environ},
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert "1 cells done, 0 failed" in result.stdout
        found[backend[0]] = records_without_times(workdir)
    local = found["--backend=local"]
    assert len(local) == 2
    assert found["--backend=ray"] == local
    assert found["--backend=slurm"] == local


@pytest.mark.parametrize("module, backend, package, make", [
    ("ray", "ray", "Ray", lambda: backends.RayBackend(None, 1, 1, 0)),
    ("submitit", "slurm", "submitit", lambda: backends.SlurmBackend(Path("/nonexistent"), 1, 0)),
])  # fmt: skip
def test_a_missing_cluster_package_is_one_line_saying_what_to_install(
    monkeypatch, module, backend, package, make
):
    monkeypatch.setitem(sys.modules, module, None)  # import now raises ImportError
    with pytest.raises(backends.BackendUnavailableError) as error:
        make()
    assert str(error.value) == (
        f"--backend={backend} needs {package}, which is not installed; run "
        "pip install -e '.[cluster]'."
    )


_NICENESS_PROBE = """
import subprocess, sys
from experiments.sweep.backends import share_niceness
child = subprocess.Popen(["sleep", "30"], start_new_session=True)
share_niceness(child.pid)
print(open(f"/proc/{child.pid}/autogroup").read().split()[-1])
child.kill()
"""


def _autogroups_on():
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


@pytest.mark.skipif(not _autogroups_on(), reason="the kernel schedules no autogroups")
@pytest.mark.parametrize("niceness", [0, 7])
def test_a_niced_sweeps_cells_get_its_niceness_in_their_own_session(niceness):
    probe = subprocess.run(
        ["nice", "-n", str(niceness), sys.executable, "-c", _NICENESS_PROBE],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == str(niceness)
