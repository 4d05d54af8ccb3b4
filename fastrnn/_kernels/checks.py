"""Checks of arguments as kernels: index ranges and finiteness (NumPy costs ~1 us a call)."""

import math

from fastrnn._kernels.jit import kernel

__all__ = ["index_bounds", "all_finite", "chunk_ok"]


@kernel
def index_bounds(flat):
    """``(min, max)`` of a non-empty 1-D int64 array in one pass.

    NumPy's ``min`` and ``max`` cost about a microsecond each on a short array,
    a measurable share of a training step at small sizes.
    """
    low = flat[0]
    high = flat[0]
    for i in range(1, flat.shape[0]):
        v = flat[i]
        low = min(low, v)
        high = max(high, v)
    return low, high


@kernel
def all_finite(flat):
    """Whether a 1-D float64 array holds no NaN and no infinity."""
    for i in range(flat.shape[0]):
        if not math.isfinite(flat[i]):
            return False
    return True


@kernel
def chunk_ok(x, y, x_upper, y_upper, h):
    """Whether a training chunk is valid, in one call: the checks of a training step.

    True when every ``x`` is in ``[0, x_upper)``, every ``y`` in
    ``[0, y_upper)`` and every ``h`` finite: :func:`index_bounds` and
    :func:`all_finite` behind a single dispatch.  ``x`` and ``y`` must be
    non-empty; all three C-contiguous (1-D or 2-D: the reshape is then free;
    ``h`` may be empty).  Callers that get False run the full validation,
    which names the problem.
    """
    x_low, x_high = index_bounds(x.reshape(-1))
    y_low, y_high = index_bounds(y.reshape(-1))
    return (0 <= x_low and x_high < x_upper and 0 <= y_low and y_high < y_upper
            and all_finite(h.reshape(-1)))
