"""Argument checks shared by every public entry point.

Each function either returns the argument normalised (an int, a float, an
int64 array) or raises ValueError naming the argument and the offending value.
They never modify their input, so a rejected call changes nothing.
"""

import math
import numbers

import numpy as np

from fastrnn._limits import MAX_DIMENSION, MAX_SEED

__all__ = [
    "check_int",
    "check_real",
    "check_dimension",
    "check_seed",
    "entropy_seed",
    "check_learning_rate",
    "check_clip",
    "sgd_options",
    "check_num_chars",
    "check_temperature",
    "DTYPES",
    "check_dtype",
    "check_threads",
    "check_top_k",
    "check_top_p",
    "sampling_filters",
    "index_array",
    "paired_indices",
    "check_index",
    "integer_vector",
    "float_array",
    "kernel_array",
    "hidden_state",
    "check_instance",
    "argument_type",
]


def short_repr(value):
    if isinstance(value, int) and abs(value) >= 10**18:  # repr refuses over 4300 digits
        return f"an integer of {len(format(abs(value), 'x')) * 4} bits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(name, value, fast_type, abc, convert, what):
    if type(value) is fast_type:  # the common case, without the slower ABC checks
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, abc):
        raise ValueError(f"{name} must be {what}, got {short_repr(value)} ({type(value).__name__})")
    try:
        return convert(value)
    except OverflowError:  # float(10**400)
        raise ValueError(f"{name} is out of range, got {short_repr(value)}") from None


def _integer(name, value):
    return _number(name, value, int, numbers.Integral, int, "an integer")


def _real(name, value):
    return _number(name, value, float, numbers.Real, float, "a real number")


