"""What the gated recurrent kernels (:mod:`.lstm`, :mod:`.gru`) share.

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
The order must match ``_LAYOUT`` of the model classes in ``fastrnn.model``.

Layout of the chunk: time-major, position ``n = t*B + b``.  Everything that is
not sequential is one GEMM over the chunk with C-ordered operands:

    input projection (k > 0)   P  = h_{k-1} @ W_ih.T     (N, H) x (H, G*H)
    recurrence (B > 1), a step    h_t @ W_hh.T           (B, H) x (H, G*H)
    recurrent weights          dW_hh = dA.T @ h_prev     (G*H, N) x (N, H)
    input weights (k > 0)      dW_ih = dA.T @ h_{k-1}    (G*H, N) x (N, H)
    gradient to layer k-1      dh = dA @ W_ih            (N, G*H) x (G*H, H)

and the output layer of :mod:`.output`, shared with :mod:`.rnn`.
Transposed weights and gradients go to BLAS as transposed views (numba passes
them as Fortran-ordered operands); only the output array must be C-ordered.
Layer 0 reads one-hot inputs: a gather of ``weight_ih_l0`` columns forward and
a scatter-add backward, never a one-hot matrix.
"""

import numpy as np

from fastrnn._jit import kernel

__all__ = [
    "layer_params",
    "output_params",
    "workspace_size",
    "workspace",
    "layer_states",
    "input_projection",
    "weight_gradients",
    "column_sums",
]

ALIGN = 8  # float64s per 64 bytes


@kernel(inline="always")
def _up(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


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


@kernel(inline="always")
def _sizes(B, T, H, O, L, G):
    N = T * B
    GH = G * H
    cells = L * (T + 1) * B * H if G == 4 else 0  # LSTM cell states
    dq = N * GH if G == 3 else 0  # GRU: gradient of the recurrent-side pre-activations
    return (L * (T + 1) * B * H, cells, L * N * GH, L * N * H, dq, O * N, N * H, B * H, B * H,
            B * GH, N, N)


@kernel
def workspace_size(B, T, H, O, L, G):
    """Length of the flat workspace vector for a (B, T) chunk (blocks padded to 64 bytes)."""
    total = 0
    for size in _sizes(B, T, H, O, L, G):
        total += _up(size)
    return total


@kernel(inline="always")
def workspace(ws, B, T, H, O, L, G):
    """Carve the scratch arrays of a (B, T) chunk out of the flat vector ``ws``.

    Returns
    -------
    hs_flat : (L*(T+1)*B*H,)
        Hidden states of every layer; :func:`layer_states` views them.
    cs_flat : (L*(T+1)*B*H,) or (0,)
        LSTM cell states, laid out like ``hs_flat``.
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
        Gradients flowing to the previous step.
    tmp : (B, G*H)
        Recurrent product of one step.
    lse, col : (T*B,)
    """
    N = T * B
    GH = G * H
    s = _sizes(B, T, H, O, L, G)
    o = 0
    hs_flat = ws[o:o + s[0]]
    o += _up(s[0])
    cs_flat = ws[o:o + s[1]]
    o += _up(s[1])
    gates = ws[o:o + s[2]].reshape((L, N, GH))
    o += _up(s[2])
    aux = ws[o:o + s[3]].reshape((L, N, H))
    o += _up(s[3])
    dq = ws[o:o + s[4]].reshape((s[4] // GH, GH))
    o += _up(s[4])
    zT = ws[o:o + s[5]].reshape((O, N))
    o += _up(s[5])
    dh = ws[o:o + s[6]].reshape((N, H))
    o += _up(s[6])
    dhnext = ws[o:o + s[7]].reshape((B, H))
    o += _up(s[7])
    dcnext = ws[o:o + s[8]].reshape((B, H))
    o += _up(s[8])
    tmp = ws[o:o + s[9]].reshape((B, GH))
    o += _up(s[9])
    lse = ws[o:o + s[10]]
    o += _up(s[10])
    col = ws[o:o + s[11]]
    return hs_flat, cs_flat, gates, aux, dq, zT, dh, dhnext, dcnext, tmp, lse, col


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


@kernel
def input_projection(x, below, Wih, bias, bias2, use_bias2, out):
    """``out[n] = W_ih @ input_n + bias (+ bias2)`` for every position of the chunk.

    Parameters
    ----------
    x : ndarray of int64, shape (B, T)
        Input indices (layer 0, when ``below`` is empty).
    below : ndarray, shape (T*B, H) or (0, H)
        The previous layer's outputs (layers k > 0).
    Wih : ndarray, shape (G*H, I_k)
    bias, bias2 : ndarray, shape (G*H,)
    use_bias2 : bool
    out : ndarray, shape (T*B, G*H)
        Output.
    """
    B, T = x.shape
    GH = Wih.shape[0]
    if below.shape[0] == 0:
        for t in range(T):
            for b in range(B):
                c = x[b, t]
                row = out[t * B + b]
                if use_bias2:
                    for i in range(GH):
                        row[i] = Wih[i, c] + (bias[i] + bias2[i])
                else:
                    for i in range(GH):
                        row[i] = Wih[i, c] + bias[i]
    else:
        np.dot(below, Wih.T, out)  # (N, H) x (H, G*H), W_ih.T as a transposed operand
        for n in range(out.shape[0]):
            row = out[n]
            if use_bias2:
                for i in range(GH):
                    row[i] += bias[i] + bias2[i]
            else:
                for i in range(GH):
                    row[i] += bias[i]


@kernel
def weight_gradients(dA, prev, dW):
    """``dW = dA.T @ prev`` for ``dA (T*B, G*H)``, ``prev (T*B, m)``, ``dW (G*H, m)``.

    ``dA.T`` is handed to BLAS as a transposed (Fortran-ordered) operand: this
    saves copying the chunk's gradient (~15% of the product's time here).
    """
    np.dot(dA.T, prev, dW)  # (G*H, N) x (N, m)


@kernel
def column_sums(dA, db):
    """``db = dA.sum(axis=0)`` for ``dA (T*B, G*H)``: a bias gradient."""
    db[:] = 0.0
    for n in range(dA.shape[0]):
        row = dA[n]
        for i in range(row.shape[0]):
            db[i] += row[i]
