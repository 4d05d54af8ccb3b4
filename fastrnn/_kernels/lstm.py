"""The LSTM cell (PyTorch's gate order i, f, g, o): one step of one stream, forward and back.

For pre-activations ``a = W_ih x + b_ih + W_hh h + b_hh`` split in four blocks of H,

    i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);  g = tanh(a_g)
    c' = f * c + i * g;  h' = o * tanh(c')

The loops over time and layers around the cell are in :mod:`.gated`.
"""

from fastrnn._jit import kernel
from fastrnn._kernels.activations import sigmoid_, tanh_, tanh_into

__all__ = ["cell", "cell_backward"]


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
def cell_backward(a, dh, dhnext, dcnext, c_prev, tc, H):
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
