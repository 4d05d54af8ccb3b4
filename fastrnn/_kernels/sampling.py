"""Sampling: the autoregressive loop of every model, one kernel call, no Python per step.

Models are described as in :mod:`.chunks` (sizes ``I, H, O, L, G``, G = 1 for
the tanh RNN, 3 for the GRU, 4 for the LSTM).  As there, the sampler is made
per kind of model (:func:`sampler`), so that each compiles only its own loop,
and the top-k / top-p draw only when it is asked for.

Each step draws from the softmax of the logits, optionally restricted first to
the ``top_k`` most probable indices, then to the smallest set of the most
probable whose probability reaches ``top_p`` (nucleus sampling).  Indices are
ranked by logit, ties by the lower index; the draw is an inverse-CDF draw over
the kept indices in that rank order, with their weights renormalised.
"""

import functools

import numpy as np

from fastrnn._kernels import gated, rnn
from fastrnn._kernels.activations import softmax_weights, tanh_
from fastrnn._kernels.cells import gru_cell, lstm_cell
from fastrnn._kernels.chunks import MODEL_NAMES
from fastrnn._kernels.jit import kernel, kernel_named, sizes
from fastrnn._kernels.linalg import copy_into, matvec_add, matvec_add_tall
from fastrnn._kernels.storage import block, total_size

__all__ = ["scratch_size", "sampler", "next_index", "draw", "argmax", "draw_filtered"]


@kernel(inline="always")
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


@kernel(inline="always")
def argmax(v):
    best = 0
    for k in range(1, v.shape[0]):
        if v[k] > v[best]:
            best = k
    return best


@kernel
def draw_filtered(z, w, total, top_k, top_p, u, rank, taken):
    """A draw restricted to the ``top_k`` most probable indices, then to the ``top_p`` nucleus.

    Parameters
    ----------
    z : ndarray, shape (O,)
        The logits: they rank the indices (ties: the lower index first).
    w : ndarray, shape (O,)
        Their softmax weights, summing to ``total``.
    top_k : int
        Keep the ``top_k`` most probable indices; 0 keeps every index.
    top_p : float
        In (0, 1]: then keep the smallest prefix of those, in rank order, whose
        weight reaches ``top_p`` of theirs; 1 keeps them all.
    u : float
        The uniform number in [0, 1) that decides the draw.
    rank : ndarray, shape (O,)
        Workspace: the kept indices in rank order (as floats).
    taken : ndarray, shape (O,)
        Workspace: marks the indices already ranked.

    Returns
    -------
    int
        The first kept index, in rank order, whose cumulative weight exceeds
        ``u`` times the kept weight.
    """
    O = z.shape[0]
    limit = top_k if 0 < top_k < O else O
    for j in range(O):
        taken[j] = 0.0
    # Selection of the most probable first, so a small k or a peaked
    # distribution costs O(O * kept) rather than a full sort.
    threshold = top_p * total
    kept = 0
    acc = 0.0
    while kept < limit:
        best = -1
        for j in range(O):
            if taken[j] == 0.0 and (best < 0 or z[j] > z[best]):
                best = j
        taken[best] = 1.0
        rank[kept] = best
        kept += 1
        acc += w[best]
        if top_k == 0 and acc >= threshold:  # without top_k, p applies to every weight
            break
    if top_k > 0 and top_p < 1.0:  # with top_k, p applies to the k kept
        threshold = top_p * acc
        acc = 0.0
        for n in range(kept):
            acc += w[int(rank[n])]
            if acc >= threshold:
                kept = n + 1
                break
        # kept weight, summed in rank order as the draw below sums it
        acc = 0.0
        for n in range(kept):
            acc += w[int(rank[n])]
    threshold = u * acc
    acc = 0.0
    for n in range(kept - 1):
        acc += w[int(rank[n])]
        if acc > threshold:
            return int(rank[n])
    return int(rank[kept - 1])


