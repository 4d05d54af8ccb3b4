"""Reductions the models use to check their arguments fast (NumPy's cost ~1 us a call)."""

import math

from fastrnn._jit import kernel

__all__ = ["index_bounds", "all_finite"]


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
