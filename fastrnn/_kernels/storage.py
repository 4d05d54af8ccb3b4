"""Flat storage: the 64-byte aligned blocks that parameters and workspaces are carved from.

Every model keeps its parameters in one flat vector and the scratch arrays of
a chunk in another (:func:`.rnn.workspace`, :func:`.gated.workspace`), a
sequence of blocks whose sizes a tuple gives.  Each block starts on a cache
line when the vector does: misaligned rows of the recurrent weights make the
matrix-vector loops ~25% slower.
"""

from fastrnn._jit import kernel

__all__ = ["ALIGN", "padded", "total_size", "block"]

ALIGN = 8  # float64s per 64 bytes


@kernel(inline="always")
def padded(n):
    """``n`` rounded up to a whole number of cache lines (of float64s)."""
    return (n + ALIGN - 1) // ALIGN * ALIGN


@kernel(inline="always")
def total_size(sizes):
    """The length of a vector holding blocks of ``sizes`` (a tuple of ints), each padded."""
    total = 0
    for size in sizes:
        total += padded(size)
    return total


@kernel(inline="always")
def block(ws, sizes, k):
    """Block ``k`` of the vector ``ws`` of blocks of ``sizes``: a 1-D view of ``sizes[k]``.

    Only integer arithmetic and one slice, so a kernel that needs two blocks
    of a workspace takes just those (a reshape costs ~25 ns, a whole
    workspace of a dozen blocks ~400 ns: a measurable part of a small step).
    """
    start = 0
    for i in range(k):
        start += padded(sizes[i])
    return ws[start:start + sizes[k]]
