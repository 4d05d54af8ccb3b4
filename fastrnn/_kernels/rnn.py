"""Kernels of the vanilla tanh RNN: forward pass, softmax cross-entropy, BPTT.

Layout: the kernels work time-major.  For B streams of T steps the hidden
states are ``hs (T+1, B, H)`` and the logits/probabilities/output gradients
``z (T*B, O)`` with row ``t*B + b`` for step t of stream b, so that everything
that is not sequential is one BLAS GEMM over the whole chunk:

    logits       z      = hs[1:] @ Why.T + by          (T*B, H) x (H, O)
    dWhy                = dy.T @ hs[1:]                (O, T*B) x (T*B, H)
    dh from out  dh     = dy @ Why                     (T*B, O) x (O, H)
    dWhh                = dhraw.T @ hs[:-1]            (H, T*B) x (T*B, H)

Only the recurrence is a loop over time: a matrix-vector product per step for
one stream (hand-written, see :mod:`.linalg`), a (B, H) x (H, H) GEMM per step
for a batch.  The one-hot input side is a gather (forward) and a scatter-add
(backward); no one-hot matrix is ever built.

The caller owns every array (the model's workspace): nothing is allocated here.
"""

import numpy as np

from fastrnn._jit import kernel
from fastrnn._kernels.activations import softmax_row, tanh_
from fastrnn._kernels.linalg import matvec_add, matvec_t, transpose_into
from fastrnn._kernels.optimizers import clip_, sgd_

__all__ = [
    "forward",
    "softmax_xent",
    "xent_grad",
    "backward",
    "softmax_rows",
    "value_and_grad",
    "train_step",
]


@kernel
def forward(x, h0, Wxh, Whh, bh, Why, by, WhhT, WhyT, hs, h_new, z):
    """Run the recurrence and the output layer over a chunk.

    Parameters
    ----------
    x : ndarray of int64, shape (B, T)
        Input indices.
    h0 : ndarray, shape (B, H)
        Initial hidden states.
    Wxh : ndarray, shape (H, I)
    Whh : ndarray, shape (H, H)
    bh : ndarray, shape (H, 1)
    Why : ndarray, shape (O, H)
    by : ndarray, shape (O, 1)
    WhhT : ndarray, shape (H, H)
        Workspace, receives ``Whh.T`` (used for B > 1 only).
    WhyT : ndarray, shape (H, O)
        Workspace, receives ``Why.T``.
    hs : ndarray, shape (T+1, B, H)
        Output: ``hs[0] = h0``, ``hs[t+1]`` the state after step t.
    h_new : ndarray, shape (T*B, H)
        ``hs[1:]`` viewed as a matrix (the same memory).
    z : ndarray, shape (T*B, O)
        Output: logits, row ``t*B + b``.
    """
    B, T = x.shape
    H = Whh.shape[0]
    bias = bh[:, 0]
    hs[0] = h0
    if B == 1:
        for t in range(T):
            h = hs[t + 1, 0]
            matvec_add(Whh, hs[t, 0], bias, h)  # (H,)
            col = x[0, t]
            for i in range(H):
                h[i] += Wxh[i, col]
            tanh_(h)
    else:
        transpose_into(Whh, WhhT)
        for t in range(T):
            a = hs[t + 1]  # (B, H)
            np.dot(hs[t], WhhT, a)
            for b in range(B):
                col = x[b, t]
                row = a[b]
                for i in range(H):
                    row[i] += Wxh[i, col] + bias[i]
                tanh_(row)
    transpose_into(Why, WhyT)
    np.dot(h_new, WhyT, z)  # (T*B, O)
    O = z.shape[1]
    for r in range(z.shape[0]):
        for k in range(O):
            z[r, k] += by[k, 0]


@kernel
def softmax_xent(z, y, grad):
    """Softmax cross-entropy over a chunk, in place; returns the loss.

    Parameters
    ----------
    z : ndarray, shape (T*B, O)
        Logits in (row ``t*B + b``).  Out: the softmax probabilities, or with
        ``grad`` the gradient of the returned loss w.r.t. the logits,
        ``(p - onehot(y)) / B``.
    y : ndarray of int64, shape (B, T)
        Target indices.
    grad : bool
        Whether to leave the gradient instead of the probabilities.

    Returns
    -------
    float
        Sum over t of ``-log p[t, y[t]]``, averaged over the B streams.
    """
    B, T = y.shape
    scale = 1.0 / B if grad else 1.0
    total = 0.0
    for t in range(T):
        for b in range(B):
            r = t * B + b
            target = y[b, t]
            target_logit = z[r, target]
            total += softmax_row(z[r], z[r], 1.0, scale) - target_logit
            if grad:
                z[r, target] -= scale
    return total / B


@kernel
def xent_grad(p, y):
    """Turn probabilities into the gradient of the mean loss w.r.t. the logits.

    Parameters
    ----------
    p : ndarray, shape (T*B, O)
        Probabilities in, ``(p - onehot(y)) / B`` out.
    y : ndarray of int64, shape (B, T)
    """
    B, T = y.shape
    scale = 1.0 / B
    for t in range(T):
        for b in range(B):
            r = t * B + b
            p[r, y[b, t]] -= 1.0
            row = p[r]
            for k in range(row.shape[0]):
                row[k] *= scale


