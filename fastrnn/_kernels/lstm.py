"""Kernels of the LSTM (PyTorch's gate order i, f, g, o): forward, loss, BPTT, sampling.

Storage and layout are those of :mod:`.gated` (one flat ``theta``, one flat
workspace ``ws``, time-major chunks, non-sequential work as one GEMM per
chunk).  Per layer the recurrence is, for pre-activations
``a = W_ih x + b_ih + W_hh h + b_hh`` split in four blocks of H,

    i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);  g = tanh(a_g)
    c' = f * c + i * g;  h' = o * tanh(c')

Only the recurrent product is a loop over time: a hand-written matrix-vector
product per step for one stream (:mod:`.linalg`), a (B, H) x (H, 4H) GEMM per
step for a batch.  The gate activations, overwritten by their gradients in the
backward pass, live in ``gates (L, T*B, 4H)``; ``tanh(c)`` in ``aux``.
"""

import numpy as np

from fastrnn._jit import kernel
from fastrnn._kernels.activations import sigmoid_, tanh_, tanh_into
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

G = 4


@kernel
def _cell(a, c_prev, c, h, tc, H):
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
def forward(x, h0, c0, theta, ws, I, H, O, L):
    """Run every layer over the chunk, then the output layer (logits in ``zT``).

    Parameters
    ----------
    x : ndarray of int64, shape (B, T)
    h0, c0 : ndarray, shape (L, B, H)
        Initial states.
    theta : ndarray
        Flat parameters (:func:`.gated.layer_params`).
    ws : ndarray
        Flat workspace (:func:`.gated.workspace`), filled with the states.
    I, H, O, L : int
    """
    B, T = x.shape
    hs_flat, cs_flat, gates, aux, dq, zT, dh, dhnext, dcnext, tmp, lse, col = \
        workspace(ws, B, T, H, O, L, G)
    empty = ws[:0].reshape((0, H))
    for k in range(L):
        Wih, Whh, bih, bhh = layer_params(theta, k, I, H, O, L, G)
        hs, h_new, h_prev = layer_states(hs_flat, k, B, T, H)
        cs, c_new, c_prev = layer_states(cs_flat, k, B, T, H)
        g = gates[k]  # (N, 4H)
        tc = aux[k]  # (N, H)
        hs[0] = h0[k]
        cs[0] = c0[k]
        if k == 0:
            input_projection(x, empty, Wih, bih, bhh, True, g)
        else:
            below = layer_states(hs_flat, k - 1, B, T, H)[1]
            input_projection(x, below, Wih, bih, bhh, True, g)
        if B == 1:
            for t in range(T):
                a = g[t]
                matvec_add_tall(Whh, hs[t, 0], a, a, t % 2 == 1)  # (4H,)
                _cell(a, cs[t, 0], cs[t + 1, 0], hs[t + 1, 0], tc[t], H)
        else:
            for t in range(T):
                np.dot(hs[t], Whh.T, tmp)  # (B, 4H)
                for b in range(B):
                    n = t * B + b
                    a = g[n]
                    r = tmp[b]
                    for i in range(4 * H):
                        a[i] += r[i]
                    _cell(a, cs[t, b], cs[t + 1, b], hs[t + 1, b], tc[n], H)
    Why, by = output_params(theta, I, H, O, L, G)
    output_forward(Why, by, layer_states(hs_flat, L - 1, B, T, H)[1], zT, None)


@kernel
def backward(x, theta, grad, ws, I, H, O, L):
    """BPTT through the output layer and every layer; fills ``grad`` (overwritten).

    Needs the states of :func:`forward` and the logits' gradient (from
    :func:`.output.xent`) in ``ws``.
    """
    B, T = x.shape
    hs_flat, cs_flat, gates, aux, dq, zT, dh, dhnext, dcnext, tmp, lse, col = \
        workspace(ws, B, T, H, O, L, G)
    Why, by = output_params(theta, I, H, O, L, G)
    dWhy, dby = output_params(grad, I, H, O, L, G)
    output_backward(Why, layer_states(hs_flat, L - 1, B, T, H)[1], zT, dWhy, dby, dh, None)
    for k in range(L - 1, -1, -1):
        Wih, Whh, bih, bhh = layer_params(theta, k, I, H, O, L, G)
        dWih, dWhh, dbih, dbhh = layer_params(grad, k, I, H, O, L, G)
        hs, h_new, h_prev = layer_states(hs_flat, k, B, T, H)
        cs, c_new, c_prev = layer_states(cs_flat, k, B, T, H)
        g = gates[k]
        g3 = g.reshape((T, B, 4 * H))
        tc = aux[k]
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
        weight_gradients(g, h_prev, dWhh)
        column_sums(g, dbih)
        dbhh[:] = dbih
        if k == 0:
            scatter_columns(x, g, dWih)
        else:
            weight_gradients(g, layer_states(hs_flat, k - 1, B, T, H)[1], dWih)
            np.dot(g, Wih, dh)  # (N, 4H) x (4H, H): gradient reaching layer k-1


