"""The GRU cell (PyTorch's gate order r, z, n): one step of one stream, forward and back.

With the input side ``p = W_ih x + b_ih`` and the recurrent side
``q = W_hh h + b_hh``, each split in three blocks of H (PyTorch's formulation:
the reset gate multiplies ``q_n``, bias included):

    r = sigmoid(p_r + q_r);  z = sigmoid(p_z + q_z);  n = tanh(p_n + r * q_n)
    h' = (1 - z) * n + z * h

The loops over time and layers around the cell are in :mod:`.gated`.
"""

from fastrnn._jit import kernel
from fastrnn._kernels.activations import sigmoid_, tanh_

__all__ = ["cell", "cell_backward"]


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
def cell_backward(a, dq, qn, h_prev, dh, dhnext, ddirect, H):
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
