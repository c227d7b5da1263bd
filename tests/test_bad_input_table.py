"""More bad inputs and what each gets, beyond tests/test_bad_input.py and the CLI tests.

Tables, one row per bad input:

* ``PARAMS``: malformed params pytrees (a dict or tuple for the NamedTuple, wrong-shaped
  ``b``, ``p``, ``w_gates``, the params of another cell, a stack with the wrong number of
  layers) and other public-function inputs not covered elsewhere.
* ``CONFIGS``: :class:`lstmx.training.Config` fields not covered in test_training.py.
* ``GAPS``: inputs that once got an unclear error or none, now refused clearly.
* ``CLI``: flags of experiments.run, experiments.benchmark and experiments.compare not
  covered in test_run_cli.py, test_benchmark.py and test_compare.py, among them an
  unwritable workdir. Each must exit non-zero with one error line and no traceback.
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

import jax
import jax.numpy as jnp
import pytest

import lstmx
from experiments.shared import training

ROOT = Path(__file__).resolve().parents[1]
KEY = jax.random.key(0)
XS = jnp.ones((2, 5, 3))
X = jnp.ones((2, 3))
LSTM = lstmx.lstm(4)
LSTM_PARAMS = LSTM.init(KEY, 3)
PEEPHOLE = lstmx.lstm(4, peephole=True)
PEEPHOLE_PARAMS = PEEPHOLE.init(KEY, 3)
FGR = lstmx.variant("fgr", 4)
FGR_PARAMS = FGR.init(KEY, 3)
GRU = lstmx.gru(4)
GRU_PARAMS = GRU.init(KEY, 3)
RNN = lstmx.rnn(4)
RNN_PARAMS = RNN.init(KEY, 3)
STACK = lstmx.stack([lstmx.lstm(4), lstmx.gru(4)])
STACK_PARAMS = STACK.init(KEY, 3)
BIDIRECTIONAL = lstmx.bidirectional(LSTM, LSTM)


def _as_int(params):
    return jax.tree_util.tree_map(lambda leaf: leaf.astype(jnp.int32), params)


# (id, callable, exception type, regex the message must match)
PARAMS = [
    (
        "params_dict",
        lambda: lstmx.scan(LSTM, dict(LSTM_PARAMS._asdict()), XS),
        TypeError,
        r"params must be LSTMParams \(as returned by this cell's init\), got dict",
    ),
    ("params_tuple", lambda: lstmx.scan(LSTM, tuple(LSTM_PARAMS), XS), TypeError, r"got tuple"),
    ("params_none", lambda: lstmx.scan(LSTM, None, XS), TypeError, r"got NoneType"),
    (
        "step_params_dict",
        lambda: LSTM.step(dict(LSTM_PARAMS._asdict()), LSTM.initial_state((2,)), X),
        TypeError,
        r"params must be LSTMParams .* got dict",
    ),
    (
        "b_wrong_length",
        lambda: lstmx.scan(LSTM, LSTM_PARAMS._replace(b=jnp.zeros(15)), XS),
        ValueError,
        r"params.b must have shape \(16,\), got \(15,\)",
    ),
    (
        "b_rank_2",
        lambda: lstmx.scan(LSTM, LSTM_PARAMS._replace(b=jnp.zeros((1, 16))), XS),
        ValueError,
        r"params.b must have shape \(16,\), got \(1, 16\)",
    ),
    (
        "b_a_list",
        lambda: lstmx.scan(RNN, RNN_PARAMS._replace(b=[0.0] * 4), XS),
        TypeError,
        r"params.b must be an array of shape \(4,\), got list",
    ),
    (
        "w_x_rank_1",
        lambda: lstmx.scan(LSTM, LSTM_PARAMS._replace(w_x=jnp.zeros(16)), XS),
        ValueError,
        r"params.w_x must have shape \('I', 16\), got \(16,\)",
    ),
    (
        "w_x_wrong_columns",
        lambda: lstmx.scan(LSTM, LSTM_PARAMS._replace(w_x=jnp.zeros((3, 12))), XS),
        ValueError,
        r"params.w_x must have shape \('I', 16\), got \(3, 12\)",
    ),
    (
        "p_wrong_shape",
        lambda: lstmx.scan(PEEPHOLE, PEEPHOLE_PARAMS._replace(p=jnp.zeros((2, 4))), XS),
        ValueError,
        r"params.p must have shape \(3, 4\), got \(2, 4\)",
    ),
    (
        "p_without_peepholes",
        lambda: lstmx.scan(LSTM, LSTM_PARAMS._replace(p=jnp.zeros((3, 4))), XS),
        ValueError,
        r"params.p holds peephole weights but this cell has peephole=False",
    ),
    (
        "w_gates_wrong_shape",
        lambda: lstmx.scan(FGR, FGR_PARAMS._replace(w_gates=jnp.zeros((8, 8))), XS),
        ValueError,
        r"params.w_gates must have shape \(12, 12\), got \(8, 8\)",
    ),
    (
        "w_gates_missing",
        lambda: lstmx.scan(FGR, FGR_PARAMS._replace(w_gates=None), XS),
        TypeError,
        r"params.w_gates must be an array of shape \(12, 12\), got NoneType",
    ),
    (
        "w_gates_without_fgr",
        lambda: lstmx.scan(PEEPHOLE, PEEPHOLE_PARAMS._replace(w_gates=jnp.zeros((12, 12))), XS),
        ValueError,
        r"params.w_gates is set but this cell has full_gate_recurrence=False",
    ),
    (
        "gru_params_to_rnn",
        lambda: lstmx.scan(RNN, GRU_PARAMS, XS),
        TypeError,
        r"params must be RNNParams .* got GRUParams",
    ),
    (
        "rnn_params_to_gru",
        lambda: lstmx.scan(GRU, RNN_PARAMS, XS),
        TypeError,
        r"params must be GRUParams .* got RNNParams",
    ),
    (
        "gru_b_h_wrong",
        lambda: lstmx.scan(GRU, GRU_PARAMS._replace(b_h=jnp.zeros(4)), XS),
        ValueError,
        r"params.b_h must have shape \(12,\), got \(4,\)",
    ),
    (
        "stack_too_few_layers",
        lambda: lstmx.scan(STACK, lstmx.StackParams(STACK_PARAMS.layers[:1]), XS),
        ValueError,
        r"params has 1 layers, the stack 2",
    ),
    (
        "stack_layers_swapped",
        lambda: lstmx.scan(STACK, lstmx.StackParams(STACK_PARAMS.layers[::-1]), XS),
        TypeError,
        r"params must be LSTMParams .* got GRUParams",
    ),
    (
        "stack_given_one_layer",
        lambda: lstmx.scan(STACK, STACK_PARAMS.layers[0], XS),
        TypeError,
        r"params must be StackParams .* got LSTMParams",
    ),
    (
        "cell_given_stack_params",
        lambda: lstmx.scan(LSTM, STACK_PARAMS, XS),
        TypeError,
        r"params must be LSTMParams .* got StackParams",
    ),
    (
        "stack_state_of_a_layer",
        lambda: STACK.step(STACK_PARAMS, LSTM.initial_state((2,)), X),
        TypeError,
        r"state must be StackState .* got LSTMState",
    ),
    (
        "bidirectional_given_cell_params",
        lambda: BIDIRECTIONAL.apply(LSTM_PARAMS, XS),
        TypeError,
        r"params must be BidirectionalParams .* got LSTMParams",
    ),
    (
        "grad_of_integer_params",
        lambda: jax.grad(lambda p: lstmx.scan(LSTM, p, XS)[1].sum())(_as_int(LSTM_PARAMS)),
        TypeError,
        r"grad requires real- or complex-valued inputs .* got int32",  # JAX's own check
    ),
    (
        "init_integer_dtype",
        lambda: LSTM.init(KEY, 3, jnp.int32),
        TypeError,
        r"init's dtype must be a floating dtype \(float32, bfloat16, ...\), got int32",
    ),
    (
        "init_int_for_key",
        lambda: LSTM.init(0, 3),
        TypeError,
        r"invalid PRNG key data",  # JAX's own check
    ),
    (
        "complex_xs",
        lambda: lstmx.scan(LSTM, LSTM_PARAMS, XS.astype(jnp.complex64)),
        TypeError,
        r"xs must have a floating dtype .* got complex64",
    ),
    (
        "variant_name_not_a_string",
        lambda: lstmx.variant(3, 4),
        ValueError,
        r"Unknown variant 3; valid names: rnn, lstm",
    ),
]

# Config fields, beyond test_training.py's table.
CONFIGS = [
    ({"clip_mode": "sideways"}, ValueError, r"clip_mode must be one of value, global_norm, none"),
    ({"init": "xavier"}, ValueError, r'init must be "default" or "chrono"'),
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
]

# Still unclear or silently accepted: the message each should get (lstmx/cells.py and
# lstmx/sequence.py would need the checks).
GAPS = [
    (
        "integer_params",
        lambda: lstmx.scan(LSTM, _as_int(LSTM_PARAMS), XS),
        TypeError,
        r"params.* floating dtype",
    ),
    (
        "state_of_another_hidden_size",
        lambda: lstmx.scan(LSTM, LSTM_PARAMS, XS, lstmx.lstm(5).initial_state((2,))),
        ValueError,
        r"state.*\(2, 4\)",
    ),
    (
        "state_a_bare_tuple",
        lambda: lstmx.scan(LSTM, LSTM_PARAMS, XS, (jnp.zeros((2, 4)), jnp.zeros((2, 4)))),
        TypeError,
        r"state must be LSTMState",
    ),
    (
        "initial_state_negative_batch",
        lambda: LSTM.initial_state((-1,)),
        ValueError,
        r"batch_shape",
    ),
]


@pytest.mark.parametrize(
    "call, error, message", [c[1:] for c in PARAMS], ids=[c[0] for c in PARAMS]
)
def test_bad_params_and_inputs_are_refused(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("change, error, message", CONFIGS, ids=[str(c[0]) for c in CONFIGS])
def test_bad_config_is_refused(change, error, message):
    base = dict(task="adding", variant="lstm", length=10, hidden_size=8, seeds=(0,))
    with pytest.raises(error, match=message):
        training.Config(**{**base, **change})


@pytest.mark.parametrize("call, error, message", [c[1:] for c in GAPS], ids=[c[0] for c in GAPS])
def test_inputs_once_without_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


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
    ("run_steps_not_a_number", "run", ["--steps=many"], "--steps"),
    ("run_learning_rate_nan", "run", ["--learning_rate=nan"], "--learning_rate must be > 0"),
    ("run_learning_rate_inf", "run", ["--learning_rate=inf"], "learning_rate must be a positive"),
    ("run_copy_length_0", "run", ["--task=copy", "--length=0"], "--length"),
    ("run_variants_empty", "run", ["--variants="], "--variants must be a non-empty list"),
    ("run_unknown_flag", "run", ["--hiden_size=8"], "hiden_size"),
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
    ("benchmark_output_dir_file", "benchmark", ["--output_dir={file}"], "--output_dir must be"),
    ("benchmark_output_under_a_file", "benchmark", ["--output_dir={file}/sub"], "Not a directory"),
    ("benchmark_positional", "benchmark", ["lstm"], "unexpected arguments"),
    ("compare_workdir_file", "compare", ["--workdir={file}"], "must be an existing directory"),
    (
        "compare_output_under_a_file",
        "compare",
        ["--workdir={records}", "--output_dir={file}/sub"],
        "cannot write to --output_dir",
    ),
    ("compare_positional", "compare", ["--workdir={records}", "extra"], "unexpected arguments"),
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
    name = {"run": "--workdir", "benchmark": "--output_dir"}.get(module)
    if name is None or any(flag.startswith(f"{name}=") for flag in flags):
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


def test_corrupt_record_and_checkpoint_in_the_workdir_are_set_aside(outcomes):
    done, _, corrupt = outcomes
    result = done["corrupt"]
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "adding_T6_rnn_seed1.json: not a readable JSON record" in result.stdout
    assert "adding_T6_rnn.msgpack: unusable checkpoint" in result.stdout
    assert "| `rnn` |" in result.stdout  # the comparison at the end ran
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
