"""Kernels of the vanilla tanh RNN: forward pass, softmax cross-entropy, BPTT.

Storage.  The model keeps its parameters in one flat vector ``theta`` (and the
gradients in ``grad``, same layout; :func:`params` carves the views) and its
scratch arrays in one flat vector ``ws`` (:func:`workspace_size`,
:func:`workspace`), all starting on 64-byte boundaries.  Few arguments keep
Numba's dispatch cheap: at H=100 a training step is ~90 us, and each array
argument costs ~60 ns to type-check.

Layout.  Inside, everything is time-major.  For B streams of T steps the
hidden states are ``hs (T+1, B, H)``; position ``n = t*B + b`` is step t of
stream b.  Everything that is not sequential is one BLAS GEMM over the chunk:

    logits       zT      = Why @ hs[1:].T + by          (O, H) x (H, T*B)
    dWhy                 = dzT @ hs[1:]                 (O, T*B) x (T*B, H)
    dh from out  dh      = dzT.T @ Why                  (T*B, O) x (O, H)
    dWhh                 = dhraw.T @ hs[:-1]            (H, T*B) x (T*B, H)

A transposed operand is either copied once into C order or handed to BLAS as
a Fortran-ordered view, whichever measured faster at that shape on the
reference machine (OpenBLAS, AVX-512): copies win for small chunks, BLAS's
own packing for large ones and always for dWhh.

Only the recurrence is a loop over time: a hand-written matrix-vector product
per step for one stream (:mod:`.linalg`), a (B, H) x (H, H) GEMM per step for a
batch (:func:`.packed.product`: ``Whh`` packed once per chunk on an AVX-512
host, BLAS elsewhere).  The one-hot input side is a gather (forward) and a
scatter-add (backward); no one-hot matrix is ever built.  Nothing here allocates.
"""

from collections import namedtuple

import numpy as np

from fastrnn._kernels import storage
from fastrnn._kernels.activations import tanh_
from fastrnn._kernels.jit import inlined, kernel, sizes
from fastrnn._kernels.linalg import (
    copy_into,
    gather_column,
    input_rows,
    matvec_add,
    scatter_columns,
    transpose_into,
)
from fastrnn._kernels.output import output_backward, output_forward
from fastrnn._kernels.packed import pack, product, recurrent_weights, step_back
from fastrnn._kernels.storage import block, layer_states, leading_sizes, shared_blocks, total_size

__all__ = ["params", "workspace_size", "Workspace", "workspace", "forward", "backward",
           "forward_inlined", "backward_inlined", "backward_from"]


@kernel(inline="always")
def params(theta, I, H, O):
    """Views ``(Wxh, Whh, Why, bh, by)`` into a flat parameter (or gradient) vector.

    In memory the order is Whh, Why, Wxh, bh, by: Whh, streamed once per time
    step, comes first so that it starts where ``theta`` starts, on a cache line
    (a misaligned Whh makes the matrix-vector loops ~25% slower).  The order
    must match ``fastrnn.model.RNN._layout()``.
    """
    a = H * H
    b = a + O * H
    c = b + H * I
    d = c + H
    Whh = theta[:a].reshape((H, H))
    Why = theta[a:b].reshape((O, H))
    Wxh = theta[b:c].reshape((H, I))
    bh = theta[c:d].reshape((H, 1))
    by = theta[d:d + O].reshape((O, 1))
    return Wxh, Whh, Why, bh, by


@sizes
def _sizes(B, T, H, O, itemsize):
    N = T * B
    return leading_sizes(B, T, H, O, 1, 1, itemsize) + (H * N, N * O, H * H)


# The model's own blocks, after storage's leading ones, in the order of _sizes.
_HT, _DZ, _WHHT = range(storage.LEADING, storage.LEADING + 3)


@sizes
def workspace_size(B, T, H, O, itemsize):
    """Length of the flat workspace vector for a (B, T) chunk (blocks padded to 64 bytes)."""
    return total_size(_sizes(B, T, H, O, itemsize))


