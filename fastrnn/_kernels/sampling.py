"""The autoregressive sampling loop of the tanh RNN: one kernel, no Python per step."""

import numpy as np

from fastrnn._jit import kernel
from fastrnn._kernels.activations import softmax_weights, tanh_into
from fastrnn._kernels.linalg import matvec_add

__all__ = ["sample_rnn", "next_index", "draw", "argmax"]


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
def sample_rnn(start, h, Wxh, Whh, bh, Why, by, temperature, seed, out, a, z, w):
    """Feed ``start``, then sample ``out.shape[0]`` indices, each fed back in.

    Parameters
    ----------
    start : int
        The first input index.
    h : ndarray, shape (H,)
        Initial hidden state; modified in place (the final state on return).
    Wxh, Whh, bh, Why, by : ndarray
        The parameters, in their model shapes.
    temperature : float
        Softmax temperature; 0 (or one so small that 1/temperature overflows)
        picks the most likely index (greedy).
    seed : int
        Seeds numba's generator, so the same seed gives the same draws in every
        process (the stream equals ``numpy.random.RandomState(seed)``'s).
    out : ndarray of int64, shape (n,)
        Output: the sampled indices.
    a : ndarray, shape (H,)
        Workspace.
    z, w : ndarray, shape (O,)
        Workspace (logits and unnormalised probabilities; distinct arrays, so
        the exponential loop vectorises).
    """
    # Numba's own generator, seeded here, is a Mersenne Twister with NumPy's
    # legacy API (the only one numba offers inside njit): the same seed gives
    # the same stream in every process, equal to numpy.random.RandomState(seed).
    np.random.seed(seed)  # noqa: NPY002
    H = Whh.shape[0]
    bias_h = bh[:, 0]
    bias_y = by[:, 0]
    # 1 / temperature overflows for subnormal temperatures: their limit, greedy.
    inv_temperature = 1.0 / temperature if temperature > 0.0 else np.inf
    greedy = inv_temperature == np.inf
    ix = start
    for n in range(out.shape[0]):
        matvec_add(Whh, h, bias_h, a, n % 2 == 1)
        for i in range(H):
            a[i] += Wxh[i, ix]
        tanh_into(a, h)
        matvec_add(Why, h, bias_y, z, False)
        ix = next_index(z, w, greedy, inv_temperature)
        out[n] = ix
