"""Bad inputs to the experiments and what each gets, beyond the CLI tests. The library's
bad inputs (params, describe, diagnostics) are in tests/test_bad_input.py.

Tables, one row per bad input:

* ``CONFIGS``: :class:`experiments.run.model.Config` fields not covered in test_training.py.
* ``CLI``: flags of experiments.run, experiments.sweep (each leaving its workdir empty),
  experiments.benchmark, experiments.gradient_flow, experiments.compare and
  experiments.char_lm not covered in test_run_cli.py,
  test_benchmark.py, test_diagnostics.py, test_compare.py and test_char_lm.py (the
  regulariser rates among them), among them an unwritable workdir (and
  ``--output_dir``, the deprecated alias of ``--workdir``). Each must exit non-zero with
  one error line and no traceback.
* A corrupt record and a corrupt checkpoint in experiments.run's workdir: reported, set
  aside, retrained, and the comparison at the end still runs.

The commands would spend most of their time importing JAX, so one driver process imports
it once and forks a child per command, which runs the script as ``python -m`` does
(``runpy.run_module(..., run_name="__main__")``) with its own argv, stdout and stderr, and
turns ``SystemExit`` and uncaught exceptions into an exit status and stderr text as the
interpreter would.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.run import model as task_model
from experiments.shared import regularization

ROOT = Path(__file__).resolve().parents[1]

# Config fields, beyond test_training.py's table.
CONFIGS = [
    ({"clip_mode": "sideways"}, ValueError, r"clip_mode must be one of value, global_norm, none"),
    ({"init": "xavier"}, ValueError, r"init must be one of default, chrono, li; got 'xavier'"),
    (
        {"init": "li"},
        ValueError,
        r"init \"li\" .* is for the indrnn variant only; got variant 'lstm'",
    ),
    ({"num_layers": 0}, ValueError, r"num_layers must be an int >= 1, got 0"),
    ({"hidden_size": 0}, ValueError, r"hidden_size must be an int >= 1, got 0"),
    ({"eval_every": 0}, ValueError, r"eval_every must be an int >= 1, got 0"),
    ({"eval_batch_size": -5}, ValueError, r"eval_batch_size must be an int >= 1, got -5"),
    ({"length": 2.5}, TypeError, r"length must be an int, got float"),
    ({"steps": True}, TypeError, r"steps must be an int, got bool"),
    ({"learning_rate": "0.1"}, TypeError, r"learning_rate must be a number, got str"),
    ({"learning_rate": float("inf")}, ValueError, r"learning_rate must be a positive finite"),
    ({"clip": True}, TypeError, r"clip must be a number, got bool"),
    ({"seeds": (0, 1.5)}, TypeError, r"seed must be an int, got float"),
    ({"task": "copy", "length": 0}, ValueError, r"length must be an int >= 1, got 0"),
    ({"zoneout_h": 1.5}, ValueError, r"zoneout_h must lie in \[0, 1\], got 1.5"),
    ({"zoneout_c": float("nan")}, ValueError, r"zoneout_c must lie in \[0, 1\], got nan"),
    ({"input_dropout": 1.0}, ValueError, r"input_dropout must lie in \[0, 1\), got 1.0"),
    ({"recurrent_dropout": -0.1}, ValueError, r"recurrent_dropout must lie in \[0, 1\), got -0.1"),
    ({"zoneout_h": "0.1"}, TypeError, r"zoneout_h must be a number, got str"),
    ({"recurrent_dropout": True}, TypeError, r"recurrent_dropout must be a number, got bool"),
    (
        {"variant": "gru", "zoneout_c": 0.1},
        ValueError,
        r"variant 'gru' cannot take zoneout_c=0.1: this cell's state has no 'c' field",
    ),
    ({"task": "dyck"}, ValueError, r"task must be one of copy, adding, parity, .*; got 'dyck'"),
    (
        {"task": "parity", "length": 40, "test_lengths": "40-100"},
        ValueError,
        r"test_lengths must all be above the training length 40 .* from 40",
    ),
    ({"task": "parity", "test_lengths": "100-41"}, ValueError, r"1 <= A <= B"),
    ({"task": "parity", "test_lengths": "41-x"}, ValueError, r"A-B \(e.g. 41-500\)"),
    ({"task": "modular_arithmetic", "modulus": 1}, ValueError, r"modulus must be an int >= 2"),
    ({"task": "cycle_navigation", "length": 0}, ValueError, r"length must be an int >= 1, got 0"),
    ({"task": "even_pairs", "test_batch_size": 0}, ValueError, r"test_batch_size must be an int"),
]


@pytest.mark.parametrize("change, error, message", CONFIGS, ids=[str(c[0]) for c in CONFIGS])
def test_bad_config_is_refused(change, error, message):
    base = dict(task="adding", variant="lstm", length=10, hidden_size=8, seeds=(0,))
    with pytest.raises(error, match=message):
        task_model.Config(**regularization.nest_rates({**base, **change}))


# -------------------------------------------------------------------------- commands

IS_ROOT = os.geteuid() == 0

# (id, module, flags, text the one error line must hold); {tmp} is a fresh directory,
# {file} a regular file in it, {readonly} a directory with mode 0o500.
CLI = [
    ("run_first_seed", "run", ["--first_seed=-1"], "--first_seed"),
    ("run_num_layers", "run", ["--num_layers=0"], "--num_layers"),
    ("run_clip_mode", "run", ["--clip_mode=sideways"], "--clip_mode"),
    ("run_eval_every", "run", ["--eval_every=0"], "--eval_every"),
    ("run_eval_batch_size", "run", ["--eval_batch_size=0"], "--eval_batch_size"),
    ("run_checkpoint_every", "run", ["--checkpoint_every=0"], "--checkpoint_every"),
    ("run_stall_timeout_negative", "run", ["--stall_timeout=-1"], "--stall_timeout"),
    ("run_stall_timeout_nan", "run", ["--stall_timeout=nan"], "--stall_timeout must be a finite"),
    ("run_steps_not_a_number", "run", ["--steps=many"], "--steps"),
    ("run_learning_rate_nan", "run", ["--learning_rate=nan"], "--learning_rate must be > 0"),
    ("run_learning_rate_inf", "run", ["--learning_rate=inf"], "learning_rate must be a positive"),
    ("run_copy_length_0", "run", ["--task=copy", "--length=0"], "--length"),
    ("run_variants_empty", "run", ["--variants="], "--variants must be a non-empty list"),
    ("run_zoneout_h_above_1", "run", ["--zoneout_h=1.5"], "--zoneout_h must lie in [0, 1]"),
    ("run_zoneout_c_nan", "run", ["--zoneout_c=nan"], "--zoneout_c must lie in [0, 1]"),
    ("run_input_dropout_1", "run", ["--input_dropout=1"], "--input_dropout must lie in [0, 1)"),
    (
        "run_recurrent_dropout_negative",
        "run",
        ["--recurrent_dropout=-0.1"],
        "--recurrent_dropout must lie in [0, 1)",
    ),
    (
        "run_zoneout_c_for_gru",
        "run",
        ["--variants=lstm,gru", "--zoneout_c=0.1"],
        "variant 'gru' cannot take zoneout_c=0.1",
    ),
    ("run_unknown_flag", "run", ["--hiden_size=8"], "hiden_size"),
    ("run_unknown_task", "run", ["--task=dyck"], "--task=dyck: value should be one of"),
    (
        "run_test_length_not_above_training",
        "run",
        ["--task=parity", "--train_max_length=40", "--test_lengths=30-100"],
        "test_lengths must all be above the training length 40",
    ),
    (
        "run_modulus_below_2",
        "run",
        ["--task=modular_arithmetic", "--modulus=1"],
        "--modulus=1: 1 is not integer >= 2",
    ),
    (
        "run_training_length_below_1",
        "run",
        ["--task=parity", "--train_max_length=0"],
        "--length=0: 0 is not a positive integer",
    ),
    ("run_positional", "run", ["lstm"], "unexpected arguments ['lstm']"),
    ("run_workdir_empty", "run", ["--workdir="], "--workdir must be a directory path"),
    (
        "run_workdir_under_a_file",
        "run",
        ["--workdir={file}/sub"],
        "is not a writable directory (Not a directory)",
    ),
    (
        "run_workdir_read_only",
        "run",
        ["--workdir={readonly}/sub"],
        "is not a writable directory (Permission denied)",
    ),
    (
        "run_process_flags_without_distributed",
        "run",
        ["--num_processes=2"],
        "--num_processes and --process_id need --distributed",
    ),
    (
        "run_process_id_too_large",
        "run",
        ["--distributed", "--num_processes=2", "--process_id=2"],
        "--process_id must be less than --num_processes",
    ),
    (
        "run_distributed_without_cluster",
        "run",
        ["--distributed"],
        "--distributed could not start jax.distributed",
    ),
    ("benchmark_warmup", "benchmark", ["--warmup=-1"], "--warmup"),
    ("benchmark_seed", "benchmark", ["--seed=-1"], "--seed"),
    ("benchmark_sweep_shape", "benchmark", ["--sweep_shape=32x10"], "--sweep_shape must be BxIxH"),
    ("benchmark_workdir_file", "benchmark", ["--workdir={file}"], "--workdir must be"),
    ("benchmark_workdir_under_a_file", "benchmark", ["--workdir={file}/sub"], "Not a directory"),
    # --output_dir: the deprecated alias of --workdir, checked the same way.
    ("benchmark_output_dir_file", "benchmark", ["--output_dir={file}"], "--output_dir must be"),
    ("benchmark_output_under_a_file", "benchmark", ["--output_dir={file}/sub"], "Not a directory"),
    (
        "benchmark_workdir_and_output_dir",
        "benchmark",
        ["--workdir={tmp}/a", "--output_dir={tmp}/b"],
        "give --workdir or its deprecated alias --output_dir, not both",
    ),
    ("benchmark_positional", "benchmark", ["lstm"], "unexpected arguments"),
    ("gradient_flow_workdir_file", "gradient_flow", ["--workdir={file}"], "--workdir must be"),
    (
        "gradient_flow_output_dir_file",
        "gradient_flow",
        ["--output_dir={file}"],
        "--output_dir must be",
    ),
    (
        "gradient_flow_workdir_under_a_file",
        "gradient_flow",
        ["--workdir={file}/sub"],
        "Not a directory",
    ),
    ("compare_empty_reference", "compare", ["--workdir={records}", "--reference="], "reference"),
    ("compare_workdir_file", "compare", ["--workdir={file}"], "must be an existing directory"),
    (
        "compare_output_under_a_file",
        "compare",
        ["--workdir={records}", "--output_dir={file}/sub"],
        "cannot write to --output_dir",
    ),
    ("compare_positional", "compare", ["--workdir={records}", "extra"], "unexpected arguments"),
    ("char_lm_zoneout_h_above_1", "char_lm", ["--zoneout_h=2"], "--zoneout_h must lie in [0, 1]"),
    (
        "char_lm_recurrent_dropout_1",
        "char_lm",
        ["--recurrent_dropout=1"],
        "--recurrent_dropout must lie in [0, 1)",
    ),
    (
        "char_lm_zoneout_c_for_gru",
        "char_lm",
        ["--variant=gru", "--zoneout_c=0.1", "--workdir={tmp}/char_lm_out"],
        "variant 'gru' cannot take zoneout_c=0.1",
    ),
]

# The sweep's: each with its own --workdir, which must stay empty (nothing trained or written).
SWEEP_GRID = ["--task=adding", "--lengths=5", "--steps=2", "--hidden_size=4"]
CLI += [
    (f"sweep_{name}", "sweep", [f"--workdir={{tmp}}/sweep_{name}", *grid_flags], message)
    for name, grid_flags, message in [
        ("backend", [*SWEEP_GRID, "--backend=kubernetes"], "--backend"),
        ("variant", [*SWEEP_GRID, "--variants=lstm,gur"], "Unknown variant 'gur'"),
        (
            "refused_cell",
            [*SWEEP_GRID, "--variants=gru", "--zoneout_c=0.1"],
            "experiments.run would refuse the cell",
        ),
        ("empty_grid", [*SWEEP_GRID, "--variants="], "grid axis 'variant' is empty"),
        ("not_an_int", [*SWEEP_GRID, "--hidden_size=big"], "--hidden_size takes int values"),
        ("tune_one_value", [*SWEEP_GRID, "--tune=learning_rate"], "needs at least two values"),
        ("tune_unknown", [*SWEEP_GRID, "--tune=lr"], "--tune must name a grid setting"),
        ("study_missing", ["--study=experiments/studies/nope.py"], "no such study file"),
        ("study_no_get_config", ["--study=experiments/studies/__init__.py"], "no get_config()"),
        (
            "study_override_unknown",
            ["--study=experiments/studies/default_adding_T50.py", "--study.stepz=5"],
            "names a field the study file lacks",
        ),
        (
            "study_and_grid_flags",
            ["--study=experiments/studies/default_adding_T50.py", "--variants=gru"],
            "by --study or by flags, not both",
        ),
        (
            "ray_not_answering",
            [*SWEEP_GRID, "--backend=ray", "--ray_address=127.0.0.1:1"],
            "does not answer as a Ray cluster",
        ),
        ("status_not_a_study", ["--status"], "holds no study"),
        ("workers_zero", [*SWEEP_GRID, "--workers=0"], "--workers"),
    ]
]

RUN_FLAGS = [
    "--task=adding",
    "--length=6",
    "--variants=rnn",
    "--seeds=2",
    "--steps=4",
    "--eval_every=2",
    "--hidden_size=4",
    "--batch_size=4",
    "--eval_batch_size=8",
]


DRIVER = r"""
import json, os, runpy, sys, traceback
import absl.app, jax  # shared, imported once
import experiments.benchmark.harness, experiments.compare.report, experiments.run.loop

