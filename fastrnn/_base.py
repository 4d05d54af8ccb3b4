"""What every model shares: storage, workspaces, state conversion and the public methods.

Every public method checks and normalises its arguments once (shapes, dtypes,
ranges) before anything is written, so a rejected call changes nothing; then it
hands contiguous arrays to a kernel.  No method loops over time steps.

One base class, :class:`Model`, defines every method the models share
(``forward``, ``loss``, ``gradients``, ``train``, ``predict`` and the state
methods); :class:`fastrnn.RNN`, :class:`fastrnn.LSTM` and :class:`fastrnn.GRU`
(in :mod:`fastrnn.model`) supply what differs:
their parameter layout and initialisation, and the public form of their
state.  Inside, every model's state is one array of shape (S, L, B, H) (S = 2
for the LSTM's h and c, 1 otherwise; L = 1 for the RNN), the form the kernels
of :mod:`fastrnn._kernels.chunks` and :mod:`fastrnn._kernels.sampling` take;
it is converted to and from the public form (an RNN's (B, H), an LSTM's pair
``(h, c)``) once, at the boundary.

Beside it: :mod:`fastrnn._batches` (how a batch runs: workspaces, shards on
threads), :mod:`fastrnn._aligned` (the aligned flat vectors and their views),
:mod:`fastrnn._locks` (one call at a time) and :mod:`fastrnn._sampling_run` (a
sample drawn in pieces).
"""

import math

import numpy as np

from fastrnn import _threads
from fastrnn._aligned import aligned_zeros, flat_views
from fastrnn._batches import NO_STATE, Batched, chunk_indices
from fastrnn._kernels.checks import index_bounds as _index_bounds
from fastrnn._kernels.updates import sgd_ as _sgd
from fastrnn._limits import MAX_PARAMETERS
from fastrnn._locks import ModelLock, serialised
from fastrnn._sampling_run import SAMPLE_PIECE, SamplingRun, sample_buffer
from fastrnn._validation import (
    check_dimension,
    check_dtype,
    check_index,
    check_seed,
    check_sizes,
    float_array,
    index_array,
    sampling_arguments,
    sampling_filters,
    sgd_options,
)


class Parameter:
    """A model attribute backed by a view into the model's flat parameter vector.

    Reading returns the live array (in-place writes reach the kernels);
    assigning copies the new values in after checking the shape.
    """

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, model, owner=None):
        if model is None:
            return self
        return model._params[self.name]

    def __set__(self, model, value):
        with model._lock:
            model._assign(self.name, value)


_LAYER_OVERHEAD = 1024  # parameters' worth of memory (8 KiB) each layer's objects take


