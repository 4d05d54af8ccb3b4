"""The stacked gated models (LSTM, GRU): layers, storage and the passes over a chunk.

The cells (one time step, forward and back) are in :mod:`.cells`; this
module holds what the two models share: the parameter layout, the workspace,
the input projections and weight gradients, the loops over time around the
cells, and the passes through the stack of layers (:func:`forward`,
:func:`backward`) that :mod:`.chunks` calls.

Storage, as in :mod:`.rnn`: one flat parameter vector ``theta`` (gradients in
``grad``, same layout) carved by :func:`layer_params` and
:func:`output_params`, and one flat workspace ``ws`` carved by
:func:`workspace`.  A stack of L layers with G gates each (G = 4 for the LSTM,
3 for the GRU) holds, per layer k, PyTorch's ``weight_ih_l{k}`` (G*H, I_k),
``weight_hh_l{k}`` (G*H, H), ``bias_ih_l{k}`` and ``bias_hh_l{k}`` (G*H,), then
the output layer ``Why`` (O, H) and ``by`` (O, 1).  In memory the order is

    weight_hh_l0 .. weight_hh_l{L-1}, weight_ih_l1 .. weight_ih_l{L-1}, Why,
    weight_ih_l0, bias_ih_l0, bias_hh_l0, ..., bias_hh_l{L-1}, by

so that the square recurrent matrices, streamed on every time step, start on
a cache line when H is a multiple of 8 (``theta`` itself is 64-byte aligned).
The order must match ``_layout()`` of the gated model classes in ``fastrnn.model``.

Layout of the chunk: time-major, position ``n = t*B + b``.  Everything that is
not sequential is one GEMM over the chunk with C-ordered operands:

    input projection (k > 0)   P  = h_{k-1} @ W_ih.T     (N, H) x (H, G*H)
    recurrence (B > 1), a step    h_t @ W_hh.T           (B, H) x (H, G*H)  (*)
    recurrent weights          dW_hh = dA.T @ h_prev     (G*H, N) x (N, H)
    input weights (k > 0)      dW_ih = dA.T @ h_{k-1}    (G*H, N) x (N, H)
    gradient to layer k-1      dh = dA @ W_ih            (N, G*H) x (G*H, H)

and the output layer of :mod:`.output`, shared with :mod:`.rnn`.  (*) The
recurrence's products, forward and back, run 25 times a chunk on the same
weights: on an AVX-512 host they are :func:`.packed.product` with ``W_hh``
packed once per chunk, elsewhere BLAS calls.
Transposed weights and gradients go to BLAS as transposed views (numba passes
them as Fortran-ordered operands); only the output array must be C-ordered.
Layer 0 reads one-hot inputs: a gather of ``weight_ih_l0`` columns forward and
a scatter-add backward, never a one-hot matrix.
"""

from collections import namedtuple

import numpy as np

from fastrnn._kernels import storage
from fastrnn._kernels.cells import gru_cell, gru_cell_backward, lstm_cell, lstm_cell_backward
from fastrnn._kernels.jit import kernel, sizes
from fastrnn._kernels.linalg import (
    copy_into,
    gather_column,
    input_rows,
    matvec_add_tall,
    scatter_columns,
)
from fastrnn._kernels.output import output_backward, output_forward
from fastrnn._kernels.packed import product, recurrent_weights, step_back
from fastrnn._kernels.storage import block, layer_states, leading_sizes, shared_blocks, total_size

__all__ = ["layer_params", "output_params", "workspace_size", "Workspace", "workspace",
           "input_projection", "weight_gradients", "column_sums", "forward", "backward"]


@kernel(inline="always")
def _bias_start(I, H, O, L, G):
    GH = G * H
    return (2 * L - 1) * GH * H + O * H + GH * I


