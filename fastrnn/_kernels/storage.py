"""Flat storage: the 64-byte aligned blocks that parameters and workspaces are carved from.

Every model keeps its parameters in one flat vector and the scratch arrays of
a chunk in another (:func:`.rnn.workspace`, :func:`.gated.workspace`).  Each
block starts on a cache line when the vector does: misaligned rows of the
recurrent weights make the matrix-vector loops ~25% slower.
"""

from fastrnn._jit import kernel

__all__ = ["ALIGN", "padded", "take"]

ALIGN = 8  # float64s per 64 bytes


@kernel(inline="always")
def padded(n):
    """``n`` rounded up to a whole number of cache lines (of float64s)."""
    return (n + ALIGN - 1) // ALIGN * ALIGN


@kernel(inline="always")
def take(ws, start, size):
    """The block ``ws[start:start + size]`` and where the next block starts."""
    return ws[start:start + size], start + padded(size)
