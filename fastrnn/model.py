"""The model classes: the tanh RNN, the LSTM and the GRU.

Each supplies only what is its own: its parameter layout and initial
weights, and the public form of its state.  Every method they share
(``forward``, ``loss``, ``gradients``, ``train``, ``predict``, the state
methods) is defined once, in :class:`fastrnn._base.Model`.
"""

from collections import OrderedDict

import numpy as np

from fastrnn._base import Model, Parameter
from fastrnn._kernels.checks import all_finite as _all_finite
from fastrnn._kernels.checks import index_bounds as _index_bounds
from fastrnn._locks import serialised
from fastrnn._optional import import_torch
from fastrnn._validation import (
    check_learning_rate,
    float_array,
    hidden_state,
    kernel_array,
    layered_state,
    paired_indices,
    short_repr,
)
from fastrnn.optim import sgd_step

__all__ = ["RNN", "GPT", "LSTM", "GRU", "MODELS"]


class RNN(Model):
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
    dtype : {"float64", "float32"}, np.float64, np.float32 or a numpy dtype
        What the model computes in (its parameters, gradients, states and
        outputs).  float64, the default, is the exact reference; float32
        halves the memory traffic and doubles the SIMD width.  The initial
        weights are the float64 draws rounded, so the two agree to float32's
        precision for the same seed.

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
    ``h0`` everywhere is None (zeros) or an array of shape (H,) or (H, 1) (the
    same state for every stream) or (B, H).

    The parameter attributes are live views into one vector of the model's
    ``dtype`` (an attribute, a numpy dtype): in-place
    writes (``m.Whh[...] = w``) are seen by the next call, and assigning an
    array of the right shape (``m.Whh = w``) copies its values in.
    """

    _GATES = 1
    _PACKED_FROM = 2  # the public state (B, H) drops the S and L axes

    Wxh = Parameter()
    Whh = Parameter()
    Why = Parameter()
    bh = Parameter()
    by = Parameter()

    def __init__(self, input_dim, hidden_dim, output_dim, *, seed=None, dtype="float64"):
        rng = self._setup(input_dim, hidden_dim, output_dim, 1, seed, dtype)
        # The same draws, in the same order, as fastrnn.reference.RNN.
        self.Wxh = rng.standard_normal((hidden_dim, input_dim)) * 0.01
        self.Whh = rng.standard_normal((hidden_dim, hidden_dim)) * 0.01
        self.Why = rng.standard_normal((output_dim, hidden_dim)) * 0.01

    def __repr__(self):
        return (f"RNN(input_dim={self.input_dim}, hidden_dim={self.hidden_dim}, "
                f"output_dim={self.output_dim}{self._repr_dtype()})")

    def _parameter_count(self):
        I, H, O = self.input_dim, self.hidden_dim, self.output_dim
        return H * I + H * H + O * H + H + O

    def _shapes(self):
        I, H, O = self.input_dim, self.hidden_dim, self.output_dim
        return OrderedDict(Wxh=(H, I), Whh=(H, H), Why=(O, H), bh=(H, 1), by=(O, 1))

    @staticmethod
    def _layout():
        return "Whh", "Why", "Wxh", "bh", "by"  # must match fastrnn._kernels.rnn.params

    def _state_in(self, h0, batch):
        h = hidden_state(h0, batch, self.hidden_dim, all_finite=_all_finite, dtype=self.dtype)
        return h.reshape(self._state_shape(batch))

    @staticmethod
    def _public_state(parts):
        return parts[0, 0]

    def _state_out(self, state, single):
        # What every training step calls: the general form's work in one index.
        return state[0, 0, 0] if single else state[0, 0]

    @serialised
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
        hs = kernel_array(float_array("hs", hs, lead + (T + 1, self.hidden_dim), self.dtype),
                          self.dtype)
        ps = kernel_array(float_array("ps", ps, lead + (T, self.output_dim), self.dtype),
                          self.dtype)
        x2, y2 = xs.reshape(-1, T), ys.reshape(-1, T)
        B = x2.shape[0]
        self._kernels(B).backward_from(x2, y2, hs.reshape(B, T + 1, -1), ps.reshape(B, T, -1),
                                       self._theta, self._grad, self._workspace(B, T),
                                       *self._dims[:3])
        return tuple(g.copy() for g in self._grads.values())

    @serialised
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
            grads[name] = float_array("d" + name, g, self._params[name].shape, self.dtype)
        for name, g in grads.items():
            self._grads[name][...] = g
        sgd_step(self._theta, self._grad, learning_rate, 0.0)


GPT = RNN


class _Gated(Model):
    """The shared shell of :class:`LSTM` and :class:`GRU`: PyTorch's parameters.

    Subclasses set ``_GATES`` (G) and ``_STATE_ARRAYS``, and convert their
    state (``_state_in``, ``_public_state``).
    """

    def __init__(self, input_dim, hidden_dim, output_dim, *, num_layers=1, seed=None,
                 dtype="float64"):
        rng = self._setup(input_dim, hidden_dim, output_dim, num_layers, seed, dtype)
        # As torch initialises nn.LSTM/nn.GRU and nn.Linear(H, O): every entry
        # uniform in [-1/sqrt(H), 1/sqrt(H)]; drawn in the order of parameters().
        bound = 1.0 / np.sqrt(self.hidden_dim)
        for p in self._params.values():
            p[...] = rng.uniform(-bound, bound, p.shape)

    def __repr__(self):
        return (f"{type(self).__name__}(input_dim={self.input_dim}, hidden_dim={self.hidden_dim}, "
                f"output_dim={self.output_dim}, num_layers={self.num_layers}"
                f"{self._repr_dtype()})")

    def _parameter_count(self):
        I, H, O, L, G = (self.input_dim, self.hidden_dim, self.output_dim, self.num_layers,
                         self._GATES)
        return G * H * (I + H + 2) + (L - 1) * G * H * (2 * H + 2) + O * H + O

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

    def _layout(self):
        # Must match fastrnn._kernels.gated.layer_params.
        L = self.num_layers
        return (tuple(f"weight_hh_l{k}" for k in range(L))
                + tuple(f"weight_ih_l{k}" for k in range(1, L))
                + ("Why", "weight_ih_l0")
                + tuple(f"bias_{s}_l{k}" for k in range(L) for s in ("ih", "hh"))
                + ("by",))

    Why = Parameter()
    by = Parameter()

    def _layered(self, name, value, batch):
        return layered_state(name, value, self.num_layers, batch, self.hidden_dim, _all_finite,
                             self.dtype)

    def to_torch(self):
        """Return ``(torch.nn.LSTM or GRU, torch.nn.Linear)`` with copies of these weights.

        Needs PyTorch (see :mod:`fastrnn.interop`, and :func:`fastrnn.from_torch`
        for the way back).

        Returns
        -------
        module : torch.nn.LSTM or torch.nn.GRU
            ``(input_dim, hidden_dim, num_layers)``, sequence-first, of the
            model's dtype.  It takes one-hot inputs of shape (T, B, I).
        linear : torch.nn.Linear
            ``(hidden_dim, output_dim)``: ``Why`` and ``by``.
        """
        torch = import_torch()
        kind = torch.nn.LSTM if isinstance(self, LSTM) else torch.nn.GRU
        dtype = torch.float32 if self.dtype == np.float32 else torch.float64
        module = kind(self.input_dim, self.hidden_dim, self.num_layers, dtype=dtype)
        linear = torch.nn.Linear(self.hidden_dim, self.output_dim, dtype=dtype)
        params = self.parameters()
        with torch.no_grad():
            for name, p in module.named_parameters():
                p.copy_(torch.from_numpy(params[name].copy()))
            linear.weight.copy_(torch.from_numpy(params["Why"].copy()))
            linear.bias.copy_(torch.from_numpy(params["by"].ravel().copy()))
        return module, linear


class LSTM(_Gated):
    """A stack of LSTM layers with a softmax output, compiled with Numba.

    The parameters have PyTorch's names, shapes and gate order (i, f, g, o),
    so weights move to and from ``torch.nn.LSTM`` + ``torch.nn.Linear``
    without reshaping (see :mod:`fastrnn.interop`).

    Parameters
    ----------
    input_dim, hidden_dim, output_dim : int
        I, H and O, as for :class:`RNN` (H is the size of each layer's state).
    num_layers : int, default 1
        L; layer 0 reads the one-hot input, layer k > 0 layer k-1's h.
    seed : int, optional
        As for :class:`RNN`.
    dtype : {"float64", "float32"}, np.float64, np.float32 or a numpy dtype
        As for :class:`RNN`.

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
    _STATE_ARRAYS = 2
    _PACKED_FROM = 0  # the packed state is (2, L, B, H)

    def _state_in(self, h0, batch):
        if h0 is None:
            return np.zeros(self._state_shape(batch), self.dtype)
        if isinstance(h0, np.ndarray) or not isinstance(h0, (tuple, list)) or len(h0) != 2:
            raise ValueError(f"h0 of an LSTM must be a pair (h, c), got {short_repr(h0)}")
        return np.stack([self._layered("h0[0] (h)", h0[0], batch),
                         self._layered("h0[1] (c)", h0[1], batch)])

    @staticmethod
    def _public_state(parts):
        return parts[0], parts[1]

    def _joined(self, state):
        if not isinstance(state, tuple) or len(state) != 2:
            raise ValueError(f"state must be a pair (h, c), got {short_repr(state)}")
        return np.stack([float_array("h", state[0], dtype=self.dtype),
                         float_array("c", state[1], dtype=self.dtype)])


class GRU(_Gated):
    """A stack of GRU layers with a softmax output, compiled with Numba.

    The parameters have PyTorch's names, shapes and gate order (r, z, n) and
    PyTorch's formulation ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``,
    so weights move to and from ``torch.nn.GRU`` + ``torch.nn.Linear``
    without reshaping (see :mod:`fastrnn.interop`).

    Parameters are those of :class:`LSTM`, and so are the attributes but for
    the gate blocks, three in place of four (``weight_hh_l{k}`` is (3H, H)),
    and ``last_hidden``: one array, (L, H) for one sequence or (L, B, H) for a
    batch.

    Notes
    -----
    ``h0`` everywhere is None (zeros) or an array of shape (L, H) (the same
    state for every stream) or (L, B, H).
    """

    _GATES = 3
    _PACKED_FROM = 1  # the packed state is (L, B, H)

    def _state_in(self, h0, batch):
        if h0 is None:
            return np.zeros(self._state_shape(batch), self.dtype)
        return self._layered("h0", h0, batch)[None]

    @staticmethod
    def _public_state(parts):
        return parts[0]


# The models a training run can build, by the name its configuration and
# checkpoints use.
MODELS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
