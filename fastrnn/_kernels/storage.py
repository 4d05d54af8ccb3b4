"""Flat storage: the 64-byte aligned blocks that parameters and workspaces are carved from.

Every model keeps its parameters in one flat vector and the scratch arrays of
a chunk in another (:func:`.rnn.workspace`, :func:`.gated.workspace`), a
sequence of blocks whose sizes a tuple gives, in elements of the model's
dtype (float32 or float64).  Each block starts on a cache line when the
vector does: misaligned rows of the recurrent weights make the
matrix-vector loops ~25% slower.

Every workspace begins with the same eight blocks (:data:`STATES` to
:data:`PACK`, sized by :func:`leading_sizes`): the blocks every model uses the
same way.  What the entry points read after a pass (the final state, the top
layer's states and the logits) is therefore carved here, once for every
model, from those sizes alone; a model's own blocks follow.
"""

import numpy as np

from fastrnn._kernels.jit import kernel, sizes
from fastrnn._kernels.packed import recurrent_pack_size

__all__ = ["ALIGN", "padded", "total_size", "span", "block", "float64_block", "STATES", "CELLS",
           "LOGITS", "LSE", "COL", "DH", "DHNEXT", "PACK", "LEADING", "leading_sizes",
           "shared_blocks", "layer_states", "final_state", "top_layer", "optional_blocks"]

ALIGN = 16  # elements per 64 bytes of float32 (two cache lines of float64)


@sizes
def padded(n):
    """``n`` rounded up to a multiple of :data:`ALIGN` (whole cache lines in either dtype)."""
    return (n + ALIGN - 1) // ALIGN * ALIGN


@sizes
def total_size(blocks):
    """The length of a vector holding blocks of sizes ``blocks`` (a tuple of ints), each padded."""
    total = 0
    for size in blocks:
        total += padded(size)
    return total


@sizes
def span(sizes, k):
    """``(start, length)`` of block ``k`` in a vector of blocks of ``sizes``."""
    # ``sizes`` is indexed only by the loop's variable: indexing it by the
    # constant k would compile one function per block (Numba's tuple getitem
    # with a literal index), ~20 of them in a model's first call.
    start = 0
    size = 0
    for i in range(k + 1):
        start += padded(size)
        size = sizes[i]
    return start, size


@kernel(inline="always")
def block(ws, sizes, k):
    """Block ``k`` of the vector ``ws`` of blocks of ``sizes``: a 1-D view of ``sizes[k]``.

    Only a call and one slice, so a kernel that needs two blocks of a
    workspace takes just those (a reshape costs ~25 ns, a whole workspace of a
    dozen blocks ~400 ns: a measurable part of a small step).  The arithmetic
    is :func:`span`'s, compiled once: a loop here would be copied into every
    caller at each of its dozens of call sites, and Numba's inlining and
    lowering of those copies was ~1 s of a model's first call.
    """
    start, size = span(sizes, k)
    return ws[start:start + size]


@kernel(inline="always")
def float64_block(ws, sizes, k, n):
    """Block ``k`` of ``ws`` as ``n`` float64s, whatever the dtype of ``ws``.

    For the sums that stay in float64 in a float32 model (the softmax
    normalisers); ``sizes[k]`` must be ``2 * n``, which is ``n`` float64s
    in a float32 vector and room to spare in a float64 one.
    """
    return block(ws, sizes, k).view(np.float64)[:n]


# The blocks every workspace begins with, in this order; a model's own blocks follow,
# numbered from LEADING.
STATES, CELLS, LOGITS, LSE, COL, DH, DHNEXT, PACK = range(8)
LEADING = PACK + 1


@sizes
def leading_sizes(B, T, H, O, L, G, itemsize):
    """Sizes of the blocks every workspace of a (B, T) chunk begins with.

    Every layer's states ``(L*(T+1)*B*H,)``, laid out by :func:`layer_states`;
    the LSTM's (G = 4) cell states, laid out alike, or nothing; then the
    blocks of :func:`shared_blocks`.
    """
    states = L * (T + 1) * B * H
    N = T * B
    return (states, states if G == 4 else 0, O * N, 2 * N, 2 * N,  # lse, col: N float64s each
            N * H, B * H, recurrent_pack_size(B, H, G * H, itemsize))


