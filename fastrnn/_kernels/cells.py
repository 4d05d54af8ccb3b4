"""The cells of the gated models: one step of one stream, forward and back, in place.

The LSTM (PyTorch's gate order i, f, g, o), for pre-activations
``a = W_ih x + b_ih + W_hh h + b_hh`` split in four blocks of H::

    i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);  g = tanh(a_g)
    c' = f * c + i * g;  h' = o * tanh(c')

The GRU (PyTorch's gate order r, z, n and formulation: the reset gate
multiplies ``q_n``, bias included), with the input side ``p = W_ih x + b_ih``
and the recurrent side ``q = W_hh h + b_hh``, each split in three blocks of H::

    r = sigmoid(p_r + q_r);  z = sigmoid(p_z + q_z);  n = tanh(p_n + r * q_n)
    h' = (1 - z) * n + z * h

The loops over time and layers around the cells are in :mod:`.gated`.
"""

from fastrnn._kernels.activations import sigmoid_, tanh_, tanh_into
from fastrnn._kernels.jit import kernel

__all__ = ["lstm_cell", "lstm_cell_backward", "gru_cell", "gru_cell_backward"]


@kernel
def lstm_cell(a, c_prev, c, h, tc, H):
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
def lstm_cell_backward(a, dh, dhnext, dcnext, c_prev, tc, H):
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
def gru_cell(a, q, h_prev, h, qn, H):
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
def gru_cell_backward(a, dq, qn, h_prev, dh, dhnext, ddirect, H):
    """Backward through one step of one stream, in place.

    Activations ``a (3H,)`` in, the gradient w.r.t. p out; ``dq (3H,)``
    receives the gradient w.r.t. q, ``ddirect (H,)`` the part of the gradient
    w.r.t. ``h_prev`` that does not pass through ``W_hh``.
    """
    for i in range(H):
        dhi = dh[i] + dhnext[i]
        z = a[H + i]  # the gates in the order the gradients use them
        nn = a[2 * H + i]
        r = a[i]
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
