"""What every model shares: storage, workspaces, state conversion and the public methods.

Every public method checks and normalises its arguments once (shapes, dtypes,
ranges) before anything is written, so a rejected call changes nothing; then it
hands contiguous arrays to a kernel.  No method loops over time steps.

One base class, :class:`_Model`, defines every method the models share
(``forward``, ``loss``, ``gradients``, ``train``, ``predict`` and the state
methods); :class:`fastrnn.RNN`, :class:`fastrnn.LSTM` and :class:`fastrnn.GRU`
(in :mod:`fastrnn.model`) supply what differs:
their parameter layout and initialisation, and the public form of their
state.  Inside, every model's state is one array of shape (S, L, B, H) (S = 2
for the LSTM's h and c, 1 otherwise; L = 1 for the RNN), the form the kernels
of :mod:`fastrnn._kernels.chunks` and :mod:`fastrnn._kernels.sampling` take;
it is converted to and from the public form (an RNN's (B, H), an LSTM's pair
``(h, c)``) once, at the boundary.
"""

import functools
import math
import os
import threading
import weakref
from collections import OrderedDict

import numpy as np

from fastrnn import _threads
from fastrnn._kernels import chunks as _chunks
from fastrnn._kernels import sampling as _sampling
from fastrnn._kernels.checks import chunk_ok as _chunk_ok
from fastrnn._kernels.checks import index_bounds as _index_bounds
from fastrnn._kernels.optimizers import sgd_ as _sgd
from fastrnn._validation import (
    check_dimension,
    check_dtype,
    check_index,
    check_seed,
    check_sizes,
    float_array,
    index_array,
    paired_indices,
    sampling_arguments,
    sampling_filters,
    sgd_options,
)

_NO_STATE = np.empty(0)


def _indices(inputs, targets, input_dim, output_dim, state=_NO_STATE):
    """Validated ``(single, x2, y2, state_finite)``: the (B, T) int64 indices of a chunk.

    ``single`` tells whether the inputs were one (T,) sequence.  The common
    case, what a training loop passes on every step, costs one kernel call:
    two C-contiguous int64 arrays of one shape, whose ranges are checked
    together with ``state`` (a C-contiguous array, empty for none);
    ``state_finite`` is True only when that call found the state finite.
    Anything else, or a failed check, goes through the full validation, which
    converts what it can and names what is wrong (the caller then validates
    the state itself).
    """
    if (type(inputs) is np.ndarray and type(targets) is np.ndarray
            and inputs.dtype == np.int64 and targets.dtype == np.int64
            and inputs.shape == targets.shape and 1 <= inputs.ndim <= 2 and inputs.size
            and inputs.flags.carray and targets.flags.carray  # contiguous, writeable
            and _chunk_ok(inputs, targets, input_dim, output_dim, state)):
        if inputs.ndim == 1:
            return True, inputs[None], targets[None], True
        return False, inputs, targets, True
    xs, ys = paired_indices(inputs, targets, input_dim, output_dim, _index_bounds)
    T = xs.shape[-1]
    return xs.ndim == 1, xs.reshape(-1, T), ys.reshape(-1, T), False


def _sample_buffer(num_chars):
    """The int64 array :meth:`_Model.predict` fills; a ValueError names a length that cannot fit."""
    try:
        return np.zeros(num_chars, dtype=np.int64)
    except (MemoryError, ValueError, OverflowError):  # beyond NumPy's largest array, or int64
        raise ValueError(f"num_chars={num_chars:,} is more than memory can hold "
                         f"({num_chars * 8 / 2**30:,.0f} GiB for the indices alone)") from None


# Workspaces kept per model: one set (a workspace per runner of a batch's
# shards) per distinct chunk shape; a trainer uses two (training chunks, validation
# chunks), an interactive user a few more.
_MAX_WORKSPACES = 4


# Every model, so that a forked child can give each a new lock: a lock held by
# another thread at the fork would stay held in the child, where that thread
# does not exist, and the child's first call on the model would wait forever.
_models = weakref.WeakSet()


def _new_locks_after_fork():
    for model in list(_models):
        model._lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_locks_after_fork)