@kernel(inline="always")
def layer_params(theta, k, I, H, O, L, G):
    """Views ``(W_ih, W_hh, b_ih, b_hh)`` of layer k: (G*H, I_k), (G*H, H), (G*H,), (G*H,)."""
    GH = G * H
    GHH = GH * H
    Whh = theta[k * GHH:(k + 1) * GHH].reshape((GH, H))
    if k == 0:
        o = (2 * L - 1) * GHH + O * H
        Wih = theta[o:o + GH * I].reshape((GH, I))
    else:
        o = (L + k - 1) * GHH
        Wih = theta[o:o + GHH].reshape((GH, H))
    b = _bias_start(I, H, O, L, G) + 2 * k * GH
    return Wih, Whh, theta[b:b + GH], theta[b + GH:b + 2 * GH]


@kernel(inline="always")
def output_params(theta, I, H, O, L, G):
    """Views ``(Why, by)``: (O, H), (O, 1)."""
    o = (2 * L - 1) * G * H * H
    b = _bias_start(I, H, O, L, G) + 2 * L * G * H
    return theta[o:o + O * H].reshape((O, H)), theta[b:b + O].reshape((O, 1))


@sizes
def _sizes(B, T, H, O, L, G, itemsize):
    N, GH = T * B, G * H
    return leading_sizes(B, T, H, O, L, G, itemsize) + (
        L * N * GH, L * N * H,
        N * GH if G == 3 else 0,  # GRU: gradient of the recurrent-side pre-activations
        B * H, B * GH)


# The model's own blocks, after storage's leading ones, in the order of _sizes.
_PREACTS, _AUX, _DQ, _DCNEXT, _TMP = range(storage.LEADING, storage.LEADING + 5)


@sizes
def workspace_size(B, T, H, O, L, G, itemsize):
    """Length of the flat workspace vector for a (B, T) chunk (blocks padded to 64 bytes)."""
    return total_size(_sizes(B, T, H, O, L, G, itemsize))


Workspace = namedtuple(
    "Workspace", ["hs", "cs", "gates", "aux", "dq", "zT", "dh", "dhnext", "dcnext", "tmp",
                  "lse", "col", "pack"])
Workspace.__doc__ = """The scratch arrays of a (B, T) chunk, views of one flat vector.

hs : (L*(T+1)*B*H,)
    Hidden states of every layer; :func:`.storage.layer_states` views them.
cs : (L*(T+1)*B*H,) or (0,)
    LSTM cell states, laid out like ``hs``.
gates : (L, T*B, G*H)
    Pre-activations, then activations, then (backward) their gradients.
aux : (L, T*B, H)
    LSTM: ``tanh(c)``; GRU: ``W_hn h + b_hn``.
dq : (T*B, G*H) or (0, G*H)
    GRU: gradient of ``W_hh h + b_hh``.
zT : (O, T*B)
    Logits, probabilities, their gradient.
dh : (T*B, H)
    Gradient reaching the current layer's outputs.
dhnext, dcnext : (B, H)
    Gradients flowing to the previous step (GRU: ``dcnext`` holds the direct part).
tmp : (B, G*H)
    Recurrent product of one step.
lse, col : (T*B,) of float64
    The softmax's log-normalisers and scratch (float64 in either dtype).
pack : (:func:`.packed.recurrent_pack_size`,)
    A layer's ``W_hh`` packed for the batched recurrence; empty where BLAS
    does it.
"""