@kernel
def _final_states(ws, B, T, H, O, L, h_last, c_last):
    hs_flat, cs_flat, gates, aux, dq, zT, dh, dhnext, dcnext, tmp, lse, col = \
        workspace(ws, B, T, H, O, L, G)
    for k in range(L):
        h_last[k] = layer_states(hs_flat, k, B, T, H)[0][T]
        c_last[k] = layer_states(cs_flat, k, B, T, H)[0][T]


@kernel
def loss(x, y, h0, c0, theta, ws, I, H, O, L, h_last, c_last):
    """The loss of a chunk (sum over time, mean over streams).

    Writes the final states ``h_last, c_last (L, B, H)``.
    """
    B, T = x.shape
    forward(x, h0, c0, theta, ws, I, H, O, L)
    _final_states(ws, B, T, H, O, L, h_last, c_last)
    zT, lse, col = _xent_views(ws, B, T, H, O, L)
    return xent(zT, y, False, lse, col)


@kernel(inline="always")
def _xent_views(ws, B, T, H, O, L):
    hs_flat, cs_flat, gates, aux, dq, zT, dh, dhnext, dcnext, tmp, lse, col = \
        workspace(ws, B, T, H, O, L, G)
    return zT, lse, col


@kernel
def value_and_grad(x, y, h0, c0, theta, grad, ws, I, H, O, L, h_last, c_last):
    """Forward, loss and BPTT; returns the loss, fills ``grad``, writes the final states."""
    B, T = x.shape
    forward(x, h0, c0, theta, ws, I, H, O, L)
    zT, lse, col = _xent_views(ws, B, T, H, O, L)
    value = xent(zT, y, True, lse, col)
    backward(x, theta, grad, ws, I, H, O, L)
    _final_states(ws, B, T, H, O, L, h_last, c_last)
    return value


@kernel
def train_step(x, y, h0, c0, theta, grad, ws, I, H, O, L, h_last, c_last, learning_rate, clip):
    """:func:`value_and_grad`, then element-wise clipping (``clip <= 0``: none) and SGD."""
    value = value_and_grad(x, y, h0, c0, theta, grad, ws, I, H, O, L, h_last, c_last)
    sgd_(theta, grad, learning_rate, clip)
    return value


@kernel
def sample(start, h, c, theta, I, H, O, L, temperature, seed, out, a, tc, z, w):
    """Feed ``start``, then sample ``out.shape[0]`` indices, each fed back in.

    ``h, c (L, H)`` are the initial states, modified in place; ``a (4H,)``,
    ``tc (H,)``, ``z, w (O,)`` are workspace.  Draws as :func:`.sampling.sample_rnn`.
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
                for i in range(4 * H):
                    a[i] = Wih[i, ix] + (bih[i] + bhh[i])
            else:
                matvec_add(Wih, h[k - 1], bih, a, False)
                for i in range(4 * H):
                    a[i] += bhh[i]
            matvec_add_tall(Whh, h[k], a, a, n % 2 == 1)
            _cell(a, c[k], c[k], h[k], tc, H)
        matvec_add(Why, h[L - 1], bias_y, z, False)
        ix = next_index(z, w, greedy, inv_temperature)
        out[n] = ix


@kernel
def forward_probs(x, h0, c0, theta, ws, I, H, O, L, hs_out, ps_out):
    """Forward pass and softmax.

    Writes the top layer's states ``hs_out (B, T+1, H)`` and the
    probabilities ``ps_out (B, T, O)``.
    """
    B, T = x.shape
    forward(x, h0, c0, theta, ws, I, H, O, L)
    hs_flat, cs_flat, gates, aux, dq, zT, dh, dhnext, dcnext, tmp, lse, col = \
        workspace(ws, B, T, H, O, L, G)
    probabilities_out(layer_states(hs_flat, L - 1, B, T, H)[0], zT, lse, col, hs_out, ps_out)
