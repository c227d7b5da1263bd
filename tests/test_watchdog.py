"""The watchdog: a wedged device computation ends the run with one line, and a second stop
signal ends it at once even while the main thread waits on the device.

A stall is provoked for real: the trainer's ``init`` (or ``train``) is a jitted program
whose host callback sleeps, so the main thread waits inside JAX exactly as it did in the
XLA:CPU deadlock. Each case runs in a subprocess, since the watchdog ends its process.
"""

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from experiments.shared import watchdog

ROOT = Path(__file__).resolve().parents[1]

# argv: workdir, the phase to wedge ("init" or "train"), stall timeout, steps to train first.
_WEDGED_RUN = textwrap.dedent(
    """
    import dataclasses, sys, time
    import jax, jax.numpy as jnp
    from experiments.run import loop, model
    from experiments.shared import resume, watchdog

    workdir, wedged = sys.argv[1], sys.argv[2]
    timeout, first_steps = float(sys.argv[3]), int(sys.argv[4])
    config = model.Config(task="adding", variant="rnn", length=5, steps=8, batch_size=4,
                          hidden_size=4, eval_every=2, eval_batch_size=4, seeds=(0, 1))
    if first_steps:  # leave a checkpoint behind, as an interrupted run does
        loop.run_variant(config, workdir, log=lambda line: None, stop_after=first_steps)

    def sleep(x):
        time.sleep(600)
        return x

    @jax.jit
    def wedge(x):  # a device computation that does not return
        return jax.pure_callback(sleep, jax.ShapeDtypeStruct((), jnp.float32), x)

    def wedged_call(call):
        def wedged_first(*args):
            jax.block_until_ready(wedge(jnp.float32(0)))
            return call(*args)
        return wedged_first
    class Wedged(loop.TaskExperiment):
        def make_trainer(self, seeds):
            trainer = super().make_trainer(seeds)
            if wedged == "init":
                return trainer._replace(init=wedged_call(trainer.init))
            return trainer._replace(train=wedged_call(trainer.train))

    print("started", flush=True)
    sys.stdout.reconfigure(line_buffering=True)
    with watchdog.supervise(timeout, program="wedged"):
        resume.run(Wedged(config, workdir), log=print)
    print("finished without a stall", flush=True)
    """
)


def _start(tmp_path, wedged, timeout, first_steps=0):
    return subprocess.Popen(
        [sys.executable, "-c", _WEDGED_RUN, str(tmp_path), wedged, str(timeout), str(first_steps)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_stall_before_any_checkpoint_exits_70_naming_the_phase(tmp_path):
    started = time.monotonic()
    process = _start(tmp_path, "init", 1.5)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == watchdog.EXIT_STALLED, stderr
    assert "finished" not in stdout
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("wedged: error: no progress for 2 s while compiling and initialising")
    assert "adding T=5 rnn" in line and "no checkpoint was written yet" in line
    assert time.monotonic() - started < 60  # not the callback's 600 s


def test_a_stall_with_a_checkpoint_exits_75_and_the_checkpoint_resumes(tmp_path):
    process = _start(tmp_path, "init", 1.5, first_steps=4)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == watchdog.EXIT_PREEMPTED, stderr
    line = stderr.strip().splitlines()[-1]
    checkpoint = tmp_path / "checkpoints" / "adding_T5_rnn.msgpack"
    assert f"the checkpoint {checkpoint} is intact; run the same command to resume." in line
    assert checkpoint.exists()


def test_a_stall_mid_training_is_named_by_its_steps(tmp_path):
    process = _start(tmp_path, "train", 1.5)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == watchdog.EXIT_STALLED, stderr
    assert "while compiling and training adding T=5 rnn, steps 1-2" in stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_second_signal_stops_at_once_while_waiting_on_the_device(tmp_path, signum):
    process = _start(tmp_path, "init", 0)  # no stall timeout: only the signals end it
    assert process.stdout.readline() == "started\n"
    time.sleep(3)  # inside the wedged init by now
    name = signal.Signals(signum).name
    process.send_signal(signum)
    first = process.stderr.readline()
    assert first.startswith(f"{name}: finishing the current chunk")
    assert process.poll() is None  # the first signal only asks
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == watchdog.EXIT_PREEMPTED
    assert stderr.strip().splitlines()[-1] == (
        f"{name} again: stopping at once; no checkpoint was written yet; the same command "
        "starts afresh."
    )


def test_the_stall_limit_grows_with_the_slowest_call():
    supervisor = watchdog.Supervisor(stall_timeout=5)
    assert supervisor.stall_limit() == 5
    supervisor._longest = 2.0
    assert supervisor.stall_limit() == 20
    assert watchdog.Supervisor(stall_timeout=0).stall_limit() == 0