Workspace = namedtuple(
    "Workspace", ["hs", "h_new", "h_prev", "hT", "zT", "dz", "dh", "dhnext", "WhhT", "lse", "col",
                  "pack"])
Workspace.__doc__ = """The scratch arrays of a (B, T) chunk, views of one flat vector.

hs : (T+1, B, H)
    Hidden states.
h_new, h_prev : (T*B, H)
    ``hs[1:]`` and ``hs[:-1]`` as matrices (the same memory as ``hs``).
hT : (H, T*B)
    ``h_new.T`` for B = 1; for B > 1 scratch for ``Wxh.T`` and ``dWxh.T``
    (used only when T*B > I, so it is large enough).
zT : (O, T*B)
    Logits, then probabilities, then the loss gradient w.r.t. the logits.
dz : (T*B, O)
    ``zT.T``.
dh : (T*B, H)
    Gradient w.r.t. the hidden states, then the pre-activations.
dhnext : (B, H)
    Gradient flowing into the previous step.
WhhT : (H, H)
    ``Whh.T`` (batched recurrence only).
lse, col : (T*B,) of float64
    Per-position log-normaliser and scratch (float64 in either dtype).
pack : (:func:`.packed.recurrent_pack_size`,)
    ``Whh.T`` (forward) or ``Whh`` (backward) packed for the batched
    recurrence; empty where BLAS does it.
"""


@kernel
def workspace(ws, B, T, H, O):
    """Carve the :class:`Workspace` of a (B, T) chunk out of the flat vector ``ws``.

    ``ws`` must start on a 64-byte boundary; every array here then does too.
    Compiled once and called, not inlined: forward and backward each carved a
    dozen views inline, and Numba typed and lowered each copy (~0.5 s of an
    RNN's first call); one call per pass costs nothing measurable.
    """
    N = T * B
    s = _sizes(B, T, H, O, ws.itemsize)
    states, _, zT, lse, col, dh, dhnext, pack = shared_blocks(ws, s, B, T, H, O)
    hs, h_new, h_prev = layer_states(states, 0, B, T, H)
    return Workspace(hs, h_new, h_prev, block(ws, s, _HT).reshape((H, N)), zT,
                     block(ws, s, _DZ).reshape((N, O)), dh, dhnext,
                     block(ws, s, _WHHT).reshape((H, H)), lse, col, pack)


@kernel
def forward(x, state, theta, ws, I, H, O, packing):
    """Run the recurrence and the output layer over a chunk, into the workspace.

    Parameters
    ----------
    x : ndarray of int64, shape (B, T)
        Input indices.
    state : ndarray, shape (1, 1, B, H)
        Initial hidden states.
    theta : ndarray
        The flat parameters (:func:`params`).
    ws : ndarray
        The flat workspace (:func:`workspace`); on return ``hs`` holds the
        states (``hs[0] = h0``, ``hs[t+1]`` the state after step t) and ``zT``
        the logits, column ``t*B + b``.  ``hT`` serves as scratch: ``h_new.T``
        for B = 1, ``Wxh.T`` for B > 1 (when T*B > I).
    I, H, O : int
        Input, hidden and output sizes.
    packing : ndarray, 1-D, or None
        Room for ``Whh`` packed for a batch's recurrence (the workspace's
        :data:`.storage.PACK` block; empty where BLAS does it), or None for
        one stream (B = 1), whose recurrence is a matrix-vector product per
        step.  None is a type of its own: each kind compiles only its own loop.
    """
    B, T = x.shape
    Wxh, Whh, Why, bh, by = params(theta, I, H, O)
    w = workspace(ws, B, T, H, O)
    hs = w.hs
    bias = bh[:, 0]
    copy_into(hs[0], state[0, 0])
    if packing is None:
        for t in range(T):
            h = hs[t + 1, 0]
            matvec_add(Whh, hs[t, 0], bias, h, t % 2 == 1)  # (H,)
            col = x[0, t]
            for i in range(H):
                h[i] += Wxh[i, col]
            tanh_(h)
    else:
        packed = pack(Whh.T, packing)
        if packed[0].shape[0] == 0:
            transpose_into(Whh, w.WhhT)
        WxhT = input_rows(Wxh, T * B, w.hT.reshape(H * T * B))  # hT: free until the output
        for t in range(T):
            a = hs[t + 1]  # (B, H)
            product(hs[t], w.WhhT, packed, a, t % 2 == 1)
            for b in range(B):
                row = a[b]
                gather_column(Wxh, WxhT, x[b, t], bias, row, True)
                tanh_(row)
    if packing is None:
        output_forward(Why, by, w.h_new, w.zT, w.hT)  # a short chunk: copy h_new.T
    else:
        output_forward(Why, by, w.h_new, w.zT, None)


