"""Plain NumPy reference models: the correctness oracle and the speed baseline.

Written in the style of the classic min-char-rnn: one time step at a time,
one-hot input vectors, column-vector hidden states.  Nothing here is fast and
nothing here imports the kernels; the tests check every kernel against these
classes and the benchmarks measure fastrnn against them.

The public contract (argument shapes, return values, the loss) is the same as
:class:`fastrnn.RNN`, so the two can be swapped in any script; the only
difference a caller can see is speed (and the last bits of floating point).
"""

import math

import numpy as np

from fastrnn._validation import (
    check_clip,
    check_dimension,
    check_index,
    check_learning_rate,
    check_num_chars,
    check_seed,
    check_temperature,
    entropy_seed,
    hidden_state,
    index_array,
    paired_indices,
)

__all__ = ["RNN", "GPT"]


def _softmax(y):
    e = np.exp(y - np.max(y))
    return e / np.sum(e)


def _softmax_and_log_normaliser(y):
    """Probabilities and ``log(sum(exp(y)))``, from one exponential of ``y - max``.

    The loss is then ``lse - y[target]``: finite even where p underflows to 0.
    """
    m = np.max(y)
    e = np.exp(y - m)
    total = np.sum(e)
    return e / total, float(m) + math.log(total)


class RNN:
    """The vanilla tanh RNN, one time step at a time.

    Parameters
    ----------
    input_dim, hidden_dim, output_dim : int
        Sizes I, H and O; positive.
    seed : int, optional
        Seed for the initial weights; the same seed gives the same weights as
        :class:`fastrnn.RNN`.
    """

    def __init__(self, input_dim, hidden_dim, output_dim, *, seed=None):
        self.input_dim = check_dimension("input_dim", input_dim)
        self.hidden_dim = check_dimension("hidden_dim", hidden_dim)
        self.output_dim = check_dimension("output_dim", output_dim)
        rng = np.random.default_rng(check_seed("seed", seed))
        self.Wxh = rng.standard_normal((hidden_dim, input_dim)) * 0.01
        self.Whh = rng.standard_normal((hidden_dim, hidden_dim)) * 0.01
        self.Why = rng.standard_normal((output_dim, hidden_dim)) * 0.01
        self.bh = np.zeros((hidden_dim, 1))
        self.by = np.zeros((output_dim, 1))
        self.last_hidden = None

    def _forward_row(self, inputs, hprev):
        hs = {-1: hprev.reshape(-1, 1)}
        ys, ps, lses = {}, {}, {}
        for t in range(len(inputs)):
            x = np.zeros((self.input_dim, 1))
            x[inputs[t]] = 1
            hs[t] = np.tanh(np.dot(self.Wxh, x) + np.dot(self.Whh, hs[t - 1]) + self.bh)
            ys[t] = np.dot(self.Why, hs[t]) + self.by
            ps[t], lses[t] = _softmax_and_log_normaliser(ys[t])
        return hs, ys, ps, lses

    def _forward(self, xs, h0):
        rows = xs.reshape(-1, xs.shape[-1])
        h0s = hidden_state(h0, rows.shape[0], self.hidden_dim)
        T = rows.shape[1]
        hs = np.zeros((rows.shape[0], T + 1, self.hidden_dim))
        ys = np.zeros((rows.shape[0], T, self.output_dim))
        ps = np.zeros((rows.shape[0], T, self.output_dim))
        lses = np.zeros((rows.shape[0], T))
        for b in range(rows.shape[0]):
            h, y, p, lse = self._forward_row(rows[b], h0s[b])
            for t in range(-1, T):
                hs[b, t + 1] = h[t].ravel()
            for t in range(T):
                ys[b, t] = y[t].ravel()
                ps[b, t] = p[t].ravel()
                lses[b, t] = lse[t]
        if xs.ndim == 1:
            return hs[0], ys[0], ps[0], lses[0]
        return hs, ys, ps, lses

    def forward(self, inputs, h0=None):
        """Return ``(xs, hs, ps)`` as :meth:`fastrnn.RNN.forward` does."""
        xs = index_array("inputs", inputs, self.input_dim)
        hs, _, ps, _ = self._forward(xs, h0)
        return xs, hs, ps

    def backward(self, xs, hs, ps, targets):
        """Return ``(dWxh, dWhh, dWhy, dbh, dby)`` as :meth:`fastrnn.RNN.backward` does."""
        xs, targets = paired_indices(
            xs, targets, self.input_dim, self.output_dim, names=("xs", "targets")
        )
        hs = np.asarray(hs, dtype=np.float64).reshape(-1, xs.shape[-1] + 1, self.hidden_dim)
        ps = np.asarray(ps, dtype=np.float64).reshape(-1, xs.shape[-1], self.output_dim)
        rows_x = xs.reshape(-1, xs.shape[-1])
        rows_y = targets.reshape(-1, xs.shape[-1])
        dWxh, dWhh, dWhy = np.zeros_like(self.Wxh), np.zeros_like(self.Whh), np.zeros_like(self.Why)
        dbh, dby = np.zeros_like(self.bh), np.zeros_like(self.by)
        batch = rows_x.shape[0]
        for b in range(batch):
            dhnext = np.zeros((self.hidden_dim, 1))
            for t in reversed(range(rows_x.shape[1])):
                dy = ps[b, t].reshape(-1, 1).copy()
                dy[rows_y[b, t]] -= 1
                dy /= batch
                h = hs[b, t + 1].reshape(-1, 1)
                hprev = hs[b, t].reshape(-1, 1)
                dWhy += np.dot(dy, h.T)
                dby += dy
                dh = np.dot(self.Why.T, dy) + dhnext
                dhraw = (1 - h * h) * dh
                dbh += dhraw
                x = np.zeros((self.input_dim, 1))
                x[rows_x[b, t]] = 1
                dWxh += np.dot(dhraw, x.T)
                dWhh += np.dot(dhraw, hprev.T)
                dhnext = np.dot(self.Whh.T, dhraw)
        return dWxh, dWhh, dWhy, dbh, dby

    def update(self, dWxh, dWhh, dWhy, dbh, dby, learning_rate):
        """In-place SGD: ``p -= learning_rate * g`` for every parameter."""
        learning_rate = check_learning_rate(learning_rate)
        grads = [np.asarray(g, dtype=np.float64) for g in (dWxh, dWhh, dWhy, dbh, dby)]
        params = (self.Wxh, self.Whh, self.Why, self.bh, self.by)
        for name, p, g in zip(("dWxh", "dWhh", "dWhy", "dbh", "dby"), params, grads):
            if g.shape != p.shape:
                raise ValueError(f"{name} has shape {g.shape}, expected {p.shape}")
        for p, g in zip(params, grads):
            p -= learning_rate * g

    def _loss(self, ys, lses, targets):
        rows_y = targets.reshape(-1, targets.shape[-1])
        ys = ys.reshape(rows_y.shape[0], rows_y.shape[1], -1)
        lses = lses.reshape(rows_y.shape)
        total = 0.0
        for b in range(rows_y.shape[0]):
            for t in range(rows_y.shape[1]):
                total += lses[b, t] - ys[b, t, rows_y[b, t]]  # -log p[target]
        return total / rows_y.shape[0]

    def loss(self, inputs, targets, h0=None):
        """The loss of :meth:`train`, without an update."""
        xs, targets = paired_indices(inputs, targets, self.input_dim, self.output_dim)
        _, ys, _, lses = self._forward(xs, h0)
        return float(self._loss(ys, lses, targets))

    def train(self, inputs, targets, learning_rate=0.1, *, clip=5.0, h0=None):
        """Forward, backward, clip, SGD update; returns the loss before the update."""
        xs, targets = paired_indices(inputs, targets, self.input_dim, self.output_dim)
        learning_rate = check_learning_rate(learning_rate)
        clip = check_clip(clip)
        hs, ys, ps, lses = self._forward(xs, h0)
        loss = self._loss(ys, lses, targets)
        grads = self.backward(xs, hs, ps, targets)
        if clip is not None:
            for g in grads:
                np.clip(g, -clip, clip, out=g)
        self.update(*grads, learning_rate)
        self.last_hidden = hs[..., -1, :].copy()
        return float(loss)

    def predict(self, start_index, num_chars, *, temperature=1.0, seed=None, h0=None):
        """Sample ``num_chars`` indices after ``start_index`` (inverse-CDF draws).

        Uses ``numpy.random.RandomState(seed)``, whose uniform stream equals the
        one the fastrnn kernel draws from numba's generator, so both sample the
        same indices for the same seed.
        """
        start = check_index("start_index", start_index, self.input_dim)
        num_chars = check_num_chars(num_chars)
        temperature = check_temperature(temperature)
        rng = np.random.RandomState(entropy_seed(check_seed("seed", seed)))
        h = hidden_state(h0, 1, self.hidden_dim).reshape(-1, 1)
        ix = start
        out = []
        for _ in range(num_chars):
            x = np.zeros((self.input_dim, 1))
            x[ix] = 1
            h = np.tanh(np.dot(self.Wxh, x) + np.dot(self.Whh, h) + self.bh)
            y = (np.dot(self.Why, h) + self.by).ravel()
            if temperature == 0:
                ix = int(np.argmax(y))
            else:
                p = _softmax((y - np.max(y)) / temperature)
                u = rng.random_sample()
                ix = int(min(np.searchsorted(np.cumsum(p), u, side="right"), self.output_dim - 1))
            out.append(ix)
        return out


GPT = RNN