@kernel(inline="always")
def shared_blocks(ws, sizes, B, T, H, O):
    """The eight leading blocks of a workspace whose blocks have ``sizes``.

    Returns ``(states, cells, zT, lse, col, dh, dhnext, pack)``:

    states, cells : flat
        Every layer's hidden states and (LSTM only; empty otherwise) cell
        states; :func:`layer_states` views one layer's.
    zT : (O, T*B)
        Logits, then probabilities, then the loss gradient w.r.t. the logits.
    lse, col : (T*B,) of float64
        The softmax's log-normalisers and scratch (float64 in either dtype).
    dh : (T*B, H)
        Gradient reaching the (top) layer's outputs.
    dhnext : (B, H)
        Gradient flowing into the previous step.
    pack : (:func:`.packed.recurrent_pack_size`,)
        The recurrent weights packed for the batched recurrence; empty where
        BLAS does it.
    """
    N = T * B
    return (block(ws, sizes, STATES), block(ws, sizes, CELLS),
            block(ws, sizes, LOGITS).reshape((O, N)), float64_block(ws, sizes, LSE, N),
            float64_block(ws, sizes, COL, N), block(ws, sizes, DH).reshape((N, H)),
            block(ws, sizes, DHNEXT).reshape((B, H)), block(ws, sizes, PACK))


@kernel(inline="always")
def layer_states(flat, k, B, T, H):
    """Layer k's states in ``flat``: ``(hs (T+1, B, H), new (T*B, H), prev (T*B, H))``.

    ``new`` is ``hs[1:]`` and ``prev`` is ``hs[:-1]`` as matrices (same memory).
    """
    S = (T + 1) * B * H
    base = k * S
    N = T * B
    hs = flat[base:base + S].reshape((T + 1, B, H))
    new = flat[base + B * H:base + S].reshape((N, H))
    prev = flat[base:base + N * H].reshape((N, H))
    return hs, new, prev


@kernel(inline="always")
def final_state(ws, B, T, H, O, L, G, state_last):
    """Copy the state after the chunk's last step into ``state_last (S, L, B, H)``.

    S = 2 for the LSTM (h and c), 1 otherwise.
    """
    s = leading_sizes(B, T, H, O, L, G, ws.itemsize)
    stride = (T + 1) * B * H  # one layer's states
    for j in range(state_last.shape[0]):  # h, and the LSTM's c
        flat = block(ws, s, STATES if j == 0 else CELLS)
        for k in range(L):
            last = state_last[j, k]
            start = k * stride + T * B * H  # layer k's step T
            for b in range(B):
                for i in range(H):
                    last[b, i] = flat[start + b * H + i]


@kernel(inline="always")
def top_layer(ws, B, T, H, O, L, G):
    """``(hs (T+1, B, H), zT (O, T*B), lse, col)``: the top layer's states, the logits, scratch."""
    s = leading_sizes(B, T, H, O, L, G, ws.itemsize)
    N = T * B
    return (layer_states(block(ws, s, STATES), L - 1, B, T, H)[0],
            block(ws, s, LOGITS).reshape((O, N)), float64_block(ws, s, LSE, N),
            float64_block(ws, s, COL, N))


@kernel(inline="always")
def optional_blocks(ws, B, T, H, O, L, G, one_stream):
    """``(cells, packing)``: the blocks that only some models and chunks have.

    ``cells`` is the LSTM's (G = 4) cell states, (L, T+1, B, H), and for
    other models an empty (0,); ``packing`` the room to pack recurrent
    weights for a batch, and None for one stream.  An entry point inlines
    this with G and ``one_stream`` constant, so their types tell the kernels
    below which code to compile (see :mod:`fastrnn._kernels.jit`).
    """
    s = leading_sizes(B, T, H, O, L, G, ws.itemsize)
    cells = block(ws, s, CELLS).reshape((L, T + 1, B, H)) if G == 4 else block(ws, s, CELLS)
    packing = None if one_stream else block(ws, s, PACK)
    return cells, packing