@kernel
def next_index(z, w, u, inv_temperature, filters):
    """The next index from the logits ``z (O,)``: their argmax, or a draw decided by ``u``.

    ``w (O,)`` is workspace for the softmax weights; an infinite
    ``inv_temperature`` means greedy (``u`` unused).  The draw, with the
    uniform number ``u`` in [0, 1), is over every index when ``filters`` is
    None, otherwise restricted as :func:`draw_filtered` describes,
    ``filters`` holding its ``(top_k, top_p, rank, taken)``.
    """
    if inv_temperature == np.inf:
        return argmax(z)
    total = softmax_weights(z, w, inv_temperature)
    # None is a type of its own: numba compiles this function once per kind of
    # ``filters`` and drops the branch that cannot run, so the unfiltered loop
    # is the plain draw alone (a filtered branch in it costs ~5% at H = 100).
    if filters is None:
        return draw(w, total, u)
    top_k, top_p, rank, taken = filters
    return draw_filtered(z, w, total, top_k, top_p, u, rank, taken)


@sizes
def _scratch_sizes(H, O, G):
    # pre-activations a, the GRU's recurrent side q, the LSTM's tanh(c) or the
    # GRU's q_n, the logits z and their softmax weights w (apart from z, so the
    # exponential loop vectorises), and the top-k / top-p workspace rank, taken
    return G * H, G * H, H, O, O, O, O


@sizes
def scratch_size(H, O, G):
    """Length of the flat scratch vector of :func:`sampler`'s kernel."""
    return total_size(_scratch_sizes(H, O, G))