@kernel
def backward(x, theta, grad, ws, I, H, O, packing):
    """Backpropagation through time over a chunk; fills ``grad`` (overwritten).

    Needs the states of :func:`forward` and the gradient of the loss w.r.t.
    the logits (from :func:`.output.xent`, in ``zT``) in the workspace ``ws``;
    ``dz``, ``dh``, ``dhnext`` and ``hT`` (``dWxh.T`` for B > 1) are scratch.
    ``packing`` is as for :func:`forward`.
    """
    B, T = x.shape
    Wxh, Whh, Why, bh, by = params(theta, I, H, O)
    dWxh, dWhh, dWhy, dbh, dby = params(grad, I, H, O)
    w = workspace(ws, B, T, H, O)
    dh, dhnext = w.dh, w.dhnext
    dh3 = dh.reshape((T, B, H))
    packed = recurrent_weights(Whh, packing)
    output_backward(Why, w.h_new, w.zT, dWhy, dby, dh, w.dz)  # dh: what reaches each h from above
    for t in range(T - 1, -1, -1):
        for b in range(B):
            n = t * B + b
            d = dh[n]
            h = w.hs[t + 1, b]
            if t < T - 1:
                nb = dhnext[b]
                for i in range(H):
                    d[i] = (d[i] + nb[i]) * (1.0 - h[i] * h[i])
            else:
                for i in range(H):
                    d[i] = d[i] * (1.0 - h[i] * h[i])
        if t > 0:
            step_back(dh3[t], Whh, packing, packed, dhnext, t % 2 == 0)  # (B, H)
    np.dot(dh.T, w.h_prev, dWhh)  # (H, H); BLAS packs the transposed operand itself
    bias = dbh[:, 0]
    bias[:] = 0.0
    for n in range(T * B):
        d = dh[n]
        for i in range(H):
            bias[i] += d[i]
    scatter_columns(x, dh, dWxh, w.hT.reshape(H * T * B))  # hT is free: scratch


# The same two passes as kernels their caller inlines: the one-stream training step
# (:mod:`.chunks`) calls these, with ``packing`` None, which Numba's dead-branch pruning then
# follows into the inlined code.  Called as separate kernels, each was optimised and compiled
# once on its own and again inside the step.  The other entry points call them as they are.
forward_inlined = inlined(forward)
backward_inlined = inlined(backward)


@kernel(inline="always")
def backward_from(x, y, hs_in, ps_in, theta, grad, ws, I, H, O, packing):
    """BPTT from given states ``hs_in (B, T+1, H)`` and probabilities ``ps_in (B, T, O)``."""
    B, T = x.shape
    w = workspace(ws, B, T, H, O)
    scale = 1.0 / B
    for t in range(T + 1):
        for b in range(B):
            copy_into(w.hs[t, b], hs_in[b, t])
    for k in range(O):
        for t in range(T):
            for b in range(B):
                w.zT[k, t * B + b] = ps_in[b, t, k] * scale
    for t in range(T):
        for b in range(B):
            w.zT[y[b, t], t * B + b] -= scale
    backward(x, theta, grad, ws, I, H, O, packing)