children = {}
for case in json.loads(sys.argv[1]):
    pid = os.fork()
    if pid:
        children[pid] = case
        continue
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
codes = {}
while children:
    pid, status = os.wait()
    codes[children.pop(pid)["id"]] = os.waitstatus_to_exitcode(status)
print(json.dumps(codes))
"""


def _default_dirs(module, flags):
    """A directory under the test's tmp for scripts that write, so nothing lands in the repo."""
    name = {"run": "--workdir", "benchmark": "--workdir", "gradient_flow": "--workdir"}.get(module)
    given = (f"{name}=", "--output_dir=")  # --output_dir: the deprecated alias of --workdir
    if name is None or any(flag.startswith(given) for flag in flags):
        return []
    return [f"{name}={{tmp}}/{module}_out"]


def _run_all(commands, tmp):
    """Runs ``{id: (module, flags)}`` through the driver; returns ``{id: CompletedProcess}``."""
    cases = [
        {
            "id": row_id,
            "module": f"experiments.{module}",
            "flags": flags,
            "stdout": str(tmp / f"{row_id}.out"),
            "stderr": str(tmp / f"{row_id}.err"),
        }
        for row_id, (module, flags) in commands.items()
    ]
    driver = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(cases)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert driver.returncode == 0, driver.stderr
    codes = json.loads(driver.stdout.strip().splitlines()[-1])
    return {
        case["id"]: subprocess.CompletedProcess(
            case["flags"],
            codes[case["id"]],
            Path(case["stdout"]).read_text(),
            Path(case["stderr"]).read_text(),
        )
        for case in cases
    }


