"""The model classes: validated, thin shells around the kernels.

Every public method checks and normalises its arguments once (shapes, dtypes,
ranges) before anything is written, so a rejected call changes nothing; then it
hands contiguous arrays to a kernel.  No method loops over time steps.
"""

from collections import OrderedDict

import numpy as np

from fastrnn._kernels import gated as _gated
from fastrnn._kernels import gru as _gru
from fastrnn._kernels import lstm as _lstm
from fastrnn._kernels import optimizers as _opt
from fastrnn._kernels import rnn as _rnn
from fastrnn._kernels.indices import all_finite as _all_finite
from fastrnn._kernels.indices import chunk_ok as _chunk_ok
from fastrnn._kernels.indices import index_bounds as _index_bounds
from fastrnn._kernels.sampling import sample_rnn as _sample_rnn
from fastrnn._validation import (
    _short,
    check_clip,
    check_dimension,
    check_index,
    check_learning_rate,
    check_num_chars,
    check_seed,
    check_temperature,
    entropy_seed,
    float_array,
    hidden_state,
    index_array,
    paired_indices,
)

__all__ = ["RNN", "GPT", "LSTM", "GRU", "MODELS"]

_NO_STATE = np.empty(0)


def _indices(inputs, targets, input_dim, output_dim, state=_NO_STATE):
    """Validated ``(single, x2, y2, state_finite)``: the (B, T) int64 indices of a chunk.

    ``single`` tells whether the inputs were one (T,) sequence.  The common
    case, what a training loop passes on every step, costs one kernel call:
    two C-contiguous int64 arrays of one shape, whose ranges are checked
    together with ``state`` (a C-contiguous float64 array, 1-D or 2-D, empty
    for none); ``state_finite`` is True only when that call found the state
    finite.  Anything else, or a failed check, goes through the full
    validation, which converts what it can and names what is wrong (the
    caller then validates the state itself).
    """
    if (type(inputs) is np.ndarray and type(targets) is np.ndarray
            and inputs.dtype == np.int64 and targets.dtype == np.int64
            and inputs.shape == targets.shape and 1 <= inputs.ndim <= 2 and inputs.size
            and inputs.flags.c_contiguous and targets.flags.c_contiguous
            and _chunk_ok(inputs, targets, input_dim, output_dim, state)):
        if inputs.ndim == 1:
            return True, inputs[None], targets[None], True
        return False, inputs, targets, True
    xs, ys = paired_indices(inputs, targets, input_dim, output_dim, _index_bounds)
    T = xs.shape[-1]
    return xs.ndim == 1, xs.reshape(-1, T), ys.reshape(-1, T), False


def _sample_buffer(num_chars):
    """The int64 array :meth:`predict` fills, or a ValueError naming a length that cannot fit."""
    try:
        return np.zeros(num_chars, dtype=np.int64)
    except (MemoryError, ValueError, OverflowError):  # beyond NumPy's largest array, or int64
        raise ValueError(f"num_chars={num_chars:,} is more than memory can hold "
                         f"({num_chars * 8 / 2**30:,.0f} GiB for the indices alone)") from None


# Workspaces kept per model, one per distinct (B, T); a trainer uses two
# (training chunks, validation chunks), an interactive user a few more.
_MAX_WORKSPACES = 4


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
        model._assign(self.name, value)


def _aligned_zeros(n):
    """A zeroed float64 vector of length n whose data starts on a 64-byte boundary.

    The kernels stream rows of the recurrent weights from L2 on every time
    step; misaligned rows make those loops ~25% slower.
    """
    buf = np.zeros(n + 8)
    start = (-buf.ctypes.data % 64) // 8
    return buf[start:start + n]


def _flat_views(shapes, layout, flat):
    """Views of ``flat`` with the given shapes, stored in ``layout`` order."""
    views = {}
    offset = 0
    for name in layout:
        size = int(np.prod(shapes[name]))
        views[name] = flat[offset:offset + size].reshape(shapes[name])
        offset += size
    return OrderedDict((name, views[name]) for name in shapes)


# Larger models would not fit in memory (2**31 float64 parameters are 16 GiB,
# and the optimizers keep as many again): refuse them with a clear error
# before anything is allocated or laid out.
_MAX_PARAMETERS = 2**31


