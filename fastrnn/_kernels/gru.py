"""Kernels of the GRU (PyTorch's gate order r, z, n): forward, loss, BPTT, sampling.

Storage and layout are those of :mod:`.gated`.  Per layer, with the input
side ``p = W_ih x + b_ih`` and the recurrent side ``q = W_hh h + b_hh``, each
split in three blocks of H (PyTorch's formulation: the reset gate multiplies
``q_n``, bias included):

    r = sigmoid(p_r + q_r);  z = sigmoid(p_z + q_z);  n = tanh(p_n + r * q_n)
    h' = (1 - z) * n + z * h

``gates (L, T*B, 3H)`` holds p, then the activations (r, z, n), then in the
backward pass the gradient w.r.t. p; ``aux`` holds ``q_n``; ``dq`` the
gradient w.r.t. q of the layer being differentiated.
"""

import numpy as np

from fastrnn._jit import kernel
from fastrnn._kernels.activations import sigmoid_, tanh_
from fastrnn._kernels.gated import (
    column_sums,
    input_projection,
    layer_params,
    layer_states,
    output_params,
    weight_gradients,
    workspace,
)
from fastrnn._kernels.linalg import matvec_add, matvec_add_tall, matvec_t, scatter_columns
from fastrnn._kernels.optimizers import sgd_
from fastrnn._kernels.output import output_backward, output_forward, probabilities_out, xent
from fastrnn._kernels.sampling import next_index

__all__ = ["forward", "backward", "forward_probs", "loss", "value_and_grad", "train_step", "sample"]

G = 3


@kernel
def _cell(a, q, h_prev, h, qn, H):
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
def forward(x, h0, theta, ws, I, H, O, L):
    """Run every layer over the chunk, then the output layer (logits in ``zT``).

    Parameters
    ----------
    x : ndarray of int64, shape (B, T)
    h0 : ndarray, shape (L, B, H)
    theta, ws : ndarray
        Flat parameters and workspace (:mod:`.gated`).
    I, H, O, L : int
    """
    B, T = x.shape
    hs_flat, cs_flat, gates, aux, dq, zT, dh, dhnext, dcnext, tmp, lse, col = \
        workspace(ws, B, T, H, O, L, G)
    empty = ws[:0].reshape((0, H))
    for k in range(L):
        Wih, Whh, bih, bhh = layer_params(theta, k, I, H, O, L, G)
        hs, h_new, h_prev = layer_states(hs_flat, k, B, T, H)
        g = gates[k]  # (N, 3H)
        qn = aux[k]  # (N, H)
        hs[0] = h0[k]
        if k == 0:
            input_projection(x, empty, Wih, bih, bih, False, g)
        else:
            below = layer_states(hs_flat, k - 1, B, T, H)[1]
            input_projection(x, below, Wih, bih, bih, False, g)
        if B == 1:
            q = tmp[0]
            for t in range(T):
                matvec_add_tall(Whh, hs[t, 0], bhh, q, t % 2 == 1)  # (3H,)
                _cell(g[t], q, hs[t, 0], hs[t + 1, 0], qn[t], H)
        else:
            for t in range(T):
                np.dot(hs[t], Whh.T, tmp)  # (B, 3H)
                for b in range(B):
                    n = t * B + b
                    q = tmp[b]
                    for i in range(3 * H):
                        q[i] += bhh[i]
                    _cell(g[n], q, hs[t, b], hs[t + 1, b], qn[n], H)
    Why, by = output_params(theta, I, H, O, L, G)
    output_forward(Why, by, layer_states(hs_flat, L - 1, B, T, H)[1], zT, None)


@kernel
def backward(x, theta, grad, ws, I, H, O, L):
    """BPTT through the output layer and every layer; fills ``grad`` (overwritten)."""
    B, T = x.shape
    hs_flat, cs_flat, gates, aux, dq, zT, dh, dhnext, dcnext, tmp, lse, col = \
        workspace(ws, B, T, H, O, L, G)
    Why, by = output_params(theta, I, H, O, L, G)
    dWhy, dby = output_params(grad, I, H, O, L, G)
    output_backward(Why, layer_states(hs_flat, L - 1, B, T, H)[1], zT, dWhy, dby, dh, None)
    dq3 = dq.reshape((T, B, 3 * H))
    for k in range(L - 1, -1, -1):
        Wih, Whh, bih, bhh = layer_params(theta, k, I, H, O, L, G)
        dWih, dWhh, dbih, dbhh = layer_params(grad, k, I, H, O, L, G)
        hs, h_new, h_prev = layer_states(hs_flat, k, B, T, H)
        g = gates[k]
        qn = aux[k]
        dhnext[:, :] = 0.0
        for t in range(T - 1, -1, -1):
            for b in range(B):
                n = t * B + b
                _cell_backward(g[n], dq[n], qn[n], hs[t, b], dh[n], dhnext[b], dcnext[b], H)
            if t > 0:
                if B == 1:
                    matvec_t(Whh, dq[t], dhnext[0], t % 2 == 0)
                else:
                    np.dot(dq3[t], Whh, dhnext)  # (B, H)
                for b in range(B):
                    nb = dhnext[b]
                    direct = dcnext[b]
                    for i in range(H):
                        nb[i] += direct[i]
        weight_gradients(dq, h_prev, dWhh)
        column_sums(dq, dbhh)
        column_sums(g, dbih)
        if k == 0:
            scatter_columns(x, g, dWih)
        else:
            weight_gradients(g, layer_states(hs_flat, k - 1, B, T, H)[1], dWih)
            np.dot(g, Wih, dh)  # (N, 3H) x (3H, H): gradient reaching layer k-1


