"""Every bad input to the library is refused at trace time with a clear message.

One table per kind of input, one row per bad input: ``(id, callable, exception type,
regex the message must match)``.

* ``CASES``: factories and options, ``step``, ``scan``, ``stack``, ``bidirectional``;
* ``PARAMS``: malformed params pytrees and other inputs of the public functions;
* ``GAPS``: inputs that once got an unclear error or none, now refused clearly;
* ``DESCRIBE_AND_DIAGNOSTICS``: :func:`lstmx.describe` and :mod:`lstmx.diagnostics`.

The experiments' flags and files are in tests/test_bad_input_table.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx
from lstmx import diagnostics
from lstmx.describe import describe

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
BIDI = lstmx.bidirectional(LSTM, GRU)
BIDI_PARAMS = BIDI.init(KEY, 3)
BIDIRECTIONAL = lstmx.bidirectional(LSTM, LSTM)


def _as_int(params):
    return jax.tree_util.tree_map(lambda leaf: leaf.astype(jnp.int32), params)


CASES = [
    ("hidden_zero", lambda: lstmx.lstm(0), ValueError, r"hidden_size must be an int >= 1, got 0"),
    ("hidden_negative", lambda: lstmx.gru(-3), ValueError, r"hidden_size .* got -3"),
    ("hidden_float", lambda: lstmx.rnn(2.5), TypeError, r"hidden_size must be an int, got float"),
    ("hidden_bool", lambda: lstmx.lstm(True), TypeError, r"hidden_size must be an int, got bool"),
    ("input_size_zero", lambda: LSTM.init(KEY, 0), ValueError, r"input_size must be an int >= 1"),
    (
        "unknown_variant",
        lambda: lstmx.variant("lstmm", 4),
        ValueError,
        r"Unknown variant 'lstmm'; valid names: rnn, lstm, peephole, cifg, gru, gru_cho",
    ),
    (
        "variant_bad_override",
        lambda: lstmx.variant("rnn", 4, peephole=True),
        TypeError,
        r"variant 'rnn' \(rnn\) does not take \['peephole'\]",
    ),
    ("bad_init_name", lambda: lstmx.lstm(4, init="xavier"), ValueError, r'"default" or "chrono"'),
    ("chrono_no_t_max", lambda: lstmx.lstm(4, init="chrono"), ValueError, r"needs t_max >= 3"),
    ("chrono_nfg", lambda: lstmx.variant("nfg", 4, init="chrono", t_max=10), ValueError, "forget"),
    ("t_max_default", lambda: lstmx.lstm(4, t_max=10), ValueError, r"only used by init=\"chrono\""),
    (
        "lstm_flag_an_int",
        lambda: lstmx.lstm(4, peephole=1),
        TypeError,
        r"peephole must be True or False, got int 1",
    ),
    (
        "lstm_flag_a_string",
        lambda: lstmx.variant("peephole", 4, output_gate="no"),
        TypeError,
        r"output_gate must be True or False, got str 'no'",
    ),
    (
        "lstm_options_flag_none",
        lambda: lstmx.LSTMOptions(4, full_gate_recurrence=None),
        TypeError,
        r"full_gate_recurrence must be True or False, got NoneType None",
    ),
    (
        "forget_bias_a_string",
        lambda: lstmx.lstm(4, forget_bias="x"),
        TypeError,
        r"forget_bias must be a number \(e.g. 1.0\), got str 'x'",
    ),
    (
        "forget_bias_nan",
        lambda: lstmx.lstm(4, forget_bias=float("nan")),
        ValueError,
        r"forget_bias must be a finite number \(e.g. 1.0\), got nan",
    ),
    (
        "forget_bias_inf",
        lambda: lstmx.lstm(4, forget_bias=float("inf")),
        ValueError,
        r"forget_bias must be a finite number \(e.g. 1.0\), got inf",
    ),
    (
        "cell_clip_inf",
        lambda: lstmx.lstm(4, cell_clip=float("inf")),
        ValueError,
        r"cell_clip must be a finite number",
    ),
    (
        "forget_bias_a_bool",
        lambda: lstmx.LSTMOptions(4, forget_bias=True),
        TypeError,
        r"forget_bias must be a number \(e.g. 1.0\), got bool True",
    ),
    (
        "gru_reset_after_an_int",
        lambda: lstmx.gru(4, reset_after=1),
        TypeError,
        r"reset_after must be True or False, got int 1",
    ),
    (
        "gru_options_reset_after_a_string",
        lambda: lstmx.GRUOptions(4, reset_after="True"),
        TypeError,
        r"reset_after must be True or False, got str 'True'",
    ),
    (
        "rnn_activation_not_callable",
        lambda: lstmx.rnn(4, activation="tanh"),
        TypeError,
        r"activation must be callable, got str",
    ),
    (
        "coupled_no_input_gate",
        lambda: lstmx.lstm(4, coupled=True, input_gate=False),
        ValueError,
        r"coupled=True .* input_gate=True",
    ),
    (
        "step_wrong_features",
        lambda: LSTM.step(LSTM_PARAMS, LSTM.initial_state((2,)), jnp.ones((2, 5))),
        ValueError,
        r"x must have 3 features on its last axis .* got shape \(2, 5\)",
    ),
    (
        "step_integer_input",
        lambda: LSTM.step(LSTM_PARAMS, LSTM.initial_state((2,)), jnp.ones((2, 3), jnp.int32)),
        TypeError,
        r"x must have a floating dtype .* got int32",
    ),
    (
        "step_state_batch_mismatch",
        lambda: LSTM.step(LSTM_PARAMS, LSTM.initial_state((5,)), jnp.ones((2, 3))),
        ValueError,
        r"x has batch shape \(2,\) but the state has batch shape \(5,\)",
    ),
    (
        "step_wrong_state_type",
        lambda: LSTM.step(LSTM_PARAMS, GRU.initial_state((2,)), jnp.ones((2, 3))),
        TypeError,
        r"state must be LSTMState .* got GRUState",
    ),
    (
        "step_wrong_params_type",
        lambda: LSTM.step(GRU_PARAMS, LSTM.initial_state((2,)), jnp.ones((2, 3))),
        TypeError,
        r"params must be LSTMParams .* got GRUParams",
    ),
    (
        "params_wrong_hidden",
        lambda: lstmx.scan(lstmx.lstm(5), LSTM_PARAMS, XS),
        ValueError,
        r"params.w_h must have shape \(5, 20\), got \(4, 16\)",
    ),
    (
        "params_peephole_missing",
        lambda: lstmx.scan(lstmx.lstm(4, peephole=True), LSTM_PARAMS, XS),
        TypeError,
        r"params.p must be an array of shape \(3, 4\), got NoneType",
    ),
    (
        "scan_rank_1",
        lambda: lstmx.scan(LSTM, LSTM_PARAMS, jnp.ones(3)),
        ValueError,
        r"\[\*batch, T, features\]",
    ),
    ("scan_not_a_cell", lambda: lstmx.scan(object(), LSTM_PARAMS, XS), TypeError, r"lstmx.Cell"),
    (
        "scan_integer_xs",
        lambda: lstmx.scan(LSTM, LSTM_PARAMS, jnp.ones((2, 5, 3), jnp.int32)),
        TypeError,
        r"xs must have a floating dtype",
    ),
    (
        "scan_wrong_features",
        lambda: lstmx.scan(LSTM, LSTM_PARAMS, jnp.ones((2, 5, 7))),
        ValueError,
        r"x must have 3 features .* got shape \(2, 7\)",
    ),
    (
        "lengths_too_long",
        lambda: lstmx.scan(LSTM, LSTM_PARAMS, XS, lengths=jnp.array([5, 6])),
        ValueError,
        r"lengths must lie in \[0, T=5\], got values from 5 to 6",
    ),
    (
        "lengths_negative",
        lambda: lstmx.scan(LSTM, LSTM_PARAMS, XS, lengths=np.array([-1, 2])),
        ValueError,
        r"lengths must lie in \[0, T=5\]",
    ),
    (
        "lengths_float",
        lambda: lstmx.scan(LSTM, LSTM_PARAMS, XS, lengths=jnp.array([1.0, 2.0])),
        TypeError,
        r"lengths must be integers, got dtype float32",
    ),
    (
        "lengths_wrong_shape",
        lambda: lstmx.scan(LSTM, LSTM_PARAMS, XS, lengths=jnp.array([1, 2, 3])),
        ValueError,
        r"lengths must have the batch shape of xs, \(2,\), got \(3,\)",
    ),
    (
        "scan_state_batch",
        lambda: lstmx.scan(LSTM, LSTM_PARAMS, XS, LSTM.initial_state((3,))),
        ValueError,
        r"state has batch shape \(3,\) but xs has batch shape \(2,\)",
    ),
    (
        "scan_no_time_steps",
        lambda: lstmx.scan(LSTM, LSTM_PARAMS, jnp.ones((2, 0, 3))),
        ValueError,
        r"at least one time step, got shape \(2, 0, 3\)",
    ),
    (
        "reverse_not_bool",
        lambda: lstmx.scan(LSTM, LSTM_PARAMS, XS, reverse="no"),
        TypeError,
        r"reverse and time_major must be bools",
    ),
    (
        "state_dtype_differs",
        lambda: lstmx.scan(LSTM, LSTM_PARAMS, XS, LSTM.initial_state((2,), jnp.bfloat16)),
        TypeError,
        r"state and xs must have the same dtype, got state bfloat16 and xs float32",
    ),
    (
        "params_of_two_dtypes",
        lambda: lstmx.scan(LSTM, LSTM_PARAMS._replace(b=LSTM_PARAMS.b.astype(jnp.bfloat16)), XS),
        TypeError,
        r"params must all have one dtype, got params.w_x float32 and params.b bfloat16",
    ),
    (
        "gru_w_x_wrong_width",
        lambda: lstmx.scan(GRU, GRU_PARAMS._replace(w_x=jnp.ones((3, 5))), XS),
        ValueError,
        r"params.w_x must have shape \('I', 12\), got \(3, 5\)",
    ),
    (
        "stack_state_too_few_layers",
        lambda: lstmx.scan(
            STACK, STACK_PARAMS, XS, lstmx.StackState(STACK.initial_state((2,)).layers[:1])
        ),
        ValueError,
        r"state has 1 layers, the stack 2",
    ),
    (
        "bidirectional_tuple_state",
        lambda: BIDI.apply(BIDI_PARAMS, XS, (None, None)),
        TypeError,
        r"state must be BidirectionalState",
    ),
    ("unroll_zero", lambda: lstmx.scan(LSTM, LSTM_PARAMS, XS, unroll=0), ValueError, r"unroll"),
    ("stack_empty", lambda: lstmx.stack([]), ValueError, r"at least one cell"),
    ("stack_not_cells", lambda: lstmx.stack([LSTM, "gru"]), TypeError, r"cells\[1\]"),
    ("bidirectional_not_cell", lambda: lstmx.bidirectional(LSTM, None), TypeError, r"backward"),
]


@pytest.mark.parametrize("call, error, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused(call, error, message):
    with pytest.raises(error, match=message):
        call()


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
        r"xs must have a real floating dtype .* got complex64: lstmx's cells are "
        r"real-valued .* jnp.concatenate\(\[x.real, x.imag\], axis=-1\)",
    ),
    (
        "complex_init_dtype",
        lambda: LSTM.init(KEY, 3, jnp.complex64),
        TypeError,
        r"init's dtype must be a real floating dtype .* got complex64: lstmx's cells are "
        r"real-valued",
    ),
    (
        "params_bfloat16_xs_float32",
        lambda: lstmx.scan(LSTM, LSTM.init(KEY, 3, jnp.bfloat16), XS),
        TypeError,
        r"same dtype",
    ),
    (
        "params_float32_xs_bfloat16",
        lambda: lstmx.scan(LSTM, LSTM_PARAMS, XS.astype(jnp.bfloat16)),
        TypeError,
        r"same dtype",
    ),
    (
        "variant_name_not_a_string",
        lambda: lstmx.variant(3, 4),
        ValueError,
        r"Unknown variant 3; valid names: rnn, lstm",
    ),
]

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

_ZEROS_XS = jnp.zeros((1, 3, 3))
DESCRIBE_AND_DIAGNOSTICS = [
    ("describe_not_a_cell", lambda: describe(lambda key, i: None, 2), TypeError, r"lstmx.Cell"),
    (
        "describe_input_size_zero",
        lambda: describe(LSTM, 0),
        ValueError,
        r"input_size must be an int >= 1",
    ),
    (
        "describe_input_size_float",
        lambda: describe(LSTM, 2.0),
        TypeError,
        r"input_size must be an int",
    ),
    (
        "describe_variant_name",  # cells know what they are: no variant= any more
        lambda: describe(LSTM, 2, variant="lstm"),
        TypeError,
        r"unexpected keyword argument 'variant'",
    ),
    (
        "gradient_norms_not_a_cell",
        lambda: diagnostics.gradient_norms(None, LSTM_PARAMS, jnp.zeros((3, 3))),
        TypeError,
        r"Cell",
    ),
    (
        "gradient_norms_rank_1",
        lambda: diagnostics.gradient_norms(LSTM, LSTM_PARAMS, jnp.zeros((3,))),
        ValueError,
        r"\[T, I\]",
    ),
    (
        "gradient_norms_wrong_features",
        lambda: diagnostics.gradient_norms(LSTM, LSTM_PARAMS, jnp.zeros((3, 4))),
        ValueError,
        r"3 feat",
    ),
    (
        "gradient_norms_state_batch",
        lambda: diagnostics.gradient_norms(
            LSTM, LSTM_PARAMS, jnp.zeros((2, 3, 3)), LSTM.initial_state()
        ),
        ValueError,
        r"batch shape",
    ),
    (
        "gate_statistics_variant_name",  # a name is not a cell any more
        lambda: diagnostics.gate_statistics("lstm", LSTM_PARAMS, _ZEROS_XS),
        TypeError,
        r"cell must be an lstmx.Cell, got str",
    ),
    (
        "gate_statistics_params_of_another_cell",
        lambda: diagnostics.gate_statistics(GRU, LSTM_PARAMS, _ZEROS_XS),
        TypeError,
        r"params must be GRUParams .* got LSTMParams",
    ),
    (
        "gate_statistics_params_of_another_variant",
        lambda: diagnostics.gate_statistics(lstmx.variant("cifg", 4), LSTM_PARAMS, _ZEROS_XS),
        ValueError,
        r"params.w_h must have shape \(4, 12\), got \(4, 16\)",
    ),
    (
        "gate_statistics_options_keyword",
        lambda: diagnostics.gate_statistics(LSTM, LSTM_PARAMS, _ZEROS_XS, peephole=True),
        TypeError,
        r"peephole",
    ),
    (
        "gate_statistics_rank_1",
        lambda: diagnostics.gate_statistics(LSTM, LSTM_PARAMS, _ZEROS_XS[0, 0]),
        ValueError,
        r"xs must be \[\*batch, T, I\], got shape \(3,\)",
    ),
    (
        "gate_activations_cell_without_step_with_gates",
        lambda: diagnostics.gate_activations(
            LSTM._replace(step_with_gates=None), LSTM_PARAMS, _ZEROS_XS
        ),
        TypeError,
        r"gate diagnostics need a cell with step_with_gates",
    ),
]


@pytest.mark.parametrize(
    "call, error, message",
    [c[1:] for c in PARAMS + GAPS + DESCRIBE_AND_DIAGNOSTICS],
    ids=[c[0] for c in PARAMS + GAPS + DESCRIBE_AND_DIAGNOSTICS],
)
def test_bad_params_describe_and_diagnostics_input_is_refused(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_errors_surface_at_trace_time_under_jit():
    """Under jit the same checks fire while tracing, before any XLA compilation."""
    run = jax.jit(lambda xs: lstmx.scan(LSTM, LSTM_PARAMS, xs)[1])
    with pytest.raises(ValueError, match=r"x must have 3 features"):
        run(jnp.ones((2, 5, 4)))
    with pytest.raises(TypeError, match=r"floating dtype"):
        run(jnp.ones((2, 5, 3), jnp.int32))


# ------------------------------------------- dtypes, autodiff mode, init keywords


def test_a_float64_numpy_input_without_a_state_runs_in_float32():
    cell = lstmx.lstm(4)
    params = cell.init(jax.random.key(0), 3)
    ys = lstmx.scan(cell, params, np.ones((2, 5, 3)))[1]
    assert ys.dtype == jnp.float32


def test_an_integer_state_dtype_is_refused():
    with pytest.raises(TypeError, match="initial_state's dtype must be a floating dtype .* int32"):
        lstmx.gru(4).initial_state((2,), jnp.int32)


def test_forward_mode_through_scan_names_scan_stepwise():
    cell = lstmx.lstm(4)
    params, xs = cell.init(jax.random.key(0), 3), jnp.ones((2, 5, 3))
    with pytest.raises(TypeError, match="For forward mode .* use lstmx.scan_stepwise"):
        jax.jvp(lambda x: lstmx.scan(cell, params, x)[1], (xs,), (xs,))
    jax.jvp(lambda x: lstmx.scan_stepwise(cell, params, x)[1], (xs,), (xs,))  # works


def test_unknown_init_keywords_are_reported_as_inits():
    with pytest.raises(TypeError, match=r"cell.init got unexpected keyword\(s\) input_dim"):
        lstmx.mgu(4).init(jax.random.key(0), input_dim=3)


def test_mixed_precision_is_refused_with_the_recipe_and_the_recipe_works():
    cell = lstmx.lstm(4)
    params = cell.init(jax.random.key(0), 3)
    xs = jnp.ones((2, 5, 3), jnp.bfloat16)
    with pytest.raises(TypeError, match=r"jax.tree.map\(lambda p: p.astype\(x.dtype\), params\)"):
        lstmx.scan(cell, params, xs)

    def loss(params):
        cast = jax.tree.map(lambda p: p.astype(xs.dtype), params)
        return lstmx.scan(cell, cast, xs)[1].astype(jnp.float32).sum()

    grads = jax.grad(loss)(params)
    assert grads.w_x.dtype == jnp.float32 and np.isfinite(grads.w_x).all()
