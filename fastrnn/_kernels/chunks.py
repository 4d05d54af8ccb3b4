"""The entry points every model calls: a chunk's loss, its gradients, its probabilities.

A model is described by its sizes ``I, H, O, L, G``: G is the number of gate
blocks of a layer (1 for the tanh RNN, 3 for the GRU, 4 for the LSTM) and L
the number of layers (1 for the RNN).  Its state is one array
``state (S, L, B, H)``: S = 2 for the LSTM (h and c), 1 otherwise.  The
passes over the chunk are :mod:`.rnn`'s for G = 1 and :mod:`.gated`'s
otherwise; the loss and the update are the same for every model.

The entry points are written once and made per kind of model by
:func:`entry_points`: G and whether the chunk is one stream are constants
there, so that Numba compiles only that model's passes (an RNN no gated
code, an LSTM no GRU cell, one stream no batched recurrence).  Below them
the choice travels in the types of the arguments the passes get (see
:mod:`fastrnn._kernels.jit`).  A training step is :func:`entry_points`'s
``value_and_grad`` and then an optimizer's kernel.

Arguments are few and flat (the parameter and gradient vectors, one flat
workspace ``ws`` of :func:`workspace_size` elements of the model's dtype, 64-byte aligned):
each array argument costs ~60 ns of Numba's dispatch, and a small training
step is tens of microseconds.
"""

import functools
from collections import namedtuple

from fastrnn._kernels import gated, rnn
from fastrnn._kernels.jit import kernel, kernel_named, sizes
from fastrnn._kernels.output import probabilities_out, xent
from fastrnn._kernels.storage import final_state, optional_blocks, top_layer
from fastrnn._kernels.updates import sgd_

__all__ = ["workspace_size", "MODEL_NAMES", "EntryPoints", "entry_points", "combine",
           "combine_sgd_"]


@sizes
def workspace_size(B, T, H, O, L, G, itemsize):
    """Length of the flat workspace vector of a (B, T) chunk, in elements of ``itemsize`` bytes."""
    if G == 1:
        return rnn.workspace_size(B, T, H, O, itemsize)
    return gated.workspace_size(B, T, H, O, L, G, itemsize)


@kernel(inline="always")
def _forward(x, state, theta, ws, I, H, O, L, G, one_stream):
    B, T = x.shape
    cells, packing = optional_blocks(ws, B, T, H, O, L, G, one_stream)
    if G == 1:
        rnn.forward(x, state, theta, ws, I, H, O, packing)
    else:
        gated.forward(x, state, theta, ws, I, H, O, L, G, cells, packing)


@kernel(inline="always")
def _backward(x, theta, grad, ws, I, H, O, L, G, one_stream):
    B, T = x.shape
    cells, packing = optional_blocks(ws, B, T, H, O, L, G, one_stream)
    if G == 1:
        rnn.backward(x, theta, grad, ws, I, H, O, packing)
    else:
        gated.backward(x, theta, grad, ws, I, H, O, L, G, cells, packing)


@kernel(inline="always")
def _xent(ws, y, grad, H, O, L, G):
    B, T = y.shape
    hs, zT, lse, col = top_layer(ws, B, T, H, O, L, G)
    return xent(zT, y, grad, lse, col)


EntryPoints = namedtuple("EntryPoints",
                         ["loss", "value_and_grad", "forward_probs", "backward_from"])
EntryPoints.__doc__ = """The kernels a model calls, compiled for its kind (:func:`entry_points`).

``backward_from`` is the tanh RNN's only (None for the gated models).  A
training step is :func:`value_and_grad` and then the optimizer's kernel: one
compiled entry point serves ``train``, ``gradients`` and a trainer's steps.
"""


MODEL_NAMES = {1: "rnn", 3: "gru", 4: "lstm"}
"""The kind of model of each G, as the names of its kernels' cache files say it."""


