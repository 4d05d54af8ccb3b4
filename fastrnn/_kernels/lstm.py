"""The LSTM cell (PyTorch's gate order i, f, g, o): one layer's recurrence, forward and back.

For pre-activations ``a = W_ih x + b_ih + W_hh h + b_hh`` split in four blocks of H,

    i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);  g = tanh(a_g)
    c' = f * c + i * g;  h' = o * tanh(c')

Only the recurrent product is a loop over time: a hand-written matrix-vector
product per step for one stream (:mod:`.linalg`), a (B, H) x (H, 4H) GEMM per
step for a batch.  The stack of layers, the input projections and the weight
gradients around these loops are in :mod:`.gated`.  The gate activations,
overwritten by their gradients in the backward pass, live in ``g (T*B, 4H)``;
``tanh(c)`` in ``tc (T*B, H)``.
"""

import numpy as np

from fastrnn._jit import kernel
from fastrnn._kernels.activations import sigmoid_, tanh_, tanh_into
from fastrnn._kernels.linalg import matvec_add_tall, matvec_t

__all__ = ["cell", "layer_forward", "layer_backward"]


@kernel
def cell(a, c_prev, c, h, tc, H):
    """One step of one stream, in place.

    Pre-activations ``a (4H,)`` in, activations out; writes ``c``, ``h`` and
    ``tc = tanh(c)`` (each (H,)).  ``c`` may be ``c_prev``.
    """
    sigmoid_(a[:2 * H])
    tanh_(a[2 * H:3 * H])
    sigmoid_(a[3 * H:])
    for i in range(H):
        c[i] = a[H + i] * c_prev[i] + a[i] * a[2 * H + i]
    tanh_into(c, tc)
    for i in range(H):
        h[i] = a[3 * H + i] * tc[i]


@kernel
def _cell_backward(a, dh, dhnext, dcnext, c_prev, tc, H):
    """Gate activations ``a (4H,)`` in, gradients of the pre-activations out (in place).

    ``dh`` is the gradient reaching h from above, ``dhnext``/``dcnext`` those
    from the next step; ``dcnext`` is replaced by the gradient w.r.t. ``c_prev``.
    """
    for i in range(H):
        dhi = dh[i] + dhnext[i]
        ii = a[i]
        ff = a[H + i]
        gg = a[2 * H + i]
        oo = a[3 * H + i]
        th = tc[i]
        dc = dhi * oo * (1.0 - th * th) + dcnext[i]
        a[i] = dc * gg * ii * (1.0 - ii)
        a[H + i] = dc * c_prev[i] * ff * (1.0 - ff)
        a[2 * H + i] = dc * ii * (1.0 - gg * gg)
        a[3 * H + i] = dhi * th * oo * (1.0 - oo)
        dcnext[i] = dc * ff


@kernel
def layer_forward(g, hs, cs, tc, Whh, tmp):
    """One layer's recurrence over a chunk.

    Parameters
    ----------
    g : ndarray, shape (T*B, 4H)
        The input side ``W_ih x + b_ih + b_hh`` in, the gate activations out.
    hs, cs : ndarray, shape (T+1, B, H)
        ``hs[0]``, ``cs[0]`` hold the initial state; the rest is written.
    tc : ndarray, shape (T*B, H)
        Output: ``tanh(c)``.
    Whh : ndarray, shape (4H, H)
    tmp : ndarray, shape (B, 4H)
        Workspace (B > 1).
    """
    T = hs.shape[0] - 1
    B, H = hs.shape[1], hs.shape[2]
    if B == 1:
        for t in range(T):
            a = g[t]
            matvec_add_tall(Whh, hs[t, 0], a, a, t % 2 == 1)  # (4H,)
            cell(a, cs[t, 0], cs[t + 1, 0], hs[t + 1, 0], tc[t], H)
    else:
        for t in range(T):
            np.dot(hs[t], Whh.T, tmp)  # (B, 4H)
            for b in range(B):
                n = t * B + b
                a = g[n]
                r = tmp[b]
                for i in range(4 * H):
                    a[i] += r[i]
                cell(a, cs[t, b], cs[t + 1, b], hs[t + 1, b], tc[n], H)


@kernel
def layer_backward(g, dh, dhnext, dcnext, cs, tc, Whh):
    """Backpropagate through one layer's recurrence.

    Parameters
    ----------
    g : ndarray, shape (T*B, 4H)
        Gate activations in, gradients w.r.t. the pre-activations out.
    dh : ndarray, shape (T*B, H)
        The gradient reaching each h from above.
    dhnext, dcnext : ndarray, shape (B, H)
        Workspace (zeroed here).
    cs : ndarray, shape (T+1, B, H)
        The cell states of the forward pass.
    tc : ndarray, shape (T*B, H)
        ``tanh(c)`` of the forward pass.
    Whh : ndarray, shape (4H, H)
    """
    T = cs.shape[0] - 1
    B, H = cs.shape[1], cs.shape[2]
    g3 = g.reshape((T, B, 4 * H))
    dhnext[:, :] = 0.0
    dcnext[:, :] = 0.0
    for t in range(T - 1, -1, -1):
        for b in range(B):
            n = t * B + b
            _cell_backward(g[n], dh[n], dhnext[b], dcnext[b], cs[t, b], tc[n], H)
        if t > 0:
            if B == 1:
                matvec_t(Whh, g[t], dhnext[0], t % 2 == 0)
            else:
                np.dot(g3[t], Whh, dhnext)  # (B, H)