@kernel(inline="always")
def _xent_views(ws, B, T, H, O, L):
    hs_flat, cs_flat, gates, aux, dq, zT, dh, dhnext, dcnext, tmp, lse, col = \
        workspace(ws, B, T, H, O, L, G)
    return zT, lse, col


@kernel
def _final_states(ws, B, T, H, O, L, h_last):
    hs_flat = workspace(ws, B, T, H, O, L, G)[0]
    for k in range(L):
        h_last[k] = layer_states(hs_flat, k, B, T, H)[0][T]


@kernel
def loss(x, y, h0, theta, ws, I, H, O, L, h_last):
    """The loss of a chunk (sum over time, mean over streams); writes ``h_last (L, B, H)``."""
    B, T = x.shape
    forward(x, h0, theta, ws, I, H, O, L)
    _final_states(ws, B, T, H, O, L, h_last)
    zT, lse, col = _xent_views(ws, B, T, H, O, L)
    return xent(zT, y, False, lse, col)


@kernel
def value_and_grad(x, y, h0, theta, grad, ws, I, H, O, L, h_last):
    """Forward, loss and BPTT; returns the loss, fills ``grad``, writes ``h_last``."""
    B, T = x.shape
    forward(x, h0, theta, ws, I, H, O, L)
    zT, lse, col = _xent_views(ws, B, T, H, O, L)
    value = xent(zT, y, True, lse, col)
    backward(x, theta, grad, ws, I, H, O, L)
    _final_states(ws, B, T, H, O, L, h_last)
    return value


@kernel
def train_step(x, y, h0, theta, grad, ws, I, H, O, L, h_last, learning_rate, clip):
    """:func:`value_and_grad`, then element-wise clipping (``clip <= 0``: none) and SGD."""
    value = value_and_grad(x, y, h0, theta, grad, ws, I, H, O, L, h_last)
    sgd_(theta, grad, learning_rate, clip)
    return value


@kernel
def sample(start, h, theta, I, H, O, L, temperature, seed, out, a, q, qn, z, w):
    """Feed ``start``, then sample ``out.shape[0]`` indices, each fed back in.

    ``h (L, H)`` is the initial state, modified in place; ``a, q (3H,)``,
    ``qn (H,)``, ``z, w (O,)`` are workspace.  Draws as :func:`.sampling.sample_rnn`.
    """
    np.random.seed(seed)  # noqa: NPY002  numba's generator, as in sampling.py
    inv_temperature = 1.0 / temperature if temperature > 0.0 else np.inf
    greedy = inv_temperature == np.inf
    Why, by = output_params(theta, I, H, O, L, G)
    bias_y = by[:, 0]
    ix = start
    for n in range(out.shape[0]):
        for k in range(L):
            Wih, Whh, bih, bhh = layer_params(theta, k, I, H, O, L, G)
            if k == 0:
                for i in range(3 * H):
                    a[i] = Wih[i, ix] + bih[i]
            else:
                matvec_add(Wih, h[k - 1], bih, a, False)
            matvec_add_tall(Whh, h[k], bhh, q, n % 2 == 1)
            _cell(a, q, h[k], h[k], qn, H)
        matvec_add(Why, h[L - 1], bias_y, z, False)
        ix = next_index(z, w, greedy, inv_temperature)
        out[n] = ix


@kernel
def forward_probs(x, h0, theta, ws, I, H, O, L, hs_out, ps_out):
    """Forward pass and softmax.

    Writes the top layer's states ``hs_out (B, T+1, H)`` and the
    probabilities ``ps_out (B, T, O)``.
    """
    B, T = x.shape
    forward(x, h0, theta, ws, I, H, O, L)
    hs_flat, cs_flat, gates, aux, dq, zT, dh, dhnext, dcnext, tmp, lse, col = \
        workspace(ws, B, T, H, O, L, G)
    probabilities_out(layer_states(hs_flat, L - 1, B, T, H)[0], zT, lse, col, hs_out, ps_out)