def _serialised(method):
    """Run ``method`` holding the model's lock: one call at a time on a model.

    A model's calls share its workspaces, its gradient buffer and
    ``last_hidden``, and the kernels run without the GIL, so two threads
    calling one model at once would mix their intermediate results.  The lock
    is re-entrant and, uncontended, costs well under a microsecond; different
    models run in parallel.
    """

    @functools.wraps(method)
    def serialised(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return serialised


class _Parameter:
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


def _aligned_zeros(n, dtype=np.float64):
    """A zeroed vector of n elements of ``dtype`` whose data starts on a 64-byte boundary.

    The kernels stream rows of the recurrent weights from L2 on every time
    step; misaligned rows make those loops ~25% slower.
    """
    size = np.dtype(dtype).itemsize
    buf = np.zeros(n + 64 // size, dtype)
    start = (-buf.ctypes.data % 64) // size
    return buf[start:start + n]


def _flat_views(shapes, layout, flat):
    """Views of ``flat`` with the given shapes, stored in ``layout`` order."""
    views = {}
    offset = 0
    for name in layout:
        size = math.prod(shapes[name])
        views[name] = flat[offset:offset + size].reshape(shapes[name])
        offset += size
    return OrderedDict((name, views[name]) for name in shapes)


# Larger models would not fit in memory (2**31 float64 parameters are 16 GiB,
# and the optimizers keep as many again): refuse them with a clear error
# before anything is allocated or laid out.
_MAX_PARAMETERS = 2**31
_LAYER_OVERHEAD = 1024  # parameters' worth of memory (8 KiB) each layer's objects take


class _SamplingRun:
    """A sample taken in pieces (see :meth:`_Model._sampling`); ``remaining`` indices to go."""

    def __init__(self, model, start, num_chars, temperature, seed, state, top_k, top_p):
        S, L, _, H = model._state_shape(1)
        self.model, self.start, self.remaining = model, start, num_chars
        self.temperature = temperature
        self.state = _aligned_zeros(S * L * H, model.dtype).reshape(S, L, H)  # updated in place
        self.state[...] = state[:, :, 0]
        self.scratch = _aligned_zeros(_sampling.scratch_size(H, model.output_dim, model._GATES),
                                      model.dtype)
        # None: no filter, and none compiled (see fastrnn._kernels.sampling.sampler).
        self.filters = None if top_k == 0 and top_p >= 1.0 else (top_k, top_p)
        # Greedy picks draw nothing; draws take one number each, in order, from the
        # generator of the reference (fastrnn.reference.sample).
        greedy = top_k == 1 or temperature == 0.0 or 1.0 / temperature == math.inf
        self.rng = None if greedy else _generator(seed)

    def fill(self, out):
        """Sample the next ``len(out)`` indices into ``out`` (int64), holding the model's lock."""
        n = out.shape[0]
        uniforms = _NO_DRAWS if self.rng is None else self.rng.random_sample(n)
        model = self.model
        with model._lock:
            _sampling.sampler(model._GATES)(self.start, self.state, model._theta, *model._dims,
                                            self.temperature, self.filters, uniforms, out,
                                            self.scratch)
        if n:
            self.start = int(out[-1])
        self.remaining -= n
        if not self.remaining and self.rng is not None:
            _spare_generators.append(self.rng)  # drawn out: another run may seed it again
            self.rng = None


_NO_DRAWS = np.empty(0)
# Indices sampled per kernel call, by predict and by fastrnn.generate.pieces: a
# fraction of a second, and memory (the draws, 8 bytes each) that does not grow
# with the length of the sample.
SAMPLE_PIECE = 1 << 16

# Generators of finished runs.  Making a RandomState costs ~90 us (its
# MT19937 is seeded from the OS first), a quarter of a 200-character predict
# at H = 100; seeding a spare one again costs ~1.5 us.  list.append and
# list.pop are atomic, so threads may share the list.
_spare_generators = []


def _generator(seed):
    """``numpy.random.RandomState(seed)``: the same draws, a spare one seeded again if any."""
    try:
        rng = _spare_generators.pop()
    except IndexError:
        return np.random.RandomState(seed)  # noqa: NPY002
    rng.seed(seed)
    return rng


class _Model:
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
        if total > _MAX_PARAMETERS:
            raise ValueError(
                f"the model would have {count:,} parameters in {self.num_layers:,} layer(s), "
                f"needing the memory of {total:,} ({total * 8 // 2**30:,} GiB), more than the "
                f"{_MAX_PARAMETERS:,} fastrnn allows: choose a smaller hidden_dim, "
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
        self._theta = _aligned_zeros(total, self.dtype)  # every parameter, one vector
        self._grad = _aligned_zeros(total, self.dtype)  # their gradients, same layout
        self._params = _flat_views(shapes, self._layout(), self._theta)
        self._grads = _flat_views(shapes, self._layout(), self._grad)
        self._workspaces = OrderedDict()
        self._shard_grads = None  # (W, P): the gradients of a wave of W shards, one per thread
        self._lock = threading.RLock()  # see _serialised
        _models.add(self)
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

    @_serialised
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

    def _kernels(self, batch):
        """The entry points for this kind of model and a chunk of ``batch`` streams.

        One stream and a batch have entry points of their own, so that each
        compiles only its own recurrence (:func:`fastrnn._kernels.chunks.entry_points`);
        a batch's shards have 2 to 16 streams.
        """
        return _chunks.entry_points(self._GATES, batch == 1)

    def _workspace(self, batch, steps):
        """The workspace of a (batch, steps) chunk run as one kernel call on the calling thread."""
        return self._runner_workspace(self._cached_workspaces(batch, steps), batch, steps, 0)

    def _cached_workspaces(self, batch, steps):
        """The workspaces for chunks of up to ``batch`` streams and ``steps`` steps, kept.

        A dict from a runner's number (:func:`fastrnn._threads.thread_slot`)
        to its workspace (:meth:`_runner_workspace` fills it).  A kernel call
        owns a workspace only while it runs (a pass writes everything it reads
        back), so the shards of a batch need one per runner, not one each: the
        shards a runner runs one after the other find theirs still in its
        core's cache (4-6% of a float32 LSTM's or RNN's step at B = 32 on one
        thread).  A workspace for ``batch`` streams serves any smaller chunk of
        ``steps`` steps.
        """
        key = (batch, steps)
        found = self._workspaces.pop(key, None)
        if found is None:
            found = {}
            while len(self._workspaces) >= _MAX_WORKSPACES:
                self._workspaces.popitem(last=False)
        self._workspaces[key] = found  # most recently used last
        return found

    def _runner_workspace(self, workspaces, batch, steps, slot):
        """Runner ``slot``'s workspace in ``workspaces`` (:meth:`_cached_workspaces`)."""
        ws = workspaces.get(slot)
        if ws is None:
            size = _chunks.workspace_size(batch, steps, *self._dims[1:], self._GATES,
                                          self.dtype.itemsize)
            ws = workspaces[slot] = _aligned_zeros(size, self.dtype)
        return ws

    def _shard_gradients(self, count):
        """The (count, P) buffer the shards of a wave write their gradients into."""
        grads = self._shard_grads
        if grads is None or grads.shape[0] != count:
            P = self._theta.shape[0]
            grads = self._shard_grads = _aligned_zeros(count * P, self.dtype).reshape(count, P)
        return grads

    def _sharded(self, call, parts, steps, state, last=None, largest=None):
        """Run ``call`` on every shard in ``parts``; their results, in shard order.

        ``call(k, rows, state_k, last_k, ws)`` runs the kernel on shard k of
        ``parts``: the streams ``rows`` (a slice), their contiguous initial
        state and a buffer for their final state, and the workspace of the
        runner it runs on (:func:`fastrnn._threads.run_shards`).  The final
        states are gathered into ``last`` (S, L, B, H) when given.  ``parts``
        are shards of a batch (:func:`fastrnn._threads.shards`, or some of
        them), the workspaces those of chunks of ``largest`` streams (by
        default the largest part's).
        """
        if largest is None:
            largest = max(stop - start for start, stop in parts)
        workspaces = self._cached_workspaces(largest, steps)

        def work(k):
            rows = slice(*parts[k])
            state_k = np.ascontiguousarray(state[:, :, rows])
            last_k = np.empty_like(state_k)
            ws = self._runner_workspace(workspaces, largest, steps, _threads.thread_slot())
            value = call(k, rows, state_k, last_k, ws)
            if last is not None:
                last[:, :, rows] = last_k
            return value

        return _threads.run_shards(work, len(parts))

    def _loss_and_gradient(self, x2, y2, state, last, with_gradient, sgd=None):
        """The loss of a (B, T) chunk; with ``with_gradient`` its gradient in ``_grad`` too.

        One stream (or a batch of one shard) is one kernel call; a larger
        batch runs shard by shard (:mod:`fastrnn._threads`), the loss and the
        gradient the shards' weighted sums.  ``sgd = (learning_rate, clip)``
        (batches of several shards only) also applies the update, in the same
        pass as the last of the sum.

        The shards' gradients are summed in shard order, whatever ran them, so
        the result is the same on any number of threads.  They run in waves of
        one shard per thread, each wave's gradients added to the sum before
        the next wave runs: the buffers are one gradient per thread, however
        large the batch.
        """
        B, T = x2.shape
        theta, dims, kernels = self._theta, self._dims, self._kernels(B)
        if B <= _threads.SHARD_STREAMS:  # one shard
            ws = self._workspace(B, T)
            if with_gradient:
                return kernels.value_and_grad(x2, y2, state, theta, self._grad, ws, *dims, last)
            return kernels.loss(x2, y2, state, theta, ws, *dims, last)
        parts = _threads.shards(B)
        weights = np.array([(b1 - b0) / B for b0, b1 in parts])
        largest = max(b1 - b0 for b0, b1 in parts)
        if not with_gradient:

            def loss(k, rows, state_k, last_k, ws):
                return kernels.loss(x2[rows], y2[rows], state_k, theta, ws, *dims, last_k)

            values = self._sharded(loss, parts, T, state, last, largest)
        else:
            wave = min(len(parts), _threads.get_num_threads())
            grads = self._shard_gradients(wave)
            values = []
            for first in range(0, len(parts), wave):
                group = parts[first:first + wave]

                def gradient(k, rows, state_k, last_k, ws):
                    return kernels.value_and_grad(x2[rows], y2[rows], state_k, theta, grads[k],
                                                  ws, *dims, last_k)

                values += self._sharded(gradient, group, T, state, last, largest)
                final = first + wave >= len(parts)
                self._combine(grads[:len(group)], weights[first:first + len(group)], first == 0,
                              sgd if final else None)
        return float(sum(w * v for w, v in zip(weights, values, strict=True)))

    def _combine(self, grads, weights, fresh, sgd):
        """Add shards' gradients to ``_grad`` (``fresh``: into zeros; then SGD), on the threads.

        The element ranges run at once; within each the shards are added one
        after another, in order (:func:`fastrnn._kernels.chunks.combine`).
        """
        theta, grad = self._theta, self._grad

        def part(start, stop):
            if sgd is None:
                _chunks.combine(grads, weights, grad, start, stop, fresh)
            else:
                _chunks.combine_sgd_(grads, weights, grad, theta, *sgd, start, stop, fresh)

        _threads.run_slices(part, grad.shape[0])

    def _scored(self, inputs, targets, h0, with_gradient):
        """:meth:`loss` (and with ``with_gradient`` the gradient in ``_grad``) of a chunk.

        Leaves the final state in ``last_hidden``.
        """
        value, self.last_hidden = self._loss_and_state(inputs, targets, h0, with_gradient)
        return value

    @_serialised
    def _loss_and_state(self, inputs, targets, h0=None, with_gradient=False):
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
        single, x2, y2, finite = _indices(inputs, targets, self.input_dim, self.output_dim,
                                          h0 if carried else _NO_STATE)
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

    @_serialised
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

    @_serialised
    def loss(self, inputs, targets, h0=None):
        """The loss of :meth:`train` (sum over time, mean over streams), no update.

        Like :meth:`train`, it leaves the final state in ``last_hidden``, so a
        long text can be scored chunk by chunk with the state carried.
        """
        return self._scored(inputs, targets, h0, False)

    @_serialised
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

    @_serialised
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

    @_serialised
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
        run = self._sampling(start_index, num_chars, temperature, seed, h0, top_k, top_p)
        out = _sample_buffer(run.remaining)
        for lo in range(0, out.shape[0], SAMPLE_PIECE):  # the draws a piece at a time
            run.fill(out[lo:lo + SAMPLE_PIECE])
        return out.tolist()

    def _sampling(self, start_index, num_chars, temperature, seed, h0, top_k, top_p):
        """A sampling run of :meth:`predict`'s arguments (checked here), to take in pieces.

        Its :meth:`_SamplingRun.fill` samples the next indices into a buffer,
        the state, the last index and the generator carried from one piece to
        the next: the pieces together are what one call of :meth:`predict`
        returns, and a long sample needs memory for a piece only.
        """
        start, num_chars, temperature, seed = sampling_arguments(
            self, start_index, num_chars, temperature, seed)
        top_k, top_p = sampling_filters(self, top_k, top_p)
        return _SamplingRun(self, start, num_chars, temperature, seed, self._state_in(h0, 1),
                            top_k, top_p)