class Model(Batched):
    """What every model shares: storage, workspaces, and every public method but the layout.

    A subclass sets ``_GATES`` (G: 1 for the tanh RNN, 3 for the GRU, 4 for
    the LSTM), ``_STATE_ARRAYS`` (S) and ``_PACKED_FROM`` (how many leading
    axes of (S, L, B, H) the public batch state drops), and defines
    ``_parameter_count()``, ``_shapes()`` (an ordered mapping of parameter
    names to shapes, the order of :meth:`parameters`), ``_layout()`` (the
    order of the same arrays in the flat vectors, which the kernels rely on),
    ``_public_state(parts)`` (the public form of a state ``(S, L, ..., H)``)
    and ``_state_in(h0, batch)`` (the inverse, validated: an (S, L, B, H)
    array the kernels may read).
    """

    _GATES = None
    _STATE_ARRAYS = 1

    def _setup(self, input_dim, hidden_dim, output_dim, num_layers, seed, dtype):
        """Check the sizes, allocate the storage; returns the generator for the weights."""
        self.input_dim, self.hidden_dim, self.output_dim, self.num_layers = check_sizes(
            input_dim, hidden_dim, output_dim, num_layers)
        rng = np.random.default_rng(check_seed("seed", seed))
        self.dtype = check_dtype(dtype)
        # Each layer also costs Python objects (views of its arrays in the
        # parameters and the gradients, names, shapes): counted as parameters, so
        # that a stack of millions of tiny layers is refused here, not by MemoryError.
        count = self._parameter_count()
        total = count + self.num_layers * _LAYER_OVERHEAD
        if total > MAX_PARAMETERS:
            raise ValueError(
                f"the model would have {count:,} parameters in {self.num_layers:,} layer(s), "
                f"needing the memory of {total:,} ({total * 8 // 2**30:,} GiB), more than the "
                f"{MAX_PARAMETERS:,} fastrnn allows: choose a smaller hidden_dim, "
                f"num_layers or vocabulary"
            )
        # The sizes every entry point takes: I, H, O, L (G is the entry points' own).
        self._dims = (self.input_dim, self.hidden_dim, self.output_dim, self.num_layers)
        self._allocate()
        # The public shape of one stream's state: the batch shape without B.
        self._one_stream = self._packed_shape(1)[:-2] + (self.hidden_dim,)
        self.last_hidden = None
        return rng

    def _allocate(self):
        """The storage (zeroed): the aligned flat vectors, their views, workspaces, the lock."""
        shapes = self._shapes()
        total = sum(math.prod(s) for s in shapes.values())
        self._theta = aligned_zeros(total, self.dtype)  # every parameter, one vector
        self._grad = aligned_zeros(total, self.dtype)  # their gradients, same layout
        self._params = flat_views(shapes, self._layout(), self._theta)
        self._grads = flat_views(shapes, self._layout(), self._grad)
        self._new_workspaces()
        self._lock = ModelLock()  # see serialised
        _threads.limit_blas()

    # Made again by _allocate: views of the flat vectors, scratch, the lock.
    _REBUILT = ("_theta", "_grad", "_params", "_grads", "_workspaces", "_shard_grads", "_lock")

    def __getstate__(self):
        """What pickle and :mod:`copy` keep: the attributes, the two flat vectors as copies.

        The parameter arrays are views of one aligned vector that the kernels
        update; pickled as they are they would come back as arrays of their
        own, no longer seen by the kernels.  So the vectors are kept and
        :meth:`__setstate__` lays the views out again.
        """
        with self._lock:
            state = {k: v for k, v in self.__dict__.items() if k not in self._REBUILT}
            state["_theta"], state["_grad"] = self._theta.copy(), self._grad.copy()
        return state

    def __setstate__(self, state):
        state = dict(state)
        theta, grad = state.pop("_theta"), state.pop("_grad")
        self.__dict__.update(state)
        self._allocate()
        self._theta[...] = theta
        self._grad[...] = grad

    # -- storage -----------------------------------------------------------------

    @serialised
    def astype(self, dtype):
        """An independent copy of the model that computes in ``dtype``.

        Parameters
        ----------
        dtype : {"float64", "float32"}, np.float64, np.float32 or a numpy dtype
            The dtype of the copy; it may be the model's own.

        Returns
        -------
        model
            The same class and sizes, with the parameters (and ``last_hidden``)
            converted to ``dtype``; nothing is shared with this model.
        """
        dtype = check_dtype(dtype)
        clone = object.__new__(type(self))
        clone._setup(self.input_dim, self.hidden_dim, self.output_dim, self.num_layers, 0, dtype)
        clone._theta[...] = self._theta
        state = self.last_hidden
        if state is not None:
            clone.last_hidden = (tuple(np.array(s, dtype) for s in state)
                                 if isinstance(state, tuple) else np.array(state, dtype))
        return clone

    def _repr_dtype(self):
        """``, dtype='float32'`` for a float32 model; nothing for the default float64."""
        return "" if self.dtype == np.float64 else f", dtype='{self.dtype.name}'"

    @property
    def lock(self):
        """The model's re-entrant lock, held by every public method.

        Hold it to make several calls one, with no other thread's call on the
        model in between (as the trainer does for a gradient and its update).
        """
        return self._lock

    def parameters(self):
        """The live parameter arrays, by name, in a fixed order.

        Returns
        -------
        dict[str, ndarray]
            Views into the model's storage: writing into them changes the model.
        """
        return dict(self._params)

    @property
    def parameter_vector(self):
        """Every parameter in one live vector of :attr:`dtype`, shape (n,).

        The parameter arrays are views into it, so an optimizer that updates this
        vector in place updates the model.  The order of the arrays inside it is
        an implementation detail (chosen for memory alignment); use
        :meth:`parameters` to address them by name.
        """
        return self._theta

    @property
    def gradient_vector(self):
        """The gradient buffer (shape (n,)), laid out like :attr:`parameter_vector`.

        Filled by :meth:`gradients` (and :meth:`train`); overwritten by the next call.
        """
        return self._grad

    def _assign(self, name, value):
        target = self._params[name]
        target[...] = float_array(name, value, target.shape, self.dtype)

    def _scored(self, inputs, targets, h0, with_gradient):
        """:meth:`loss` (and with ``with_gradient`` the gradient in ``_grad``) of a chunk.

        Leaves the final state in ``last_hidden``.
        """
        value, self.last_hidden = self.loss_and_state(inputs, targets, h0, with_gradient)
        return value

    @serialised
    def loss_and_state(self, inputs, targets, h0=None, with_gradient=False):
        """The loss of a chunk and its final state (public form); ``last_hidden`` untouched.

        What a reader of a text in chunks (:func:`fastrnn.evaluate`, the prime
        of :func:`fastrnn.generate`) carries from one chunk to the next,
        without writing the model's ``last_hidden`` that another thread may read.
        """
        single, x2, y2, state = self._chunk(inputs, targets, h0)
        last = np.empty_like(state)
        value = self._loss_and_gradient(x2, y2, state, last, with_gradient)
        return float(value), self._state_out(last, single)

    # -- the state ---------------------------------------------------------------

    def _state_shape(self, batch):
        return self._STATE_ARRAYS, self.num_layers, batch, self.hidden_dim

    def _packed_shape(self, batch):
        """The public (and checkpoint) shape of a batch state: (S, L, B, H) less unit axes."""
        return self._state_shape(batch)[self._PACKED_FROM:]

    def _chunk(self, inputs, targets, h0):
        """``(single, x2, y2, state)`` of a call on a chunk, every argument checked."""
        # A carried state as one array (e.g. the previous call's last_hidden)
        # is checked together with the indices, in one kernel call; this runs
        # on every training step, so it is written for speed.
        carried = (type(h0) is np.ndarray and self._STATE_ARRAYS == 1
                   and h0.dtype == self.dtype and h0.flags.carray)
        single, x2, y2, finite = chunk_indices(inputs, targets, self.input_dim, self.output_dim,
                                          h0 if carried else NO_STATE)
        B = x2.shape[0]
        if finite and carried:
            shape = (1, self.num_layers, B, self.hidden_dim)
            if h0.shape == shape[self._PACKED_FROM:] or (B == 1 and h0.shape == self._one_stream):
                return single, x2, y2, h0.reshape(shape)
        return single, x2, y2, self._state_in(h0, B)

    def _state_out(self, state, single):
        """The public form of a fresh (S, L, B, H) state; one stream's when ``single``."""
        return self._public_state(state[:, :, 0] if single else state)

    def zero_state(self, batch):
        """The zero state of ``batch`` streams, in the form of ``last_hidden``."""
        shape = self._state_shape(check_dimension("batch", batch))
        return self._state_out(np.zeros(shape, self.dtype), False)

    def pack_state(self, state):
        """A batch state (as ``last_hidden`` holds it) as one array, for checkpoints.

        An RNN's is itself (B, H), a GRU's (L, B, H), an LSTM's ``(h, c)``
        stacked into (2, L, B, H).
        """
        return self._checked_packed(self._joined(state))

    def unpack_state(self, array):
        """The inverse of :meth:`pack_state`: a checked copy in the form of ``last_hidden``."""
        arr = self._checked_packed(array)
        return self._state_out(np.array(arr, order="C").reshape(
            self._state_shape(arr.shape[-2])), False)

    def stream_state(self, state, index):
        """Stream ``index`` of a batch state, as ``h0`` for :meth:`predict`."""
        arr = self._checked_packed(self._joined(state))
        index = check_index("index", index, arr.shape[-2])
        full = arr.reshape(self._state_shape(arr.shape[-2]))
        return self._public_state(full[:, :, index].copy())

    def _joined(self, state):
        """A public batch state as one array (the LSTM stacks its pair)."""
        return float_array("state", state, dtype=self.dtype)

    def _checked_packed(self, array):
        arr = float_array("state", array, dtype=self.dtype)
        expected = self._packed_shape("B")
        if arr.ndim != len(expected) or any(
                n != e for n, e in zip(arr.shape, expected, strict=True) if e != "B"):
            raise ValueError(f"state has shape {arr.shape}, expected "
                             f"({', '.join(str(e) for e in expected)})")
        return arr

    # -- the methods on chunks ---------------------------------------------------

    @serialised
    def forward(self, inputs, h0=None):
        """Run the model over a sequence or a batch of sequences (no state is kept).

        Parameters
        ----------
        inputs : array_like of int, shape (T,) or (B, T)
            Input indices in [0, input_dim); a 2-D array is B independent streams.
        h0 : optional
            Initial state (see the class docstring); zeros by default.

        Returns
        -------
        xs : ndarray of int64, shape (T,) or (B, T)
            The inputs as indices.
        hs : ndarray, shape (T+1, H) or (B, T+1, H)
            The (top layer's) hidden states; ``hs[0]`` (``hs[:, 0]``) is the initial h.
        ps : ndarray, shape (T, O) or (B, T, O)
            Softmax probabilities of the next index at each step.
        """
        xs = index_array("inputs", inputs, self.input_dim, _index_bounds)
        x2 = xs.reshape(-1, xs.shape[-1])
        B, T = x2.shape
        state = self._state_in(h0, B)
        hs = np.empty((B, T + 1, self.hidden_dim), self.dtype)
        ps = np.empty((B, T, self.output_dim), self.dtype)
        theta, dims, kernels = self._theta, self._dims, self._kernels(B)
        if B <= _threads.SHARD_STREAMS:  # one shard
            kernels.forward_probs(x2, state, theta, self._workspace(B, T), *dims, hs, ps)
        else:

            def call(k, rows, state_k, last_k, ws):
                kernels.forward_probs(x2[rows], state_k, theta, ws, *dims, hs[rows], ps[rows])

            self._sharded(call, _threads.shards(B), T, state)
        if xs.ndim == 1:
            return xs, hs[0], ps[0]
        return xs, hs, ps

    @serialised
    def loss(self, inputs, targets, h0=None):
        """The loss of :meth:`train` (sum over time, mean over streams), no update.

        Like :meth:`train`, it leaves the final state in ``last_hidden``, so a
        long text can be scored chunk by chunk with the state carried.
        """
        return self._scored(inputs, targets, h0, False)

    @serialised
    def gradients(self, inputs, targets, h0=None):
        """The loss and its gradients, without an update.

        Parameters are those of :meth:`train`.

        Returns
        -------
        loss : float
            As returned by :meth:`loss`.
        grads : dict[str, ndarray]
            Gradients by parameter name (the names of :meth:`parameters`).
            These are the model's gradient buffers, overwritten by the next
            call; copy them to keep them.
        """
        return self._scored(inputs, targets, h0, True), dict(self._grads)

    @serialised
    def train(self, inputs, targets, learning_rate=0.1, *, clip=5.0, h0=None):
        """One step of truncated BPTT with SGD: forward, backward, clip, update.

        Parameters
        ----------
        inputs, targets : array_like of int, shape (T,) or (B, T)
            Input and target indices (targets are usually inputs shifted by one).
        learning_rate : float, default 0.1
            Finite and positive.
        clip : float or None, default 5.0
            Gradients are clipped element-wise to [-clip, clip]; None turns it off.
        h0 : optional
            Initial state (see the class docstring), e.g. the previous call's
            ``last_hidden``; zeros by default.

        Returns
        -------
        float
            The loss before the update (sum over time, mean over streams).
        """
        single, x2, y2, state = self._chunk(inputs, targets, h0)
        learning_rate, clip = sgd_options(learning_rate, clip)
        last = np.empty_like(state)
        clip = 0.0 if clip is None else clip
        if x2.shape[0] <= _threads.SHARD_STREAMS:  # one shard: the gradient, then the update
            value = self._kernels(x2.shape[0]).value_and_grad(
                x2, y2, state, self._theta, self._grad, self._workspace(*x2.shape), *self._dims,
                last)
            _sgd(self._theta, self._grad, learning_rate, clip)
        else:
            value = self._loss_and_gradient(x2, y2, state, last, True, (learning_rate, clip))
        self.last_hidden = self._state_out(last, single)
        return float(value)

    @serialised
    def predict(self, start_index, num_chars, *, temperature=1.0, seed=None, h0=None,
                top_k=None, top_p=None):
        """Sample a continuation, one index at a time, each fed back as the next input.

        Parameters
        ----------
        start_index : int
            The first input, in [0, input_dim); not part of the result.
        num_chars : int
            How many indices to sample (>= 0).
        temperature : float, default 1.0
            Softmax temperature (>= 0); 0 means greedy argmax.
        seed : int, optional
            Makes the draws reproducible, in every process.
        h0 : optional
            Initial state of one stream (see the class docstring); zeros by default.
        top_k : int, optional
            Draw each index from the ``top_k`` most probable only (>= 1; 1 is
            greedy).
        top_p : float, optional
            In (0, 1]: draw each index from the smallest set of the most
            probable whose probability reaches ``top_p`` (nucleus sampling);
            with ``top_k``, of the ``top_k`` kept, their probabilities
            renormalised.

        Returns
        -------
        list of int

        Notes
        -----
        Indices are ranked by probability, ties broken in favour of the lower
        index; with ``top_k`` or ``top_p`` each draw is an inverse-CDF draw over
        the kept indices in that order.  Without them the draws are those of
        plain softmax sampling, index by index; temperature 0 ignores both.
        """
        run = self.sampling(start_index, num_chars, temperature=temperature, seed=seed, h0=h0,
                           top_k=top_k, top_p=top_p)
        out = sample_buffer(run.remaining)
        for lo in range(0, out.shape[0], SAMPLE_PIECE):  # the draws a piece at a time
            run.fill(out[lo:lo + SAMPLE_PIECE])
        return out.tolist()

    def sampling(self, start_index, num_chars, *, temperature=1.0, seed=None, h0=None,
                 top_k=None, top_p=None):
        """A sampling run of :meth:`predict`'s arguments (checked here), to take in pieces.

        Its :meth:`~fastrnn._sampling_run.SamplingRun.fill` samples the next indices into a buffer,
        the state, the last index and the generator carried from one piece to
        the next: the pieces together are what one call of :meth:`predict`
        returns, and a long sample needs memory for a piece only.
        """
        start, num_chars, temperature, seed = sampling_arguments(
            self, start_index, num_chars, temperature, seed)
        top_k, top_p = sampling_filters(self, top_k, top_p)
        return SamplingRun(self._lock, self._GATES, self._theta, self._dims, start, num_chars,
                           temperature, seed, self._state_in(h0, 1), top_k, top_p)