def _a_record(seed):
    """A valid record for experiments.compare (what experiments.run writes)."""
    point = {"step": 10, "loss": 0.1, "accuracy": 0.5, "train_loss": 0.1, "wall_time": 1.0}
    return {
        "format": "lstmx.record/1",
        "task": "adding",
        "length": 6,
        "variant": "lstm",
        "seed": seed,
        "baseline": 1 / 6,
        "num_params": 10,
        "history": [point],
        "final": point,
        "status": "finished",
        "diverged_step": None,
        "steps_per_second": 100.0,
    }


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Runs every command of ``CLI`` and the corrupt-workdir run, in parallel."""
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "file").write_text("keep me")
    readonly = tmp / "readonly"
    readonly.mkdir(mode=0o500)
    records = tmp / "records_dir"
    for seed in (0, 1):
        path = records / "records" / f"adding_T6_lstm_seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_a_record(seed)))
    where = {"tmp": tmp, "file": tmp / "file", "readonly": readonly, "records": records}

    corrupt = tmp / "corrupt"
    (corrupt / "records").mkdir(parents=True)
    (corrupt / "checkpoints").mkdir()
    (corrupt / "records" / "adding_T6_rnn_seed1.json").write_text('{"format": "lstmx.rec')
    (corrupt / "records" / "adding_T6_gru_seed0.json").write_text("[1, 2")  # another run's
    (corrupt / "checkpoints" / "adding_T6_rnn.msgpack").write_bytes(b"\x93garbage")

    commands = {
        row_id: (module, [flag.format(**where) for flag in [*_default_dirs(module, flags), *flags]])
        for row_id, module, flags, _ in CLI
        if not (row_id == "run_workdir_read_only" and IS_ROOT)  # would run the default
    }
    commands["corrupt"] = ("run", [*RUN_FLAGS, f"--workdir={corrupt}"])
    output = tmp / "output"
    output.mkdir()
    return _run_all(commands, output), where, corrupt


@pytest.mark.parametrize("row_id, message", [(c[0], c[3]) for c in CLI], ids=[c[0] for c in CLI])
def test_bad_flag_exits_with_one_clear_line(outcomes, row_id, message):
    if row_id == "run_workdir_read_only" and IS_ROOT:
        pytest.skip("root writes into a 0o500 directory; run_workdir_under_a_file covers it")
    done, where, _ = outcomes
    result = done[row_id]
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "rror" in line]
    assert len(error_lines) == 1, result.stderr
    assert message in error_lines[0]
    assert where["file"].read_text() == "keep me"  # never overwritten
    sweep = where["tmp"] / row_id
    if row_id.startswith("sweep_") and sweep.exists():
        assert not any(sweep.iterdir()), sorted(sweep.iterdir())  # nothing written


def test_corrupt_record_and_checkpoint_in_the_workdir_are_set_aside(outcomes):
    done, _, corrupt = outcomes
    result = done["corrupt"]
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "adding_T6_rnn_seed1.json: not a readable JSON record" in result.stdout
    assert "adding_T6_rnn.msgpack: unusable checkpoint" in result.stdout
    assert "| `rnn` ⚠ |" in result.stdout  # the comparison at the end ran
    skipped = [line for line in result.stderr.splitlines() if line.startswith("warning: skipped")]
    assert len(skipped) == 1 and "adding_T6_gru_seed0.json" in skipped[0]
    records = sorted(path.name for path in (corrupt / "records").iterdir())
    assert records[:3] == [
        "adding_T6_gru_seed0.json",  # not this run's: reported by the comparison, kept
        "adding_T6_rnn_seed0.json",
        "adding_T6_rnn_seed1.json",
    ]
    assert records[3].startswith("adding_T6_rnn_seed1.json.corrupt-")
    checkpoints = [path.name for path in (corrupt / "checkpoints").iterdir()]
    assert len(checkpoints) == 1 and checkpoints[0].startswith("adding_T6_rnn.msgpack.corrupt-")
    for seed in (0, 1):
        record = json.loads((corrupt / "records" / f"adding_T6_rnn_seed{seed}.json").read_text())
        assert record["status"] == "finished" and record["final"]["step"] == 4


def test_the_driver_runs_a_command_as_python_dash_m_does(outcomes, tmp_path):
    done, _, _ = outcomes
    real = subprocess.run(
        [sys.executable, "-m", "experiments.run", "--clip_mode=sideways", f"--workdir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (real.returncode, real.stderr) == (
        done["run_clip_mode"].returncode,
        done["run_clip_mode"].stderr,
    )