@functools.cache
def entry_points(G, one_stream):
    """The entry points for models of ``G`` gate blocks, on one stream or on a batch.

    Parameters
    ----------
    G : {1, 3, 4}
        The kind of model: the tanh RNN, the GRU, the LSTM.
    one_stream : bool
        Chunks of one stream (B = 1), or of a batch (shards of 2 to 16 streams).

    Returns
    -------
    EntryPoints
        Made once per ``(G, one_stream)``; each compiles on its first call,
        per dtype, and is cached on disk like every kernel.  Their arguments
        are those below (the sizes ``I, H, O, L`` without G).
    """
    entry_point = kernel_named(f"{MODEL_NAMES[G]}_{'stream' if one_stream else 'batch'}")

    @entry_point
    def loss(x, y, state, theta, ws, I, H, O, L, state_last):
        """The loss of a chunk (sum over time, mean over streams), without gradients.

        Parameters
        ----------
        x, y : ndarray of int64, shape (B, T)
            Input and target indices.
        state : ndarray, shape (S, L, B, H)
            The initial state.
        theta : ndarray
            The flat parameter vector.
        ws : ndarray, shape (workspace_size(B, T, H, O, L, G, ws.itemsize),)
            Workspace.
        I, H, O, L : int
            The model's sizes (see the module docstring).
        state_last : ndarray, shape (S, L, B, H)
            Output: the state after the last step.

        Returns
        -------
        float
        """
        B, T = x.shape
        _forward(x, state, theta, ws, I, H, O, L, G, one_stream)
        final_state(ws, B, T, H, O, L, G, state_last)
        return _xent(ws, y, False, H, O, L, G)

    @entry_point
    def value_and_grad(x, y, state, theta, grad, ws, I, H, O, L, state_last):
        """:func:`loss` and its gradient, by BPTT, into ``grad`` (the layout of ``theta``)."""
        B, T = x.shape
        if G == 1 and one_stream:  # a script's train(): the passes inlined (see rnn)
            rnn.forward_inlined(x, state, theta, ws, I, H, O, None)
            value = _xent(ws, y, True, H, O, L, G)
            rnn.backward_inlined(x, theta, grad, ws, I, H, O, None)
        else:
            _forward(x, state, theta, ws, I, H, O, L, G, one_stream)
            value = _xent(ws, y, True, H, O, L, G)
            _backward(x, theta, grad, ws, I, H, O, L, G, one_stream)
        final_state(ws, B, T, H, O, L, G, state_last)
        return value

    @entry_point
    def forward_probs(x, state, theta, ws, I, H, O, L, hs_out, ps_out):
        """The forward pass and softmax.

        Writes the top layer's states ``hs_out (B, T+1, H)`` (``hs_out[:, 0]`` the
        initial h) and the probabilities ``ps_out (B, T, O)``.
        """
        B, T = x.shape
        _forward(x, state, theta, ws, I, H, O, L, G, one_stream)
        hs, zT, lse, col = top_layer(ws, B, T, H, O, L, G)
        probabilities_out(hs, zT, lse, col, hs_out, ps_out)

    @entry_point
    def backward_from(x, y, hs_in, ps_in, theta, grad, ws, I, H, O):
        """The tanh RNN's BPTT from given states and probabilities (:func:`.rnn.backward_from`)."""
        B, T = x.shape
        cells, packing = optional_blocks(ws, B, T, H, O, 1, 1, one_stream)
        rnn.backward_from(x, y, hs_in, ps_in, theta, grad, ws, I, H, O, packing)

    return EntryPoints(loss, value_and_grad, forward_probs, backward_from if G == 1 else None)


@kernel
def combine(grads, weights, out, start, stop, fresh):
    """``out[i] (+)= sum_k weights[k] * grads[k, i]`` for ``start <= i < stop``, added k = 0, 1, ...

    The gradient of a batch from its shards' (each the mean over its own
    streams, weighted by its share of the batch); a fixed order, so the sum
    is the same whatever ran the shards, and element-wise, so the same
    however ``[0, P)`` is cut into ranges for threads.  The shards may come
    in groups: the first ``fresh`` (``out`` overwritten), the others added
    to it, which gives the sum of all of them at once, bit for bit.

    Parameters
    ----------
    grads : ndarray, shape (K, P)
    weights : ndarray of float64, shape (K,)
    out : ndarray, shape (P,)
        Output (overwritten in the range when ``fresh``, added to otherwise).
    start, stop : int
        The range of elements, ``0 <= start <= stop <= P``.
    fresh : bool
        Whether these are the first shards of the sum.
    """
    # Loops from 0 over slices: an index from ``start`` may be negative as far
    # as Numba knows, and its wraparound check kept LLVM from vectorising the
    # loop (float32 ran 3x slower, float64 1.4x).
    part = out[start:stop]
    k0 = 0
    if fresh:
        w0 = weights[0]
        first = grads[0, start:stop]
        for i in range(part.shape[0]):
            part[i] = w0 * first[i]
        k0 = 1
    for k in range(k0, grads.shape[0]):
        w = weights[k]
        row = grads[k, start:stop]
        for i in range(part.shape[0]):
            part[i] += w * row[i]


_BLOCK = 2048  # elements summed, then applied while they are still in L1


@kernel
def combine_sgd_(grads, weights, out, theta, learning_rate, clip, start, stop, fresh):
    """:func:`combine` (the last shards of the sum), then SGD with the sum, on ``[start, stop)``.

    Block by block, so that each block of ``out`` is applied to ``theta``
    while still in L1: one pass over the gradients instead of two.  The
    update is :func:`.updates.sgd_`'s.
    """
    for lo in range(start, stop, _BLOCK):
        hi = min(lo + _BLOCK, stop)
        combine(grads, weights, out, lo, hi, fresh)
        sgd_(theta[lo:hi], out[lo:hi], learning_rate, clip)