def _check_size(count):
    if count > _MAX_PARAMETERS:
        raise ValueError(
            f"the model would have {count:,} parameters ({count * 8 / 2**30:,.0f} GiB), more "
            f"than the {_MAX_PARAMETERS:,} fastrnn allows: choose a smaller hidden_dim, "
            f"num_layers or vocabulary"
        )


class _Model:
    """What every model shares: flat parameter and gradient storage, workspaces.

    Subclasses define ``_shapes()`` (an ordered mapping of parameter names to
    shapes, the order of :meth:`parameters`), ``_LAYOUT`` (the order of the
    same arrays in the flat vectors, which the kernels rely on) and
    ``_new_workspace(batch, steps)``.
    """

    def _init_storage(self):
        shapes = self._shapes()
        total = sum(int(np.prod(s)) for s in shapes.values())
        self._theta = _aligned_zeros(total)  # every parameter, one vector
        self._grad = _aligned_zeros(total)  # their gradients, same layout
        self._params = _flat_views(shapes, self._LAYOUT, self._theta)
        self._grads = _flat_views(shapes, self._LAYOUT, self._grad)
        self._workspaces = OrderedDict()

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
        """Every parameter in one live float64 vector, shape (n,).

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
        target[...] = float_array(name, value, target.shape)

    def _workspace(self, batch, steps):
        key = (batch, steps)
        ws = self._workspaces.pop(key, None)
        if ws is None:
            ws = self._new_workspace(batch, steps)
            while len(self._workspaces) >= _MAX_WORKSPACES:
                self._workspaces.popitem(last=False)
        self._workspaces[key] = ws  # most recently used last
        return ws


class RNN(_Model):
    """A vanilla tanh RNN with a softmax output, compiled with Numba.

    The drop-in replacement for the classic min-char-rnn ``GPT`` class: the same
    parameters, the same methods, the same numbers.

    Parameters
    ----------
    input_dim : int
        I, the number of input symbols (inputs are indices in [0, I)).
    hidden_dim : int
        H, the size of the hidden state.
    output_dim : int
        O, the number of output symbols.
    seed : int, optional
        Seed in [0, 2**32 - 1] for the initial weights; ``None`` draws fresh ones.

    Attributes
    ----------
    Wxh : ndarray, shape (H, I)
    Whh : ndarray, shape (H, H)
    Why : ndarray, shape (O, H)
        Weights, initialised as standard normal * 0.01.
    bh : ndarray, shape (H, 1)
    by : ndarray, shape (O, 1)
        Biases, initialised to zero.
    last_hidden : ndarray or None
        The final hidden state of the last :meth:`train`, :meth:`gradients` or
        :meth:`loss` call, shape (H,) for one sequence or (B, H) for a batch;
        pass it as ``h0`` to the next call to carry the state across chunks
        (truncated BPTT).

    Notes
    -----
    The parameter attributes are live views into one float64 vector: in-place
    writes (``m.Whh[...] = w``) are seen by the next call, and assigning an
    array of the right shape (``m.Whh = w``) copies its values in.
    """

    # Storage order in the flat vectors; must match fastrnn._kernels.rnn.params.
    _LAYOUT = ("Whh", "Why", "Wxh", "bh", "by")

    Wxh = _Parameter()
    Whh = _Parameter()
    Why = _Parameter()
    bh = _Parameter()
    by = _Parameter()

    def __init__(self, input_dim, hidden_dim, output_dim, *, seed=None):
        self.input_dim = check_dimension("input_dim", input_dim)
        self.hidden_dim = check_dimension("hidden_dim", hidden_dim)
        self.output_dim = check_dimension("output_dim", output_dim)
        rng = np.random.default_rng(check_seed("seed", seed))
        I, H, O = self.input_dim, self.hidden_dim, self.output_dim
        _check_size(H * I + H * H + O * H + H + O)
        self._init_storage()
        # The same draws, in the same order, as fastrnn.reference.RNN.
        self.Wxh = rng.standard_normal((hidden_dim, input_dim)) * 0.01
        self.Whh = rng.standard_normal((hidden_dim, hidden_dim)) * 0.01
        self.Why = rng.standard_normal((output_dim, hidden_dim)) * 0.01
        self.last_hidden = None

    def __repr__(self):
        return (f"RNN(input_dim={self.input_dim}, hidden_dim={self.hidden_dim}, "
                f"output_dim={self.output_dim})")

    def _shapes(self):
        I, H, O = self.input_dim, self.hidden_dim, self.output_dim
        return OrderedDict(Wxh=(H, I), Whh=(H, H), Why=(O, H), bh=(H, 1), by=(O, 1))

    def _new_workspace(self, batch, steps):
        # One flat scratch vector, carved by the kernels (fastrnn._kernels.rnn.workspace).
        return _aligned_zeros(_rnn.workspace_size(batch, steps, self.hidden_dim, self.output_dim))

    def _dims(self):
        return self.input_dim, self.hidden_dim, self.output_dim

    def forward(self, inputs, h0=None):
        """Run the model over a sequence or a batch of sequences.

        Parameters
        ----------
        inputs : array_like of int, shape (T,) or (B, T)
            Input indices in [0, input_dim); a 2-D array is B independent streams.
        h0 : array_like, shape (H,), (H, 1) or (B, H), optional
            Initial hidden state(s); zeros by default.

        Returns
        -------
        xs : ndarray of int64, shape (T,) or (B, T)
            The inputs as indices.
        hs : ndarray, shape (T+1, H) or (B, T+1, H)
            Hidden states; ``hs[0]`` (``hs[:, 0]``) is h0.
        ps : ndarray, shape (T, O) or (B, T, O)
            Softmax probabilities of the next index at each step.
        """
        xs = index_array("inputs", inputs, self.input_dim, _index_bounds)
        x2 = xs.reshape(-1, xs.shape[-1])
        B, T = x2.shape
        h = hidden_state(h0, B, self.hidden_dim, all_finite=_all_finite)
        hs = np.empty((B, T + 1, self.hidden_dim))
        ps = np.empty((B, T, self.output_dim))
        _rnn.forward_probs(x2, h, self._theta, self._workspace(B, T), *self._dims(), hs, ps)
        if xs.ndim == 1:
            return xs, hs[0], ps[0]
        return xs, hs, ps

    def backward(self, xs, hs, ps, targets):
        """Exact gradients of the loss by backpropagation through time.

        The loss is the sum over t of ``-log ps[t, targets[t]]``; for a batch,
        the mean over streams of that sum.

        Parameters
        ----------
        xs : array_like of int, shape (T,) or (B, T)
            Input indices, as returned by :meth:`forward`.
        hs : array_like, shape (T+1, H) or (B, T+1, H)
            Hidden states from :meth:`forward`.
        ps : array_like, shape (T, O) or (B, T, O)
            Probabilities from :meth:`forward`.
        targets : array_like of int, same shape as ``xs``
            Target indices in [0, output_dim).

        Returns
        -------
        dWxh, dWhh, dWhy, dbh, dby : ndarray
            New arrays in the shapes of the parameters.
        """
        xs, ys = paired_indices(
            xs, targets, self.input_dim, self.output_dim, _index_bounds, names=("xs", "targets")
        )
        lead = xs.shape[:-1]
        T = xs.shape[-1]
        hs = np.ascontiguousarray(float_array("hs", hs, lead + (T + 1, self.hidden_dim)))
        ps = np.ascontiguousarray(float_array("ps", ps, lead + (T, self.output_dim)))
        x2, y2 = xs.reshape(-1, T), ys.reshape(-1, T)
        B = x2.shape[0]
        _rnn.backward_from(x2, y2, hs.reshape(B, T + 1, -1), ps.reshape(B, T, -1), self._theta,
                           self._grad, self._workspace(B, T), *self._dims())
        return tuple(g.copy() for g in self._grads.values())

    def update(self, dWxh, dWhh, dWhy, dbh, dby, learning_rate):
        """In-place SGD on every parameter: ``p -= learning_rate * g``.

        Parameters
        ----------
        dWxh, dWhh, dWhy, dbh, dby : array_like
            Gradients in the shapes of the parameters.
        learning_rate : float
            Finite and positive.
        """
        learning_rate = check_learning_rate(learning_rate)
        grads = {}
        for name, g in zip(self._params, (dWxh, dWhh, dWhy, dbh, dby), strict=True):
            grads[name] = float_array("d" + name, g, self._params[name].shape)
        for name, g in grads.items():
            self._grads[name][...] = g
        _opt.sgd_(self._theta, self._grad, learning_rate, 0.0)

    def _chunk(self, inputs, targets, h0):
        # A carried state (the previous call's last_hidden) is checked together
        # with the indices, in the same kernel call.
        checked = (type(h0) is np.ndarray and h0.dtype == np.float64 and 1 <= h0.ndim <= 2
                   and h0.flags.c_contiguous)
        single, x2, y2, finite = _indices(inputs, targets, self.input_dim, self.output_dim,
                                          h0 if checked else _NO_STATE)
        B, H = x2.shape[0], self.hidden_dim
        if checked and finite:
            if h0.shape == (B, H):
                return single, x2, y2, h0
            if B == 1 and h0.shape == (H,):
                return single, x2, y2, h0[None]
        return single, x2, y2, hidden_state(h0, B, H, all_finite=_all_finite)

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
        single, x2, y2, h = self._chunk(inputs, targets, h0)
        h_last = np.empty_like(h)
        loss = _rnn.value_and_grad(x2, y2, h, self._theta, self._grad,
                                   self._workspace(*x2.shape), *self._dims(), h_last)
        self.last_hidden = h_last[0] if single else h_last
        return float(loss), dict(self._grads)

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
        h0 : array_like, shape (H,), (H, 1) or (B, H), optional
            Initial hidden state(s), e.g. the previous call's ``last_hidden``.

        Returns
        -------
        float
            The loss before the update (sum over time, mean over streams).
        """
        single, x2, y2, h = self._chunk(inputs, targets, h0)
        learning_rate = check_learning_rate(learning_rate)
        clip = check_clip(clip)
        h_last = np.empty_like(h)
        loss = _rnn.train_step(x2, y2, h, self._theta, self._grad, self._workspace(*x2.shape),
                               *self._dims(), h_last, learning_rate, 0.0 if clip is None else clip)
        self.last_hidden = h_last[0] if single else h_last
        return float(loss)

    def loss(self, inputs, targets, h0=None):
        """The loss of :meth:`train` (sum over time, mean over streams), no update.

        Like :meth:`train`, it leaves the final hidden state in ``last_hidden``,
        so a long text can be scored chunk by chunk with the state carried.
        """
        single, x2, y2, h = self._chunk(inputs, targets, h0)
        h_last = np.empty_like(h)
        loss = _rnn.loss(x2, y2, h, self._theta, self._workspace(*x2.shape), *self._dims(), h_last)
        self.last_hidden = h_last[0] if single else h_last
        return float(loss)

    def predict(self, start_index, num_chars, *, temperature=1.0, seed=None, h0=None):
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
        h0 : array_like, shape (H,) or (H, 1), optional
            Initial hidden state; zeros by default.

        Returns
        -------
        list of int
        """
        if self.output_dim > self.input_dim:
            raise ValueError(
                f"predict feeds each sampled index back as input, which needs "
                f"output_dim <= input_dim, got {self.output_dim} > {self.input_dim}"
            )
        start = check_index("start_index", start_index, self.input_dim)
        num_chars = check_num_chars(num_chars)
        temperature = check_temperature(temperature)
        seed = entropy_seed(check_seed("seed", seed))
        h = _aligned_zeros(self.hidden_dim)
        h[:] = hidden_state(h0, 1, self.hidden_dim, all_finite=_all_finite)[0]
        out = _sample_buffer(num_chars)
        p = self._params
        H, O = self.hidden_dim, self.output_dim
        _sample_rnn(start, h, p["Wxh"], p["Whh"], p["bh"], p["Why"], p["by"], temperature,
                    seed, out, _aligned_zeros(H), _aligned_zeros(O), _aligned_zeros(O))
        return out.tolist()

    # -- the state as one array, for trainers and checkpoints -----------------

    def zero_state(self, batch):
        """The zero state of ``batch`` streams, (B, H)."""
        return np.zeros((check_dimension("batch", batch), self.hidden_dim))

    def pack_state(self, state):
        """A batch state as one array: itself, (B, H)."""
        return self.unpack_state(state)

    def unpack_state(self, array):
        """The inverse of :meth:`pack_state`: a checked (B, H) copy."""
        arr = float_array("state", array)
        if arr.ndim != 2 or arr.shape[1] != self.hidden_dim:
            raise ValueError(f"state has shape {arr.shape}, expected (B, {self.hidden_dim})")
        return np.array(arr, order="C")

    def stream_state(self, state, index):
        """Stream ``index`` of a batch state, as ``h0`` for :meth:`predict`."""
        state = self.unpack_state(state)
        return state[check_index("index", index, state.shape[0])]


GPT = RNN


def _layered(name, value, layers, batch, hidden_dim):
    """One (L, B, H) state array (a fresh C-contiguous copy) from ``value``.

    ``value`` has shape (L, H) (the same state for every stream) or (L, B, H).
    """
    arr = float_array(name, value)
    if arr.shape == (layers, hidden_dim):
        out = np.empty((layers, batch, hidden_dim))
        out[:] = arr[:, None, :]
    elif arr.shape == (layers, batch, hidden_dim):
        out = np.array(arr, order="C")
    else:
        raise ValueError(
            f"{name} has shape {arr.shape}, expected ({layers}, {hidden_dim}) or "
            f"({layers}, {batch}, {hidden_dim})"
        )
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} must be finite, got non-finite values")
    return out


class _Gated(_Model):
    """The shared shell of :class:`LSTM` and :class:`GRU` (PyTorch's parameters).

    Subclasses set ``_GATES`` (G) and handle their state and kernels
    (``_initial``, ``_run``, ``_forward_probs``, ``_sample``, ``_unbatch`` and
    the public ``zero_state``, ``pack_state``, ``unpack_state``, ``stream_state``).
    """

    _GATES = None

    def __init__(self, input_dim, hidden_dim, output_dim, *, num_layers=1, seed=None):
        self.input_dim = check_dimension("input_dim", input_dim)
        self.hidden_dim = check_dimension("hidden_dim", hidden_dim)
        self.output_dim = check_dimension("output_dim", output_dim)
        self.num_layers = check_dimension("num_layers", num_layers)
        rng = np.random.default_rng(check_seed("seed", seed))
        I, H, O, L, G = (self.input_dim, self.hidden_dim, self.output_dim, self.num_layers,
                         self._GATES)
        _check_size(G * H * (I + H + 2) + (L - 1) * G * H * (2 * H + 2) + O * H + O)
        # Storage order; must match fastrnn._kernels.gated.layer_params.
        self._LAYOUT = (
            tuple(f"weight_hh_l{k}" for k in range(L))
            + tuple(f"weight_ih_l{k}" for k in range(1, L))
            + ("Why", "weight_ih_l0")
            + tuple(f"bias_{s}_l{k}" for k in range(L) for s in ("ih", "hh"))
            + ("by",)
        )
        self._init_storage()
        # As torch initialises nn.LSTM/nn.GRU and nn.Linear(H, O): every entry
        # uniform in [-1/sqrt(H), 1/sqrt(H)]; drawn in the order of parameters().
        bound = 1.0 / np.sqrt(self.hidden_dim)
        for p in self._params.values():
            p[...] = rng.uniform(-bound, bound, p.shape)
        self.last_hidden = None

    def __repr__(self):
        return (f"{type(self).__name__}(input_dim={self.input_dim}, hidden_dim={self.hidden_dim}, "
                f"output_dim={self.output_dim}, num_layers={self.num_layers})")

    def _shapes(self):
        I, H, O, L, G = (self.input_dim, self.hidden_dim, self.output_dim, self.num_layers,
                         self._GATES)
        shapes = OrderedDict()
        for k in range(L):
            shapes[f"weight_ih_l{k}"] = (G * H, I if k == 0 else H)
            shapes[f"weight_hh_l{k}"] = (G * H, H)
            shapes[f"bias_ih_l{k}"] = (G * H,)
            shapes[f"bias_hh_l{k}"] = (G * H,)
        shapes["Why"] = (O, H)
        shapes["by"] = (O, 1)
        return shapes

    Why = _Parameter()
    by = _Parameter()

    def _new_workspace(self, batch, steps):
        return _aligned_zeros(_gated.workspace_size(
            batch, steps, self.hidden_dim, self.output_dim, self.num_layers, self._GATES))

    def _dims(self):
        return self.input_dim, self.hidden_dim, self.output_dim, self.num_layers

    def _chunk(self, inputs, targets, h0):
        single, x2, y2, _ = _indices(inputs, targets, self.input_dim, self.output_dim)
        return single, x2, y2, self._initial(h0, x2.shape[0])

    def forward(self, inputs, h0=None):
        """Run the model over a sequence or a batch of sequences (no state is kept).

        Parameters
        ----------
        inputs : array_like of int, shape (T,) or (B, T)
            Input indices in [0, input_dim).
        h0 : optional
            Initial state (see the class docstring); zeros by default.

        Returns
        -------
        xs : ndarray of int64, shape (T,) or (B, T)
            The inputs as indices.
        hs : ndarray, shape (T+1, H) or (B, T+1, H)
            The top layer's outputs; ``hs[0]`` (``hs[:, 0]``) is its initial h.
        ps : ndarray, shape (T, O) or (B, T, O)
            Softmax probabilities of the next index at each step.
        """
        xs = index_array("inputs", inputs, self.input_dim, _index_bounds)
        x2 = xs.reshape(-1, xs.shape[-1])
        B, T = x2.shape
        state = self._initial(h0, B)
        hs = np.empty((B, T + 1, self.hidden_dim))
        ps = np.empty((B, T, self.output_dim))
        self._forward_probs(x2, state, hs, ps)
        if xs.ndim == 1:
            return xs, hs[0], ps[0]
        return xs, hs, ps

    def gradients(self, inputs, targets, h0=None):
        """The loss and its gradients, without an update.

        Parameters are those of :meth:`train`.

        Returns
        -------
        loss : float
            As returned by :meth:`loss`.
        grads : dict[str, ndarray]
            Gradients by parameter name (the names of :meth:`parameters`);
            the model's gradient buffers, overwritten by the next call.
        """
        single, x2, y2, state = self._chunk(inputs, targets, h0)
        loss = self._run("grad", x2, y2, state)
        self.last_hidden = self._unbatch(self._last, single)
        return float(loss), dict(self._grads)

    def train(self, inputs, targets, learning_rate=0.1, *, clip=5.0, h0=None):
        """One step of truncated BPTT with SGD: forward, backward, clip, update.

        Parameters
        ----------
        inputs, targets : array_like of int, shape (T,) or (B, T)
            Input and target indices.
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
        learning_rate = check_learning_rate(learning_rate)
        clip = check_clip(clip)
        loss = self._run("train", x2, y2, state, learning_rate, 0.0 if clip is None else clip)
        self.last_hidden = self._unbatch(self._last, single)
        return float(loss)

    def loss(self, inputs, targets, h0=None):
        """The loss of :meth:`train` (sum over time, mean over streams), no update.

        It leaves the final state in ``last_hidden``, as :meth:`train` does.
        """
        single, x2, y2, state = self._chunk(inputs, targets, h0)
        loss = self._run("loss", x2, y2, state)
        self.last_hidden = self._unbatch(self._last, single)
        return float(loss)

    def predict(self, start_index, num_chars, *, temperature=1.0, seed=None, h0=None):
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

        Returns
        -------
        list of int
        """
        if self.output_dim > self.input_dim:
            raise ValueError(
                f"predict feeds each sampled index back as input, which needs "
                f"output_dim <= input_dim, got {self.output_dim} > {self.input_dim}"
            )
        start = check_index("start_index", start_index, self.input_dim)
        num_chars = check_num_chars(num_chars)
        temperature = check_temperature(temperature)
        seed = entropy_seed(check_seed("seed", seed))
        state = self._initial(h0, 1)
        out = _sample_buffer(num_chars)
        self._sample(start, state, temperature, seed, out)
        return out.tolist()

    def to_torch(self):
        """Return ``(torch.nn.LSTM or GRU, torch.nn.Linear)`` with these weights.

        See :func:`fastrnn.interop.to_torch`; needs PyTorch.
        """
        from fastrnn.interop import to_torch

        return to_torch(self)

    def _aligned_state(self, state):
        """An aligned (L, H) copy of a (L, 1, H) state."""
        L, H = self.num_layers, self.hidden_dim
        h = _aligned_zeros(L * H).reshape(L, H)
        h[...] = state[:, 0]
        return h


class LSTM(_Gated):
    """A stack of LSTM layers with a softmax output, compiled with Numba.

    The parameters have PyTorch's names, shapes and gate order (i, f, g, o),
    so weights move to and from ``torch.nn.LSTM`` + ``torch.nn.Linear``
    without reshaping (see :mod:`fastrnn.interop`).

    Parameters
    ----------
    input_dim : int
        I, the number of input symbols (inputs are indices in [0, I)).
    hidden_dim : int
        H, the size of each layer's state.
    output_dim : int
        O, the number of output symbols.
    num_layers : int, default 1
        L; layer 0 reads the one-hot input, layer k > 0 layer k-1's h.
    seed : int, optional
        Seed in [0, 2**32 - 1] for the initial weights; ``None`` draws fresh ones.

    Attributes
    ----------
    weight_ih_l{k} : (4H, I) for k = 0, (4H, H) above; weight_hh_l{k} : (4H, H)
    bias_ih_l{k}, bias_hh_l{k} : (4H,)
        Layer k's parameters (read them through :meth:`parameters`).
    Why : ndarray, shape (O, H)
    by : ndarray, shape (O, 1)
        The output layer.  Every parameter starts uniform in
        [-1/sqrt(H), 1/sqrt(H)], as in PyTorch.
    last_hidden : tuple of ndarray or None
        ``(h, c)`` after the last :meth:`train`, :meth:`gradients` or
        :meth:`loss` call, each (L, H) for one sequence or (L, B, H) for a
        batch; pass it as ``h0`` to carry the state across chunks.

    Notes
    -----
    ``h0`` everywhere is None (zeros) or a pair ``(h, c)``, each of shape
    (L, H) (the same state for every stream) or (L, B, H).
    """

    _GATES = 4

    def _initial(self, h0, batch):
        L, H = self.num_layers, self.hidden_dim
        if h0 is None:
            return np.zeros((L, batch, H)), np.zeros((L, batch, H))
        if isinstance(h0, np.ndarray) or not isinstance(h0, (tuple, list)) or len(h0) != 2:
            raise ValueError(f"h0 of an LSTM must be a pair (h, c), got {_short(h0)}")
        return (_layered("h0[0] (h)", h0[0], L, batch, H),
                _layered("h0[1] (c)", h0[1], L, batch, H))

    def _run(self, op, x2, y2, state, learning_rate=0.0, clip=0.0):
        h0, c0 = state
        h_last, c_last = np.empty_like(h0), np.empty_like(c0)
        ws = self._workspace(*x2.shape)
        if op == "loss":
            loss = _lstm.loss(x2, y2, h0, c0, self._theta, ws, *self._dims(), h_last, c_last)
        elif op == "grad":
            loss = _lstm.value_and_grad(x2, y2, h0, c0, self._theta, self._grad, ws,
                                        *self._dims(), h_last, c_last)
        else:
            loss = _lstm.train_step(x2, y2, h0, c0, self._theta, self._grad, ws, *self._dims(),
                                    h_last, c_last, learning_rate, clip)
        self._last = (h_last, c_last)
        return loss

    def _forward_probs(self, x2, state, hs, ps):
        _lstm.forward_probs(x2, state[0], state[1], self._theta, self._workspace(*x2.shape),
                            *self._dims(), hs, ps)

    @staticmethod
    def _unbatch(state, single):
        h, c = state
        return (h[:, 0].copy(), c[:, 0].copy()) if single else (h, c)

    def _sample(self, start, state, temperature, seed, out):
        H, O = self.hidden_dim, self.output_dim
        h, c = self._aligned_state(state[0]), self._aligned_state(state[1])
        _lstm.sample(start, h, c, self._theta, *self._dims(), temperature, seed, out,
                     _aligned_zeros(4 * H), _aligned_zeros(H), _aligned_zeros(O),
                     _aligned_zeros(O))

    # -- the state as one array, for trainers and checkpoints -----------------

    def zero_state(self, batch):
        """The zero state of ``batch`` streams: ``(h, c)``, each (L, B, H)."""
        return self._initial(None, check_dimension("batch", batch))

    def pack_state(self, state):
        """A batch state ``(h, c)`` as one array of shape (2, L, B, H)."""
        if not isinstance(state, tuple) or len(state) != 2:
            raise ValueError(f"state must be a pair (h, c), got {_short(state)}")
        return self._packed(np.stack([float_array("h", state[0]), float_array("c", state[1])]))

    def unpack_state(self, array):
        """The inverse of :meth:`pack_state`."""
        array = self._packed(array)
        return array[0].copy(), array[1].copy()

    def _packed(self, array):
        arr = float_array("state", array)
        L, H = self.num_layers, self.hidden_dim
        if arr.ndim != 4 or arr.shape[:2] != (2, L) or arr.shape[3] != H:
            raise ValueError(f"state has shape {arr.shape}, expected (2, {L}, B, {H})")
        return arr

    def stream_state(self, state, index):
        """Stream ``index`` of a batch state, as ``h0`` for :meth:`predict`."""
        h, c = self.unpack_state(self.pack_state(state))
        index = check_index("index", index, h.shape[1])
        return h[:, index], c[:, index]


class GRU(_Gated):
    """A stack of GRU layers with a softmax output, compiled with Numba.

    The parameters have PyTorch's names, shapes and gate order (r, z, n) and
    PyTorch's formulation ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``,
    so weights move to and from ``torch.nn.GRU`` + ``torch.nn.Linear``
    without reshaping (see :mod:`fastrnn.interop`).

    Parameters
    ----------
    input_dim, hidden_dim, output_dim : int
        I, H and O, as for :class:`LSTM`.
    num_layers : int, default 1
    seed : int, optional

    Attributes
    ----------
    weight_ih_l{k} : (3H, I) for k = 0, (3H, H) above; weight_hh_l{k} : (3H, H)
    bias_ih_l{k}, bias_hh_l{k} : (3H,)
    Why : ndarray, shape (O, H)
    by : ndarray, shape (O, 1)
    last_hidden : ndarray or None
        The final state, (L, H) for one sequence or (L, B, H) for a batch.

    Notes
    -----
    ``h0`` everywhere is None (zeros) or an array of shape (L, H) (the same
    state for every stream) or (L, B, H).
    """

    _GATES = 3

    def _initial(self, h0, batch):
        L, H = self.num_layers, self.hidden_dim
        if h0 is None:
            return np.zeros((L, batch, H))
        return _layered("h0", h0, L, batch, H)

    def _run(self, op, x2, y2, h0, learning_rate=0.0, clip=0.0):
        h_last = np.empty_like(h0)
        ws = self._workspace(*x2.shape)
        if op == "loss":
            loss = _gru.loss(x2, y2, h0, self._theta, ws, *self._dims(), h_last)
        elif op == "grad":
            loss = _gru.value_and_grad(x2, y2, h0, self._theta, self._grad, ws, *self._dims(),
                                       h_last)
        else:
            loss = _gru.train_step(x2, y2, h0, self._theta, self._grad, ws, *self._dims(),
                                   h_last, learning_rate, clip)
        self._last = h_last
        return loss

    def _forward_probs(self, x2, h0, hs, ps):
        _gru.forward_probs(x2, h0, self._theta, self._workspace(*x2.shape), *self._dims(), hs,
                           ps)

    @staticmethod
    def _unbatch(state, single):
        return state[:, 0].copy() if single else state

    def _sample(self, start, state, temperature, seed, out):
        H, O = self.hidden_dim, self.output_dim
        _gru.sample(start, self._aligned_state(state), self._theta, *self._dims(), temperature,
                    seed, out, _aligned_zeros(3 * H), _aligned_zeros(3 * H), _aligned_zeros(H),
                    _aligned_zeros(O), _aligned_zeros(O))

    def zero_state(self, batch):
        """The zero state of ``batch`` streams, (L, B, H)."""
        return self._initial(None, check_dimension("batch", batch))

    def pack_state(self, state):
        """A batch state as one array: itself, (L, B, H)."""
        return self.unpack_state(state)

    def unpack_state(self, array):
        """The inverse of :meth:`pack_state`: a checked (L, B, H) copy."""
        arr = float_array("state", array)
        L, H = self.num_layers, self.hidden_dim
        if arr.ndim != 3 or arr.shape[0] != L or arr.shape[2] != H:
            raise ValueError(f"state has shape {arr.shape}, expected ({L}, B, {H})")
        return np.array(arr, order="C")

    def stream_state(self, state, index):
        """Stream ``index`` of a batch state, as ``h0`` for :meth:`predict`."""
        state = self.unpack_state(state)
        return state[:, check_index("index", index, state.shape[1])]


# The models a training run can build, by the name its configuration and
# checkpoints use.
MODELS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
