"""Reductions the models use to check their arguments fast (NumPy's cost ~1 us a call)."""

import math

from fastrnn._jit import kernel

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
    ``[0, y_upper)`` and every ``h`` finite.  All three must be C-contiguous
    (1-D or 2-D: the reshape is then free; ``h`` may be empty).  Callers that
    get False run the full validation, which names the problem.
    """
    for v in x.reshape(-1):
        if not 0 <= v < x_upper:
            return False
    for v in y.reshape(-1):
        if not 0 <= v < y_upper:
            return False
    for v in h.reshape(-1):
        if not math.isfinite(v):
            return False
    return True