@kernel
def workspace(ws, B, T, H, O, L, G):
    """Carve the :class:`Workspace` of a (B, T) chunk out of the flat vector ``ws``.

    Compiled once and called, not inlined into both passes (as :func:`.rnn.workspace`).
    """
    s = _sizes(B, T, H, O, L, G, ws.itemsize)
    N, GH = T * B, G * H
    states, cells, zT, lse, col, dh, dhnext, pack = shared_blocks(ws, s, B, T, H, O)
    return Workspace(states, cells, block(ws, s, _PREACTS).reshape((L, N, GH)),
                     block(ws, s, _AUX).reshape((L, N, H)),
                     block(ws, s, _DQ).reshape((s[_DQ] // GH, GH)), zT, dh, dhnext,
                     block(ws, s, _DCNEXT).reshape((B, H)), block(ws, s, _TMP).reshape((B, GH)),
                     lse, col, pack)


@kernel
def input_projection(x, below, Wih, bias, out, scratch):
    """``out[n] = W_ih @ input_n + bias`` for every position n of the chunk.

    The input is the previous layer's output ``below (T*B, H)`` for layers
    k > 0, or, when ``below`` is empty (0, H), the one-hot vector of the index
    ``x[b, t]`` (``x`` int64, (B, T)).  ``W_ih`` is (G*H, I_k), ``bias`` (G*H,),
    ``out`` (T*B, G*H).  A one-hot input reads column ``x[b, t]`` of
    ``W_ih``; with more positions than columns it reads the contiguous rows
    of ``W_ih.T`` instead, transposed once into ``scratch`` (1-D) when it has
    room (see :func:`.linalg.scatter_columns`, the backward of this).
    """
    if below.shape[0] > 0:
        np.dot(below, Wih.T, out)  # (N, H) x (H, G*H), W_ih.T as a transposed operand
        out += bias
        return
    B, T = x.shape
    WT = input_rows(Wih, T * B, scratch)  # (I, G*H) or empty
    for p in range(T * B):
        gather_column(Wih, WT, x[p % B, p // B], bias, out[p], False)


@kernel(inline="always")
def weight_gradients(dA, prev, dW):
    """``dW = dA.T @ prev`` for ``dA (T*B, G*H)``, ``prev (T*B, m)``, ``dW (G*H, m)``.

    ``dA.T`` is handed to BLAS as a transposed (Fortran-ordered) operand: this
    saves copying the chunk's gradient (~15% of the product's time here).
    """
    np.dot(dA.T, prev, dW)  # (G*H, N) x (N, m)


@kernel(inline="always")
def column_sums(dA, db):
    """``db = dA.sum(axis=0)`` for ``dA (T*B, G*H)``: a bias gradient."""
    db[:] = 0.0
    for n in range(dA.shape[0]):
        row = dA[n]
        for i in range(row.shape[0]):
            db[i] += row[i]


@kernel
def _layer_forward(g, hs, cs, aux, Whh, bhh, tmp, packing):
    """One layer's recurrence over a chunk, with the LSTM's cell or the GRU's.

    Only the recurrent product is a loop over time: a hand-written
    matrix-vector product per step for one stream (:mod:`.linalg`), a
    (B, H) x (H, G*H) GEMM per step for a batch.

    Parameters
    ----------
    g : ndarray, shape (T*B, G*H)
        The input side in (LSTM: both biases added; GRU: ``b_ih``), the gate
        activations out.
    hs : ndarray, shape (T+1, B, H)
        The states; ``hs[0]`` holds the initial state, the rest is written.
    cs : ndarray, shape (T+1, B, H), or an empty (0,)
        The LSTM's cell states, ``cs[0]`` the initial one; the GRU has none.
    aux : ndarray, shape (T*B, H)
        Output: the LSTM's ``tanh(c)``, the GRU's ``q_n``.
    Whh : ndarray, shape (G*H, H)
    bhh : ndarray, shape (G*H,)
    tmp : ndarray, shape (B, G*H)
        Workspace: the recurrent product of a step.
    packing : ndarray, 1-D, or None
        Room for ``W_hh.T`` packed (:mod:`.packed`; empty: BLAS), or None for
        one stream (B = 1).

    The model and the kind of chunk are told apart by types, which Numba
    knows at compile time (``cs.ndim``; None against an array): each model
    compiles only its own cell, and one stream no batched recurrence.
    """
    T = hs.shape[0] - 1
    B, H = hs.shape[1], hs.shape[2]
    lstm = cs.ndim == 3
    WhhT = Whh.T  # (H, G*H)
    packed = recurrent_weights(WhhT, packing)
    for t in range(T):
        if packing is None:
            if lstm:  # accumulate into the gates: a = W_hh h + (input side)
                matvec_add_tall(Whh, hs[t, 0], g[t], g[t], t % 2 == 1)  # (4H,)
            else:  # the GRU keeps q = W_hh h + b_hh apart (the reset gate scales q_n)
                matvec_add_tall(Whh, hs[t, 0], bhh, tmp[0], t % 2 == 1)  # (3H,)
        else:
            product(hs[t], WhhT, packed, tmp, t % 2 == 1)  # (B, G*H)
        for b in range(B):
            n = t * B + b
            a = g[n]
            r = tmp[b]
            if lstm:
                if packing is not None:
                    for i in range(a.shape[0]):
                        a[i] += r[i]
                lstm_cell(a, cs[t, b], cs[t + 1, b], hs[t + 1, b], aux[n], H)
            else:
                if packing is not None:
                    for i in range(r.shape[0]):
                        r[i] += bhh[i]
                gru_cell(a, r, hs[t, b], hs[t + 1, b], aux[n], H)


@kernel
def _layer_backward(g, dq, hs, cs, aux, dh, dhnext, dcnext, Whh, packing):
    """Backpropagate through one layer's recurrence (see :func:`_layer_forward`).

    ``g`` holds the gate activations in and the gradients w.r.t. the input
    side out; the GRU (``cs`` empty) writes the gradient w.r.t.
    ``W_hh h + b_hh`` into ``dq`` (the LSTM's is ``g`` itself).  ``dh (T*B,
    H)`` is the gradient reaching each h from above; ``dhnext, dcnext (B,
    H)`` are workspace (the GRU keeps the direct part of the gradient w.r.t.
    the previous h in ``dcnext``).  ``cs`` and ``packing`` are as for
    :func:`_layer_forward`.
    """
    T = hs.shape[0] - 1
    B, H = hs.shape[1], hs.shape[2]
    lstm = cs.ndim == 3
    dA_rec = g if lstm else dq  # what flows back through W_hh
    packed = recurrent_weights(Whh, packing)
    dhnext[:, :] = 0.0
    dcnext[:, :] = 0.0
    for t in range(T - 1, -1, -1):
        for b in range(B):
            n = t * B + b
            if lstm:
                lstm_cell_backward(g[n], dh[n], dhnext[b], dcnext[b], cs[t, b], aux[n], H)
            else:
                gru_cell_backward(g[n], dq[n], aux[n], hs[t, b], dh[n], dhnext[b], dcnext[b], H)
        if t > 0:
            step_back(dA_rec[t * B:(t + 1) * B], Whh, packing, packed, dhnext,
                      t % 2 == 0)  # (B, H)
            if not lstm:
                for b in range(B):  # the direct part (a loop: see linalg.copy_into)
                    for i in range(H):
                        dhnext[b, i] += dcnext[b, i]


@kernel
def forward(x, state, theta, ws, I, H, O, L, G, cells, packing):
    """Run every layer over the chunk, then the output layer (logits in ``zT``).

    Parameters
    ----------
    x : ndarray of int64, shape (B, T)
    state : ndarray, shape (S, L, B, H)
        The initial state: h, and for the LSTM (S = 2) c.
    theta : ndarray
        Flat parameters (:func:`layer_params`).
    ws : ndarray
        Flat workspace (:func:`workspace`), filled with the states.
    I, H, O, L, G : int
        Sizes; G = 4 for the LSTM, 3 for the GRU.
    cells : ndarray, shape (L, T+1, B, H), or an empty (0,)
        The LSTM's cell states (the workspace's :data:`.storage.CELLS` block);
        the GRU has none.
    packing : ndarray, 1-D, or None
        Room for a layer's ``W_hh`` packed (the :data:`.storage.PACK` block),
        or None for one stream.

    ``cells`` and ``packing`` choose the code by their types (``cells.ndim``;
    None against an array), which Numba knows at compile time: an LSTM
    compiles no GRU cell and one stream no batched recurrence.
    """
    B, T = x.shape
    lstm = cells.ndim == 4
    w = workspace(ws, B, T, H, O, L, G)
    for k in range(L):
        Wih, Whh, bih, bhh = layer_params(theta, k, I, H, O, L, G)
        hs = layer_states(w.hs, k, B, T, H)[0]
        copy_into(hs[0], state[0, k])
        g = w.gates[k]  # (N, G*H)
        if k == 0:
            below = w.dh[:0]  # no layer below: one-hot inputs
        else:
            below = layer_states(w.hs, k - 1, B, T, H)[1]
        # The input side's bias: the LSTM adds both biases there, the GRU only
        # b_ih (its b_hh is inside the reset gate's product).
        bias = w.tmp[0]  # free until the recurrence
        if lstm:
            for i in range(G * H):
                bias[i] = bih[i] + bhh[i]
        else:
            copy_into(bias, bih)
        input_projection(x, below, Wih, bias, g, w.dh.reshape(-1))  # dh: free until backward
        if lstm:
            copy_into(cells[k, 0], state[1, k])
            _layer_forward(g, hs, cells[k], w.aux[k], Whh, bhh, w.tmp, packing)
        else:
            _layer_forward(g, hs, cells, w.aux[k], Whh, bhh, w.tmp, packing)
    Why, by = output_params(theta, I, H, O, L, G)
    output_forward(Why, by, layer_states(w.hs, L - 1, B, T, H)[1], w.zT, None)


@kernel
def backward(x, theta, grad, ws, I, H, O, L, G, cells, packing):
    """BPTT through the output layer and every layer; fills ``grad`` (overwritten).

    Needs the states of :func:`forward` and the logits' gradient (from
    :func:`.output.xent`) in ``ws``; ``cells`` and ``packing`` as there.
    """
    B, T = x.shape
    lstm = cells.ndim == 4
    w = workspace(ws, B, T, H, O, L, G)
    Why, by = output_params(theta, I, H, O, L, G)
    dWhy, dby = output_params(grad, I, H, O, L, G)
    output_backward(Why, layer_states(w.hs, L - 1, B, T, H)[1], w.zT, dWhy, dby, w.dh, None)
    for k in range(L - 1, -1, -1):
        Wih, Whh, bih, bhh = layer_params(theta, k, I, H, O, L, G)
        dWih, dWhh, dbih, dbhh = layer_params(grad, k, I, H, O, L, G)
        hs, h_new, h_prev = layer_states(w.hs, k, B, T, H)
        g = w.gates[k]
        if lstm:  # the gradient w.r.t. W_hh h + b_hh: the LSTM's is its gates'
            _layer_backward(g, w.dq, hs, cells[k], w.aux[k], w.dh, w.dhnext, w.dcnext, Whh,
                            packing)
            weight_gradients(g, h_prev, dWhh)
            column_sums(g, dbih)
            copy_into(dbhh, dbih)
        else:  # the GRU's is dq
            _layer_backward(g, w.dq, hs, cells, w.aux[k], w.dh, w.dhnext, w.dcnext, Whh, packing)
            weight_gradients(w.dq, h_prev, dWhh)
            column_sums(g, dbih)
            column_sums(w.dq, dbhh)
        if k == 0:
            scatter_columns(x, g, dWih, w.dh.reshape(-1))  # dh: used up by layer 0
        else:
            weight_gradients(g, layer_states(w.hs, k - 1, B, T, H)[1], dWih)
            np.dot(g, Wih, w.dh)  # (N, G*H) x (G*H, H): gradient reaching layer k-1
