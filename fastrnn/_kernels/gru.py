"""The GRU cell (PyTorch's gate order r, z, n): one layer's recurrence, forward and back.

With the input side ``p = W_ih x + b_ih`` and the recurrent side
``q = W_hh h + b_hh``, each split in three blocks of H (PyTorch's formulation:
the reset gate multiplies ``q_n``, bias included):

    r = sigmoid(p_r + q_r);  z = sigmoid(p_z + q_z);  n = tanh(p_n + r * q_n)
    h' = (1 - z) * n + z * h

The stack of layers around these loops is in :mod:`.gated`.  ``g (T*B, 3H)``
holds p, then the activations (r, z, n), then in the backward pass the
gradient w.r.t. p; ``qn (T*B, H)`` holds ``q_n``; ``dq`` the gradient w.r.t. q.
"""

import numpy as np

from fastrnn._jit import kernel
from fastrnn._kernels.activations import sigmoid_, tanh_
from fastrnn._kernels.linalg import matvec_add_tall, matvec_t

__all__ = ["cell", "layer_forward", "layer_backward"]


@kernel
def cell(a, q, h_prev, h, qn, H):
    """One step of one stream, in place.

    ``a (3H,)`` holds p in, the activations (r, z, n) out; ``q (3H,)`` is the
    recurrent side; writes ``h`` and ``qn = q_n`` (each (H,)).

    ``h`` may be ``h_prev`` (each element is read before it is written).
    """
    for i in range(2 * H):
        a[i] += q[i]
    sigmoid_(a[:2 * H])
    for i in range(H):
        qn[i] = q[2 * H + i]
        a[2 * H + i] += a[i] * q[2 * H + i]
    tanh_(a[2 * H:])
    for i in range(H):
        z = a[H + i]
        h[i] = (1.0 - z) * a[2 * H + i] + z * h_prev[i]


@kernel
def _cell_backward(a, dq, qn, h_prev, dh, dhnext, ddirect, H):
    """Backward through one step of one stream, in place.

    Activations ``a (3H,)`` in, the gradient w.r.t. p out; ``dq (3H,)``
    receives the gradient w.r.t. q, ``ddirect (H,)`` the part of the gradient
    w.r.t. ``h_prev`` that does not pass through ``W_hh``.
    """
    for i in range(H):
        dhi = dh[i] + dhnext[i]
        r = a[i]
        z = a[H + i]
        nn = a[2 * H + i]
        dan = dhi * (1.0 - z) * (1.0 - nn * nn)
        daz = dhi * (h_prev[i] - nn) * z * (1.0 - z)
        dar = dan * qn[i] * r * (1.0 - r)
        a[i] = dar
        a[H + i] = daz
        a[2 * H + i] = dan
        dq[i] = dar
        dq[H + i] = daz
        dq[2 * H + i] = dan * r
        ddirect[i] = dhi * z


@kernel
def layer_forward(g, hs, qn, Whh, bhh, tmp):
    """One layer's recurrence over a chunk.

    Parameters
    ----------
    g : ndarray, shape (T*B, 3H)
        The input side p in, the activations (r, z, n) out.
    hs : ndarray, shape (T+1, B, H)
        ``hs[0]`` holds the initial state; the rest is written.
    qn : ndarray, shape (T*B, H)
        Output: ``q_n``.
    Whh : ndarray, shape (3H, H)
    bhh : ndarray, shape (3H,)
    tmp : ndarray, shape (B, 3H)
        Workspace: the recurrent side of a step.
    """
    T = hs.shape[0] - 1
    B, H = hs.shape[1], hs.shape[2]
    if B == 1:
        q = tmp[0]
        for t in range(T):
            matvec_add_tall(Whh, hs[t, 0], bhh, q, t % 2 == 1)  # (3H,)
            cell(g[t], q, hs[t, 0], hs[t + 1, 0], qn[t], H)
    else:
        for t in range(T):
            np.dot(hs[t], Whh.T, tmp)  # (B, 3H)
            for b in range(B):
                n = t * B + b
                q = tmp[b]
                for i in range(3 * H):
                    q[i] += bhh[i]
                cell(g[n], q, hs[t, b], hs[t + 1, b], qn[n], H)


@kernel
def layer_backward(g, dq, qn, hs, dh, dhnext, ddirect, Whh):
    """Backpropagate through one layer's recurrence.

    Parameters
    ----------
    g : ndarray, shape (T*B, 3H)
        Activations in, gradients w.r.t. p out.
    dq : ndarray, shape (T*B, 3H)
        Output: the gradients w.r.t. q.
    qn : ndarray, shape (T*B, H)
        ``q_n`` of the forward pass.
    hs : ndarray, shape (T+1, B, H)
        The states of the forward pass.
    dh : ndarray, shape (T*B, H)
        The gradient reaching each h from above.
    dhnext, ddirect : ndarray, shape (B, H)
        Workspace.
    Whh : ndarray, shape (3H, H)
    """
    T = hs.shape[0] - 1
    B, H = hs.shape[1], hs.shape[2]
    dq3 = dq.reshape((T, B, 3 * H))
    dhnext[:, :] = 0.0
    for t in range(T - 1, -1, -1):
        for b in range(B):
            n = t * B + b
            _cell_backward(g[n], dq[n], qn[n], hs[t, b], dh[n], dhnext[b], ddirect[b], H)
        if t > 0:
            if B == 1:
                matvec_t(Whh, dq[t], dhnext[0], t % 2 == 0)
            else:
                np.dot(dq3[t], Whh, dhnext)  # (B, H)
            for b in range(B):
                nb = dhnext[b]
                direct = ddirect[b]
                for i in range(H):
                    nb[i] += direct[i]