@functools.cache
def sampler(G):
    """The sampling kernel for models of ``G`` gate blocks (1, 3 or 4): see ``sample`` below.

    Made once per G, so that G is a compile-time constant (see
    :mod:`fastrnn._kernels.jit`): each model compiles only its own loop.  The loop is
    chosen by a branch on G in the kernel itself, where Numba drops the branch
    that cannot run before it inlines anything; in a function it inlines, G is
    an argument, and it would inline what both branches call first.
    """

    @kernel_named(MODEL_NAMES[G])
    def sample(start, state, theta, I, H, O, L, temperature, filters, uniforms, out, scratch):
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
        I, H, O, L : int
            The model's sizes.
        temperature : float
            Softmax temperature; 0 (or one so small that 1/temperature overflows)
            picks the most likely index (greedy).
        filters : None or tuple (int, float)
            None draws from every index.  ``(top_k, top_p)``: draw only from the
            ``top_k`` most probable indices (0: all; 1 is greedy), then only from
            the smallest set of the most probable of those whose probability
            reaches ``top_p`` (in (0, 1]; 1: all).  Numba compiles the filtered
            loop only for a call that passes them.
        uniforms : ndarray of float64, shape (n,)
            The uniform numbers in [0, 1) that decide the draws, ``uniforms[i]``
            the i-th (unread when greedy).  The caller draws them
            (``numpy.random.RandomState(seed)``, as the reference does), so
            that a long sample taken in several calls, the state and the
            generator carried from one to the next, is the sample of one call.
        out : ndarray of int64, shape (n,)
            Output: the sampled indices.
        scratch : ndarray, shape (scratch_size(H, O, G),)
            Workspace, 64-byte aligned.
        """
        # 1 / temperature overflows for subnormal temperatures: their limit, greedy.
        inv_temperature = 1.0 / temperature if temperature > 0.0 else np.inf
        s = _scratch_sizes(H, O, G)
        a, q, aux, z, w = (block(scratch, s, 0), block(scratch, s, 1), block(scratch, s, 2),
                           block(scratch, s, 3), block(scratch, s, 4))
        # next_index's arguments after the logits' workspace: how each index is picked.  Each
        # call compiles one branch of each ``if`` (filters' type and G are known to Numba).
        if filters is None:
            pick = (inv_temperature, None)
        else:
            top_k, top_p = filters
            if top_k == 1:  # the most probable index: greedy
                inv_temperature = np.inf
            pick = (inv_temperature, (top_k, top_p, block(scratch, s, 5), block(scratch, s, 6)))
        if G == 1:
            _sample_rnn(start, state[0, 0], theta, I, H, O, pick, uniforms, out, a, z, w)
        else:
            # The LSTM's c; the GRU has none (G == 4 is a constant: the other cell is not
            # compiled).
            cells = state[1] if G == 4 else state[0, 0, :0]
            _sample_gated(start, state[0], cells, G == 4, theta, I, H, O, L, G, pick, uniforms,
                          out, a, q, aux, z, w)

    return sample


@kernel(inline="always")
def _sample_rnn(start, state, theta, I, H, O, pick, uniforms, out, a, z, w):
    """The sampling loop of the tanh RNN, from ``state (H,)``, left holding the final state."""
    Wxh, Whh, Why, bh, by = rnn.params(theta, I, H, O)
    bias_h = bh[:, 0]
    bias_y = by[:, 0]
    # The step computes the next state in ``a`` in place (the tanh_ that training compiles,
    # not a second loop), then the two buffers swap roles: no copy per step.
    h = state
    ix = start
    for n in range(out.shape[0]):
        reverse = n % 2 == 1  # see linalg: the order of the rows, not of any sum
        matvec_add(Whh, h, bias_h, a, reverse)
        for i in range(H):
            a[i] += Wxh[i, ix]
        tanh_(a)
        h, a = a, h
        # The logits: the same flag as above, so one compiled matvec_add serves both.
        matvec_add(Why, h, bias_y, z, reverse)
        ix = next_index(z, w, uniforms[n] if pick[0] != np.inf else 0.0, *pick)
        out[n] = ix
    if out.shape[0] % 2 == 1:  # the final state is in the scratch buffer
        copy_into(state, h)


@kernel(inline="always")
def _sample_gated(start, hidden, cells, lstm, theta, I, H, O, L, G, pick, uniforms, out, a, q,
                  aux, z, w):
    """The sampling loop of the LSTM (``lstm``) and the GRU, from ``hidden (L, H)``.

    ``cells (L, H)`` are the LSTM's cell states; the GRU, which has none,
    passes an empty (0,).  ``lstm`` is a constant of the caller, so each model
    compiles only its own cell.
    """
    Why, by = gated.output_params(theta, I, H, O, L, G)
    bias_y = by[:, 0]
    ix = start
    for n in range(out.shape[0]):
        reverse = n % 2 == 1  # see linalg: the order of the rows, not of any sum
        for k in range(L):
            _gated_step(ix, hidden, cells, lstm, k, theta, I, H, O, L, G, a, q, aux, reverse)
        matvec_add(Why, hidden[L - 1], bias_y, z, reverse)  # the logits
        ix = next_index(z, w, uniforms[n] if pick[0] != np.inf else 0.0, *pick)
        out[n] = ix


@kernel(inline="always")
def _gated_step(ix, hidden, cells, lstm, k, theta, I, H, O, L, G, a, q, aux, reverse):
    """Layer k of a gated model, one step: ``hidden[k]`` (and ``cells[k]``) updated in place.

    ``lstm`` is the caller's constant (:func:`_sample_gated`).
    """
    Wih, Whh, bih, bhh = gated.layer_params(theta, k, I, H, O, L, G)
    h = hidden[k]
    if k == 0:
        if lstm:
            for i in range(G * H):
                a[i] = Wih[i, ix] + (bih[i] + bhh[i])
        else:
            for i in range(G * H):
                a[i] = Wih[i, ix] + bih[i]
    else:
        matvec_add(Wih, hidden[k - 1], bih, a, reverse)
        if lstm:
            for i in range(G * H):
                a[i] += bhh[i]
    if lstm:
        matvec_add_tall(Whh, h, a, a, reverse)
        lstm_cell(a, cells[k], cells[k], h, aux, H)
    else:
        matvec_add_tall(Whh, h, bhh, q, reverse)
        gru_cell(a, q, h, h, aux, H)