def check_int(name, value, low=None, high=None):
    """An integer, at least ``low`` and at most ``high`` when given."""
    value = _integer(name, value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {short_repr(value)}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be an integer <= {high:,}, got {short_repr(value)}")
    return value


def check_real(name, value, low=None, high=None, low_open=False, high_open=False):
    """A finite real number in the interval from ``low`` to ``high`` (closed unless *_open)."""
    value = _real(name, value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    too_low = low is not None and (value < low or (low_open and value == low))
    too_high = high is not None and (value > high or (high_open and value == high))
    if too_low or too_high:
        if low is not None and high is not None:
            what = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low == 0 and low_open:
            what = "a positive number"
        elif low is not None:
            what = f"a number {'>' if low_open else '>='} {low:g}"
        else:
            what = f"a number {'<' if high_open else '<='} {high:g}"
        raise ValueError(f"{name} must be {what}, got {value}")
    return value


def check_dimension(name, value, high=MAX_DIMENSION):
    """A positive integer size (``input_dim``, ``hidden_dim``, ...), at most ``high``."""
    value = _integer(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {short_repr(value)}")
    if value > high:
        raise ValueError(f"{name} must be a positive integer <= {high:,}, got {short_repr(value)}")
    return value


def check_sizes(input_dim, hidden_dim, output_dim, num_layers=1):
    """``(input_dim, hidden_dim, output_dim, num_layers)``, each a positive integer.

    Each is at most :data:`MAX_DIMENSION`, so that what a model derives from
    them is an ordinary number (the model then bounds its parameter count).
    """
    return (check_dimension("input_dim", input_dim), check_dimension("hidden_dim", hidden_dim),
            check_dimension("output_dim", output_dim), check_dimension("num_layers", num_layers))


def check_seed(name, seed):
    """``None`` or an integer in ``[0, 2**32 - 1]``."""
    if seed is None:
        return None
    seed = _integer(name, seed)
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{name} must be in [0, {MAX_SEED}], got {seed}")
    return seed


def entropy_seed(seed):
    """``seed`` itself, or a fresh one from the operating system when it is None."""
    if seed is not None:
        return seed
    return int(np.random.SeedSequence().generate_state(1)[0])


def _positive_real(name, value, what):
    value = _real(name, value)
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"{name} must be {what}, got {value}")
    return value


def check_learning_rate(value, name="learning_rate"):
    """A finite, positive real number."""
    return _positive_real(name, value, "a finite positive number")


def check_clip(value, name="clip"):
    """``None`` (no clipping) or a finite, positive real number."""
    if value is None:
        return None
    return _positive_real(name, value, "a finite positive number or None")


def sgd_options(learning_rate, clip):
    """``(learning_rate, clip)`` of a training step, each checked as above."""
    return check_learning_rate(learning_rate), check_clip(clip)


def check_num_chars(value, name="num_chars"):
    """A non-negative integer count."""
    return check_int(name, value, 0)


def check_temperature(value, name="temperature"):
    """A finite real number >= 0 (0 means greedy)."""
    return check_real(name, value, low=0.0)


DTYPES = ("float64", "float32")
"""The dtypes a model computes in, by name; float64 is the default and the exact reference."""


def check_dtype(value, name="dtype"):
    """A model's dtype: ``np.dtype('float64')`` or ``np.dtype('float32')``.

    Accepts the names "float64" and "float32", the types ``np.float64`` and
    ``np.float32``, or the numpy dtypes themselves; anything else (``float``,
    "f8", float16, an int type) is a ValueError, so that a model never
    computes in a dtype nobody asked for by name.
    """
    if isinstance(value, str):
        if value in DTYPES:
            return np.dtype(value)
    elif value is np.float64 or value is np.float32:
        return np.dtype(value)
    elif isinstance(value, np.dtype) and value.name in DTYPES and value.isnative:
        return value
    raise ValueError(f'{name} must be "float64" or "float32" (or np.float64, np.float32), '
                     f"got {short_repr(value)}")


def check_threads(name, value):
    """A thread count: an int >= 1 (bools and floats are refused)."""
    return check_int(name, value, low=1)


def _numpy_bounds(flat):
    return flat.min(), flat.max()


def index_array(name, values, upper, bounds=_numpy_bounds):
    """Indices as a C-contiguous int64 array of shape (T,) or (B, T), each in [0, upper).

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    values : array_like of int
        A sequence of indices (T,) or a batch of sequences (B, T).
    upper : int
        Exclusive upper bound (the vocabulary size).
    bounds : callable, optional
        ``bounds(flat) -> (min, max)`` for a 1-D int64 array; NumPy's by
        default (the compiled models pass a faster one).

    Returns
    -------
    ndarray of int64, shape (T,) or (B, T)
    """
    if isinstance(values, np.ndarray):
        arr = values
    elif isinstance(values, (str, bytes)):
        raise ValueError(f"{name} must be a sequence of integer indices, got {short_repr(values)}")
    else:
        try:
            arr = np.asarray(values)
        except ValueError as error:  # ragged nested sequences
            raise ValueError(
                f"{name} must be a rectangular array of integer indices: {error}"
            ) from None
    if arr.size == 0:  # before the dtype: np.asarray([]) is float64
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    kind = arr.dtype.kind
    if kind not in "iu":
        raise ValueError(
            f"{name} must hold integer indices, got dtype {arr.dtype} ({short_repr(values)})"
        )
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} must have shape (T,) or (B, T), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if kind == "u" and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds index {int(arr.max())}, outside [0, {upper - 1}]")
    arr = kernel_array(arr, np.int64)
    low, high = bounds(arr.reshape(-1))
    if low < 0 or high >= upper:
        bad = low if low < 0 else high
        raise ValueError(f"{name} holds index {int(bad)}, outside [0, {upper - 1}]")
    return arr


def paired_indices(inputs, targets, input_dim, output_dim, bounds=_numpy_bounds,
                   names=("inputs", "targets")):
    """Validate inputs and targets together: both index arrays of the same shape.

    ``names`` are the argument names used in error messages.
    """
    xs = index_array(names[0], inputs, input_dim, bounds)
    ys = index_array(names[1], targets, output_dim, bounds)
    if xs.shape != ys.shape:
        raise ValueError(f"{names[0]} has shape {xs.shape} but {names[1]} has shape {ys.shape}")
    return xs, ys


def check_index(name, value, upper):
    """A single integer index in [0, upper)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    value = _integer(name, value)
    if not 0 <= value < upper:
        raise ValueError(f"{name} must be in [0, {upper - 1}], got {value}")
    return value


def integer_vector(name, value, what, allow_empty=True):
    """``value`` as a 1-D integer array (NumPy's view of it, not a copy).

    Anything else, or an empty one unless ``allow_empty``, raises ValueError:
    "``name`` must be ``what``", with the dtype and shape it has.
    """
    arr = np.asarray(value)
    if arr.ndim != 1 or arr.dtype.kind not in "iu" or (not allow_empty and arr.size == 0):
        raise ValueError(f"{name} must be {what}, got dtype {arr.dtype} and shape {arr.shape}")
    return arr


def float_array(name, value, shape=None, dtype=np.float64):
    """``value`` as an array of ``dtype`` (float64 by default), of ``shape`` when given.

    Integer and float arrays are accepted; complex numbers (whose imaginary
    part would be dropped), strings and objects are not.
    """
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of numbers, got {short_repr(value)}") from None
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    arr = arr.astype(dtype, copy=False)
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name} has shape {arr.shape}, expected {tuple(shape)}")
    return arr


def kernel_array(arr, dtype):
    """``arr`` as the kernels take it: C-contiguous, writeable, of ``dtype``; a copy if need be.

    Itself when it is one already.  A read-only array (``np.frombuffer``, a
    memory map, ``flags.writeable = False``) is a type of its own to Numba:
    passed as it is, it would compile every kernel the model uses a second
    time; the copy costs far less.
    """
    if arr.dtype == dtype and arr.flags.carray:  # C-contiguous, aligned and writeable
        return arr
    return np.array(arr, dtype=dtype, order="C")


def _numpy_all_finite(flat):
    return bool(np.isfinite(flat).all())


def hidden_state(h0, batch, hidden_dim, name="h0", all_finite=_numpy_all_finite,
                 dtype=np.float64):
    """The initial hidden state as a C-contiguous (B, H) array of ``dtype``.

    ``None`` gives zeros; an array of shape (H,) or (H, 1) is the same state
    for every stream; (B, H) gives one state per stream.  The result may be a
    view of ``h0`` (callers only read it).  ``all_finite(flat)``
    tells whether a 1-D float64 array holds only finite values (NumPy's by
    default; the compiled models pass a faster one: this check runs on every
    training step that carries its state).
    """
    if h0 is None:
        return np.zeros((batch, hidden_dim), dtype)
    if type(h0) is np.ndarray and h0.dtype == dtype:
        arr = h0  # the common case, e.g. the previous call's last_hidden
    else:
        arr = float_array(name, h0, dtype=dtype)
    if arr.shape == (batch, hidden_dim) or (batch == 1 and arr.shape == (hidden_dim,)):
        out = kernel_array(arr, dtype).reshape(batch, hidden_dim)  # no copy when possible
    elif arr.shape in ((hidden_dim,), (hidden_dim, 1)):
        out = np.empty((batch, hidden_dim), dtype)
        out[:] = arr.reshape(hidden_dim)
    else:
        allowed = f"({hidden_dim},), ({hidden_dim}, 1) or ({batch}, {hidden_dim})"
        raise ValueError(f"{name} has shape {arr.shape}, expected {allowed}")
    if not all_finite(out.reshape(-1)):
        raise ValueError(f"{name} must be finite, got non-finite values")
    return out


def layered_state(name, value, layers, batch, hidden_dim, all_finite=_numpy_all_finite,
                  dtype=np.float64):
    """The state of a stack of layers as a fresh C-contiguous (L, B, H) array of ``dtype``.

    ``value`` has shape (L, H) (the same state for every stream) or (L, B, H);
    its values must be finite.
    """
    arr = float_array(name, value, dtype=dtype)
    if arr.shape == (layers, hidden_dim):
        out = np.empty((layers, batch, hidden_dim), dtype)
        out[:] = arr[:, None, :]
    elif arr.shape == (layers, batch, hidden_dim):
        out = np.array(arr, order="C")
    else:
        raise ValueError(
            f"{name} has shape {arr.shape}, expected ({layers}, {hidden_dim}) or "
            f"({layers}, {batch}, {hidden_dim})"
        )
    if not all_finite(out.reshape(-1)):
        raise ValueError(f"{name} must be finite, got non-finite values")
    return out


def sampling_arguments(model, start_index, num_chars, temperature, seed):
    """The checked arguments of a model's ``predict``: ``(start, num_chars, temperature, seed)``.

    ``seed`` comes back as an int in [0, 2**32 - 1], drawn from the operating
    system's entropy when it was None.  Sampling feeds each sampled index back
    as input, so the model's ``output_dim`` must not exceed its ``input_dim``.
    """
    if model.output_dim > model.input_dim:
        raise ValueError(
            f"predict feeds each sampled index back as input, which needs "
            f"output_dim <= input_dim, got {model.output_dim} > {model.input_dim}"
        )
    return (check_index("start_index", start_index, model.input_dim), check_num_chars(num_chars),
            check_temperature(temperature), entropy_seed(check_seed("seed", seed)))


def check_top_k(value, name="top_k"):
    """``None`` (no limit) or an integer >= 1: how many of the most probable indices to keep."""
    if value is None:
        return None
    return check_int(name, value, 1)


def check_top_p(value, name="top_p"):
    """``None`` (no limit) or a real number in (0, 1]: the nucleus's probability."""
    if value is None:
        return None
    return check_real(name, value, low=0.0, high=1.0, low_open=True)


def sampling_filters(model, top_k, top_p):
    """The checked ``top_k, top_p`` of a model's ``predict``, as the sampling kernel takes them.

    ``top_k`` comes back as an int, 0 when it keeps every index (None, or at
    least ``model.output_dim``); ``top_p`` as a float, 1.0 when it keeps every
    index (None or 1).
    """
    top_k, top_p = check_top_k(top_k), check_top_p(top_p)
    return (0 if top_k is None or top_k >= model.output_dim else top_k,
            1.0 if top_p is None else top_p)


def check_instance(name, value, kind):
    """``value`` itself when it is an instance of the class ``kind``."""
    if not isinstance(value, kind):
        raise ValueError(f"{name} must be a {kind.__name__}, got {type(value).__name__}")
    return value


def argument_type(check, parse):
    """An argparse ``type=`` converter made from a check of this module.

    The converter parses the text with ``parse`` (``int`` or ``float``), then
    returns ``check(name, value)``.  A failure becomes argparse's one-line
    error, which names the flag itself: the message is the check's, without
    the argument name and with the value as it was typed.

    Parameters
    ----------
    check : callable
        ``check(name, value)``, returning the value or raising ValueError.
    parse : {int, float}

    Returns
    -------
    callable
        ``convert(text)``, raising ``argparse.ArgumentTypeError``.
    """
    import argparse  # only the command line needs it, not the models that use this module

    def convert(text):
        try:
            value = parse(text)
        except ValueError:
            what = "an integer" if parse is int else "a number"
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        try:
            return check("", value)
        except ValueError as error:
            # Every check ends its message with ", got <value>": show the text.
            message, got, _ = str(error).strip().rpartition(", got ")
            message = f"{message}, got {text!r}" if got else str(error).strip()
            raise argparse.ArgumentTypeError(message) from None

    return convert
