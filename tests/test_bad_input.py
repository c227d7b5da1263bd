"""Every bad input at the public boundary is refused at trace time with a clear message."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx

KEY = jax.random.key(0)
LSTM = lstmx.lstm(4)
LSTM_PARAMS = LSTM.init(KEY, 3)
GRU = lstmx.gru(4)
GRU_PARAMS = GRU.init(KEY, 3)
XS = jnp.ones((2, 5, 3))
STACK = lstmx.stack([lstmx.lstm(4), lstmx.gru(4)])
STACK_PARAMS = STACK.init(KEY, 3)
BIDI = lstmx.bidirectional(LSTM, GRU)
BIDI_PARAMS = BIDI.init(KEY, 3)

# (id, callable, exception type, regex the message must match)
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
        r"x must have 3 features .* got shape \(2, 5, 7\)",
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


def test_errors_surface_at_trace_time_under_jit():
    """Under jit the same checks fire while tracing, before any XLA compilation."""
    run = jax.jit(lambda xs: lstmx.scan(LSTM, LSTM_PARAMS, xs)[1])
    with pytest.raises(ValueError, match=r"x must have 3 features"):
        run(jnp.ones((2, 5, 4)))
    with pytest.raises(TypeError, match=r"floating dtype"):
        run(jnp.ones((2, 5, 3), jnp.int32))
