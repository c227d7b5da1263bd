"""Input checks for the public boundary.

Every check runs in plain Python on static shapes and dtypes, so a bad call fails at trace
time with a message naming what was expected and what came, instead of deep inside XLA.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def int_at_least(name: str, value: Any, minimum: int, why: str = "") -> int:
    """Returns ``value`` as an int, or raises if it is not an int (bools refused) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}{why}, got {value}.")
    return int(value)


def positive_int(name: str, value: Any) -> int:
    """Returns ``value`` if it is an int >= 1, else raises."""
    return int_at_least(name, value, 1)


def finite_number(name: str, value: Any, example: str) -> float:
    """Returns ``value`` as a float, or raises if it is not a finite real number (bools
    refused); ``example`` says what a good value looks like."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(
            f"{name} must be a number ({example}), got {type(value).__name__} {value!r}."
        )
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number ({example}), got {value!r}.")
    return float(value)


def float_array(name: str, x: Any) -> jax.Array:
    """Returns `x` as a jax array after checking that it has a floating dtype.

    A NumPy array becomes a jax array as ``jnp.asarray`` makes it (float64 becomes float32
    unless ``jax_enable_x64`` is on), so that its dtype is the one the computation sees.
    """
    if isinstance(x, np.ndarray):
        x = jnp.asarray(x)
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        if isinstance(x, (list, tuple, float, int)):
            x = jnp.asarray(x)
        else:
            raise TypeError(f"{name} must be an array, got {type(x).__name__}.")
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise TypeError(
            f"{name} must have a real floating dtype (e.g. float32), got {x.dtype}: lstmx's "
            f"cells are real-valued (their gates squash real pre-activations). {COMPLEX_HINT}"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{name} must have a floating dtype (e.g. float32), got {x.dtype}. "
            "Cast integer token ids with jax.nn.one_hot or an embedding first."
        )
    return x


COMPLEX_HINT = (
    "Feed a complex signal's real and imaginary parts as features: "
    "jnp.concatenate([x.real, x.imag], axis=-1)."
)


def feature_size(name: str, x: jax.Array, expected: int) -> None:
    """Checks that the last axis of `x` has `expected` features."""
    if x.ndim < 1:
        raise ValueError(f"{name} must have a feature axis of size {expected}, got a scalar.")
    if x.shape[-1] != expected:
        raise ValueError(
            f"{name} must have {expected} features on its last axis (the size the params were "
            f"initialised for), got shape {tuple(x.shape)}."
        )


def input_and_params_dtypes(x: jax.Array, params: Any) -> None:
    """Params must be floating, all of one dtype, and of the input's dtype."""
    dtype = getattr(params.w_x, "dtype", None)
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"params must have a floating dtype, got params.w_x of dtype {dtype}.")
    for name, leaf in params._asdict().items():
        if leaf is not None and getattr(leaf, "dtype", dtype) != dtype:
            raise TypeError(
                f"params must all have one dtype, got params.w_x {dtype} and "
                f"params.{name} {leaf.dtype}."
            )
    if x.dtype != dtype:
        raise TypeError(
            f"x and params must have the same dtype, got x {x.dtype} and params {dtype}. "
            "A cell computes in its params' dtype. For mixed precision as Flax's "
            "param_dtype=float32, dtype=bfloat16, keep float32 master params and cast a copy "
            "for the computation: jax.tree.map(lambda p: p.astype(x.dtype), params) (the "
            "gradient reaches the float32 params through the cast)."
        )


def batch_shape(value: Any) -> tuple[int, ...]:
    """A batch shape: a tuple of non-negative ints."""
    try:
        shape = tuple(value)
    except TypeError:
        raise TypeError(f"batch_shape must be a tuple of ints, got {value!r}.") from None
    for size in shape:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
            raise ValueError(f"batch_shape must hold non-negative ints, got {shape}.")
    return tuple(int(size) for size in shape)


def state_size(
    state: Any, hidden_size: int, names: Sequence[str] = ("h", "c"), h_size: int | None = None
) -> None:
    """Checks that the state's ``h`` (and ``c``, ... if any) have ``hidden_size`` features.

    ``h_size``, when given, is the width expected of ``h`` instead (``P`` for an LSTM with
    ``proj_size=P``).
    """
    for name in names:
        leaf = getattr(state, name, None)
        size = h_size if name == "h" and h_size is not None else hidden_size
        if leaf is not None and leaf.shape[-1:] != (size,):
            expected = (*leaf.shape[:-1], size)
            label = "P" if size != hidden_size else "H"
            raise ValueError(
                f"state.{name} must have shape {expected} ([*batch, {label}] with "
                f"{label}={size}), got {tuple(leaf.shape)}."
            )


def batch_shape_matches(name: str, x: jax.Array, state_h: jax.Array) -> None:
    """Checks that the input and the state have the same leading batch axes."""
    if tuple(x.shape[:-1]) != tuple(state_h.shape[:-1]):
        raise ValueError(
            f"{name} has batch shape {tuple(x.shape[:-1])} but the state has batch shape "
            f"{tuple(state_h.shape[:-1])}; make the state with cell.initial_state(batch_shape)."
        )


def array_shape(name: str, x: Any, expected: Sequence[int]) -> None:
    """Checks one parameter array's shape."""
    shape = getattr(x, "shape", None)
    if shape is None:
        raise TypeError(
            f"{name} must be an array of shape {tuple(expected)}, got {type(x).__name__}."
        )
    if tuple(shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {tuple(shape)}.")


def params_type(name: str, params: Any, expected: type) -> None:
    """Checks that `params` is the NamedTuple a cell's init returns."""
    if not isinstance(params, expected):
        raise TypeError(
            f"{name} must be {expected.__name__} (as returned by this cell's init), "
            f"got {type(params).__name__}."
        )
