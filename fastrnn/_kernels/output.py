"""The output layer every model shares: logits, softmax cross-entropy, gradients.

All models end in ``z = Why h + by`` over the top layer's states ``h_new``
(T*B, H) of a chunk, a softmax over the O symbols and the cross-entropy with
the targets.  Logits are kept as ``zT (O, T*B)`` (see :func:`.activations.softmax_columns`).

A transposed GEMM operand is either copied once into C order (pass a scratch
array) or handed to BLAS as a Fortran-ordered view (pass ``None``): the copy
wins for one stream's short chunk (T*B = 25), where BLAS's packing costs more
than the product, and BLAS's own packing for large chunks.  ``None`` and an
array compile to separate specialisations, so the choice costs nothing.
"""

import numpy as np

from fastrnn._kernels.activations import softmax_columns
from fastrnn._kernels.jit import kernel
from fastrnn._kernels.linalg import copy_into, transpose_into

__all__ = ["output_forward", "xent", "output_backward", "probabilities_out"]


@kernel
def output_forward(Why, by, h_new, zT, hT):
    """Logits ``zT (O, T*B) = Why @ h_new.T + by`` of the top layer's states ``h_new (T*B, H)``.

    ``Why`` is (O, H), ``by`` (O, 1).  ``hT (H, T*B)`` is scratch for a copy of
    ``h_new.T``; None lets BLAS read ``h_new`` transposed.
    """
    if hT is None:
        np.dot(Why, h_new.T, zT)  # (O, H) x (H, T*B)
    else:
        transpose_into(h_new, hT)
        np.dot(Why, hT, zT)
    for k in range(zT.shape[0]):
        row = zT[k]
        bk = by[k, 0]
        for n in range(row.shape[0]):
            row[n] += bk


@kernel
def xent(zT, y, grad, lse, col):
    """Softmax cross-entropy of a chunk's logits, in place; returns the loss.

    Parameters
    ----------
    zT : ndarray, shape (O, T*B)
        Logits in (column ``t*B + b``).  Out: the probabilities, or with
        ``grad`` the gradient of the returned loss w.r.t. the logits,
        ``(p - onehot(y)) / B``.
    y : ndarray of int64, shape (B, T)
        Target indices.
    grad : bool
    lse, col : ndarray, shape (T*B,)
        Workspace.

    Returns
    -------
    float
        Sum over t of ``-log p[y[t]]`` (from log-probabilities, never
        ``log(p)``), averaged over the B streams.
    """
    B, T = y.shape
    scale = 1.0 / B if grad else 1.0
    total = 0.0
    for t in range(T):
        for b in range(B):
            total -= zT[y[b, t], t * B + b]
    softmax_columns(zT, scale, lse, col)
    for n in range(lse.shape[0]):
        total += lse[n]
    if grad:
        for t in range(T):
            for b in range(B):
                zT[y[b, t], t * B + b] -= scale
    return total / B


@kernel
def output_backward(Why, h_new, dzT, dWhy, dby, dh, dz):
    """Gradients of the output layer from ``dzT`` (the loss gradient w.r.t. the logits).

    Parameters
    ----------
    Why : ndarray, shape (O, H)
        Output weights.
    h_new : ndarray, shape (T*B, H)
        The top layer's states after each step, position ``t*B + b`` per row.
    dzT : ndarray, shape (O, T*B)
        Gradient w.r.t. the logits, a column per position.
    dWhy : ndarray, shape (O, H)
        Output (overwritten).
    dby : ndarray, shape (O, 1)
        Output (overwritten).
    dh : ndarray, shape (T*B, H)
        Output: the gradient w.r.t. ``h_new`` (overwritten).
    dz : ndarray, shape (T*B, O), or None
        Scratch for a copy of ``dzT.T``; None lets BLAS read ``dzT`` transposed.
    """
    np.dot(dzT, h_new, dWhy)  # (O, T*B) x (T*B, H)
    for k in range(dzT.shape[0]):
        row = dzT[k]
        s = 0.0
        for n in range(row.shape[0]):
            s += row[n]
        dby[k, 0] = s
    if dz is None:
        np.dot(dzT.T, Why, dh)  # (T*B, O) x (O, H)
    else:
        transpose_into(dzT, dz)
        np.dot(dz, Why, dh)


@kernel
def probabilities_out(hs, zT, lse, col, hs_out, ps_out):
    """Softmax of the logits ``zT (O, T*B)`` in place, then copy out batch-major.

    Writes ``hs_out (B, T+1, H)`` from the top layer's ``hs (T+1, B, H)`` and
    ``ps_out (B, T, O)``.
    """
    B, T, O = ps_out.shape
    softmax_columns(zT, 1.0, lse, col)
    for t in range(T + 1):
        for b in range(B):
            copy_into(hs_out[b, t], hs[t, b])
    for k in range(O):
        for t in range(T):
            for b in range(B):
                ps_out[b, t, k] = zT[k, t * B + b]
