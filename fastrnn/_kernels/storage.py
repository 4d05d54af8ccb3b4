"""Flat storage: the 64-byte aligned blocks that parameters and workspaces are carved from.

Every model keeps its parameters in one flat vector and the scratch arrays of
a chunk in another (:func:`.rnn.workspace`, :func:`.gated.workspace`), a
sequence of blocks whose sizes a tuple gives, in elements of the model's
dtype (float32 or float64).  Each block starts on a cache line when the
vector does: misaligned rows of the recurrent weights make the
matrix-vector loops ~25% slower.
"""

import numpy as np

from fastrnn._jit import kernel

__all__ = ["ALIGN", "padded", "total_size", "block", "float64_block"]

ALIGN = 16  # elements per 64 bytes of float32 (two cache lines of float64)


@kernel(inline="always")
def padded(n):
    """``n`` rounded up to a multiple of :data:`ALIGN` (whole cache lines in either dtype)."""
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


@kernel(inline="always")
def float64_block(ws, sizes, k, n):
    """Block ``k`` of ``ws`` as ``n`` float64s, whatever the dtype of ``ws``.

    For the sums that stay in float64 in a float32 model (the softmax
    normalisers); ``sizes[k]`` must be ``2 * n``, which is ``n`` float64s
    in a float32 vector and room to spare in a float64 one.
    """
    return block(ws, sizes, k).view(np.float64)[:n]