@kernel
def backward(x, Whh, Why, hs, h_new, h_prev, dy, dyT, dh, dh3, dhT, dhnext,
             dWxh, dWhh, dWhy, dbh, dby):
    """Backpropagation through time over a chunk.

    Parameters
    ----------
    x : ndarray of int64, shape (B, T)
    Whh : ndarray, shape (H, H)
    Why : ndarray, shape (O, H)
    hs : ndarray, shape (T+1, B, H)
        Hidden states from :func:`forward`.
    h_new, h_prev : ndarray, shape (T*B, H)
        ``hs[1:]`` and ``hs[:-1]`` viewed as matrices.
    dy : ndarray, shape (T*B, O)
        Gradient of the loss w.r.t. the logits (from :func:`xent_grad`).
    dyT : ndarray, shape (O, T*B)
        Workspace.
    dh : ndarray, shape (T*B, H)
        Workspace; holds the gradient w.r.t. the pre-activations on return.
    dh3 : ndarray, shape (T, B, H)
        ``dh`` viewed per step (the same memory).
    dhT : ndarray, shape (H, T*B)
        Workspace.
    dhnext : ndarray, shape (B, H)
        Workspace.
    dWxh, dWhh, dWhy, dbh, dby : ndarray
        Outputs, in the shapes of the parameters; overwritten.
    """
    B, T = x.shape
    H = Whh.shape[0]
    transpose_into(dy, dyT)
    np.dot(dyT, h_new, dWhy)  # (O, H)
    for k in range(dby.shape[0]):
        s = 0.0
        for r in range(dyT.shape[1]):
            s += dyT[k, r]
        dby[k, 0] = s
    np.dot(dy, Why, dh)  # (T*B, H): gradient reaching each h from the output
    for t in range(T - 1, -1, -1):
        d = dh3[t]  # (B, H)
        h = hs[t + 1]
        for b in range(B):
            db = d[b]
            hb = h[b]
            if t < T - 1:
                nb = dhnext[b]
                for i in range(H):
                    db[i] = (db[i] + nb[i]) * (1.0 - hb[i] * hb[i])
            else:
                for i in range(H):
                    db[i] = db[i] * (1.0 - hb[i] * hb[i])
        if t > 0:
            if B == 1:
                matvec_t(Whh, d[0], dhnext[0])
            else:
                np.dot(d, Whh, dhnext)  # (B, H)
    transpose_into(dh, dhT)
    np.dot(dhT, h_prev, dWhh)  # (H, H)
    for i in range(H):
        s = 0.0
        for r in range(dhT.shape[1]):
            s += dhT[i, r]
        dbh[i, 0] = s
    dWxh[:, :] = 0.0
    for t in range(T):
        for b in range(B):
            col = x[b, t]
            row = dh3[t, b]
            for i in range(H):
                dWxh[i, col] += row[i]


@kernel
def softmax_rows(z):
    """Softmax of every row of ``z (N, O)`` in place."""
    for r in range(z.shape[0]):
        softmax_row(z[r], z[r], 1.0, 1.0)


@kernel
def value_and_grad(x, y, h0, Wxh, Whh, bh, Why, by, dWxh, dWhh, dWhy, dbh, dby,
                   WhhT, WhyT, hs, h_new, h_prev, z, dyT, dh, dh3, dhT, dhnext):
    """Forward, loss and BPTT in one call; returns the loss, writes the gradients.

    Arguments are those of :func:`forward` and :func:`backward` (``y (B, T)``
    are the targets); ``z`` holds the logits' gradient on return.
    """
    forward(x, h0, Wxh, Whh, bh, Why, by, WhhT, WhyT, hs, h_new, z)
    loss = softmax_xent(z, y, True)
    backward(x, Whh, Why, hs, h_new, h_prev, z, dyT, dh, dh3, dhT, dhnext,
             dWxh, dWhh, dWhy, dbh, dby)
    return loss


@kernel
def train_step(x, y, h0, Wxh, Whh, bh, Why, by, theta, dWxh, dWhh, dWhy, dbh, dby, grad,
               WhhT, WhyT, hs, h_new, h_prev, z, dyT, dh, dh3, dhT, dhnext,
               learning_rate, clip):
    """:func:`value_and_grad`, then clip and SGD on the flat vectors; returns the loss.

    ``theta`` and ``grad`` are the flat vectors that the parameter and gradient
    arrays are views of; ``clip <= 0`` turns clipping off.
    """
    loss = value_and_grad(x, y, h0, Wxh, Whh, bh, Why, by, dWxh, dWhh, dWhy, dbh, dby,
                          WhhT, WhyT, hs, h_new, h_prev, z, dyT, dh, dh3, dhT, dhnext)
    clip_(grad, clip)
    sgd_(theta, grad, learning_rate)
    return loss
