"""Sampling: the autoregressive loop of every model, one kernel call, no Python per step.

Models are described as in :mod:`.chunks` (sizes ``I, H, O, L, G``, G = 1 for
the tanh RNN, 3 for the GRU, 4 for the LSTM).
"""

import numpy as np

from fastrnn._jit import kernel
from fastrnn._kernels import gated, gru, lstm, rnn
from fastrnn._kernels.activations import softmax_weights, tanh_into
from fastrnn._kernels.linalg import matvec_add, matvec_add_tall
from fastrnn._kernels.storage import padded, take

__all__ = ["scratch_size", "sample", "next_index", "draw", "argmax"]


@kernel
def draw(weights, total, u):
    """Inverse-CDF draw: the first index whose cumulative weight exceeds ``u * total``."""
    threshold = u * total
    acc = 0.0
    last = weights.shape[0] - 1
    for k in range(last):
        acc += weights[k]
        if acc > threshold:
            return k
    return last


@kernel
def argmax(v):
    best = 0
    for k in range(1, v.shape[0]):
        if v[k] > v[best]:
            best = k
    return best


@kernel
def next_index(z, w, greedy, inv_temperature):
    """The next index from the logits ``z (O,)``: the argmax, or a draw.

    ``w (O,)`` is workspace for the softmax weights; the draw uses numba's
    generator as seeded by the calling sampler.
    """
    if greedy:
        return argmax(z)
    total = softmax_weights(z, w, inv_temperature)
    return draw(w, total, np.random.random())  # noqa: NPY002


@kernel
def scratch_size(H, O, G):
    """Length of the flat scratch vector :func:`sample` needs."""
    return 2 * padded(G * H) + padded(H) + 2 * padded(O)


@kernel
def sample(start, state, theta, I, H, O, L, G, temperature, seed, out, scratch):
    """Feed ``start``, then sample ``out.shape[0]`` indices, each fed back in.

    Parameters
    ----------
    start : int
        The first input index.
    state : ndarray, shape (S, L, H)
        The initial state of one stream (h, and c for the LSTM); modified in
        place (the final state on return).
    theta : ndarray
        The flat parameter vector.
    I, H, O, L, G : int
        The model's sizes.
    temperature : float
        Softmax temperature; 0 (or one so small that 1/temperature overflows)
        picks the most likely index (greedy).
    seed : int
        Seeds numba's generator, so the same seed gives the same draws in every
        process (the stream equals ``numpy.random.RandomState(seed)``'s).
    out : ndarray of int64, shape (n,)
        Output: the sampled indices.
    scratch : ndarray, shape (scratch_size(H, O, G),)
        Workspace, 64-byte aligned.
    """
    # Numba's own generator, seeded here, is a Mersenne Twister with NumPy's
    # legacy API (the only one numba offers inside njit): the same seed gives
    # the same stream in every process, equal to numpy.random.RandomState(seed).
    np.random.seed(seed)  # noqa: NPY002
    a, o = take(scratch, 0, G * H)  # pre-activations
    q, o = take(scratch, o, G * H)  # GRU: the recurrent side
    aux, o = take(scratch, o, H)  # LSTM: tanh(c); GRU: q_n
    z, o = take(scratch, o, O)  # logits
    w = take(scratch, o, O)[0]  # their softmax weights (apart from z, so the loop vectorises)
    if G == 1:
        Why, by = rnn.output_params(theta, I, H, O)
    else:
        Why, by = gated.output_params(theta, I, H, O, L, G)
    bias_y = by[:, 0]
    # 1 / temperature overflows for subnormal temperatures: their limit, greedy.
    inv_temperature = 1.0 / temperature if temperature > 0.0 else np.inf
    greedy = inv_temperature == np.inf
    ix = start
    for n in range(out.shape[0]):
        reverse = n % 2 == 1
        if G == 1:
            Wxh, Whh, _, bh, _ = rnn.params(theta, I, H, O)
            h = state[0, 0]
            matvec_add(Whh, h, bh[:, 0], a, reverse)
            for i in range(H):
                a[i] += Wxh[i, ix]
            tanh_into(a, h)
        else:
            for k in range(L):
                _gated_step(ix, state, k, theta, I, H, O, L, G, a, q, aux, reverse)
        matvec_add(Why, state[0, L - 1], bias_y, z, False)
        ix = next_index(z, w, greedy, inv_temperature)
        out[n] = ix


@kernel(inline="always")
def _gated_step(ix, state, k, theta, I, H, O, L, G, a, q, aux, reverse):
    """Layer k of a gated model, one step: ``state[:, k]`` updated in place."""
    Wih, Whh, bih, bhh = gated.layer_params(theta, k, I, H, O, L, G)
    h = state[0, k]
    if k == 0:
        for i in range(G * H):
            a[i] = Wih[i, ix] + (bih[i] + bhh[i] if G == 4 else bih[i])
    else:
        matvec_add(Wih, state[0, k - 1], bih, a, False)
        if G == 4:
            for i in range(G * H):
                a[i] += bhh[i]
    if G == 4:
        matvec_add_tall(Whh, h, a, a, reverse)
        lstm.cell(a, state[1, k], state[1, k], h, aux, H)
    else:
        matvec_add_tall(Whh, h, bhh, q, reverse)
        gru.cell(a, q, h, h, aux, H)
