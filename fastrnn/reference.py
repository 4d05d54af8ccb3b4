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

from fastrnn import _validation

__all__ = ["RNN", "GPT", "LSTM", "GRU"]


def _softmax(y):
    e = np.exp(y - np.max(y))
    return e / np.sum(e)


def _next_index(y, temperature, rng, top_k=0, top_p=1.0):
    """The argmax of the logits ``y`` (temperature 0), or an inverse-CDF draw of softmax(y / T).

    ``top_k`` (0: off) and ``top_p`` (1: off) restrict the draw to the ``top_k``
    most probable indices, then to the smallest set of those, most probable
    first, whose renormalised probability reaches ``top_p``; ties rank the
    lower index first, and the draw runs over the kept indices in rank order.
    """
    if temperature == 0 or top_k == 1:
        return int(np.argmax(y))
    p = _softmax((y - np.max(y)) / temperature)
    u = rng.random_sample()
    if top_k == 0 and top_p == 1.0:
        return int(min(np.searchsorted(np.cumsum(p), u, side="right"), y.shape[0] - 1))
    order = np.argsort(-y, kind="stable")  # most probable first, ties by index
    if top_k:
        order = order[:top_k]
    q = p[order] / np.sum(p[order])
    # the first prefix reaching top_p (all of them when rounding keeps the sum below it)
    keep = min(int(np.searchsorted(np.cumsum(q), top_p, side="left")) + 1, order.shape[0])
    order = order[:keep]
    cdf = np.cumsum(p[order])
    return int(order[min(np.searchsorted(cdf, u * cdf[-1], side="right"), keep - 1)])


def _sample(model, start_index, num_chars, temperature, seed, h0, top_k, top_p):
    """The sampling loop of every reference ``predict``: a list of ``num_chars`` indices.

    The arguments are checked as :meth:`fastrnn.RNN.predict` checks them, then
    ``model._sampling_state(h0)`` gives the state of one stream and
    ``model._sampling_step(ix, state)`` the logits (O,) after index ``ix`` and
    the next state; each index is drawn by :func:`_next_index` from a
    ``numpy.random.RandomState(seed)``.
    """
    start, num_chars, temperature, seed = _validation.sampling_arguments(
        model, start_index, num_chars, temperature, seed)
    top_k, top_p = _validation.sampling_filters(model, top_k, top_p)
    rng = np.random.RandomState(seed)
    state = model._sampling_state(h0)
    ix, out = start, []
    for _ in range(num_chars):
        y, state = model._sampling_step(ix, state)
        ix = _next_index(y, temperature, rng, top_k, top_p)
        out.append(ix)
    return out


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
        self.input_dim, self.hidden_dim, self.output_dim, _ = _validation.check_sizes(
            input_dim, hidden_dim, output_dim)
        rng = np.random.default_rng(_validation.check_seed("seed", seed))
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
        h0s = _validation.hidden_state(h0, rows.shape[0], self.hidden_dim)
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
        xs = _validation.index_array("inputs", inputs, self.input_dim)
        hs, _, ps, _ = self._forward(xs, h0)
        return xs, hs, ps

    def backward(self, xs, hs, ps, targets):
        """Return ``(dWxh, dWhh, dWhy, dbh, dby)`` as :meth:`fastrnn.RNN.backward` does."""
        xs, targets = _validation.paired_indices(
            xs, targets, self.input_dim, self.output_dim, names=("xs", "targets")
        )
        lead, T = xs.shape[:-1], xs.shape[-1]
        H, O = self.hidden_dim, self.output_dim
        hs = _validation.float_array("hs", hs, lead + (T + 1, H)).reshape(-1, T + 1, H)
        ps = _validation.float_array("ps", ps, lead + (T, O)).reshape(-1, T, O)
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
        learning_rate = _validation.check_learning_rate(learning_rate)
        params = (self.Wxh, self.Whh, self.Why, self.bh, self.by)
        names = ("dWxh", "dWhh", "dWhy", "dbh", "dby")
        grads = [_validation.float_array(name, g, p.shape)
                 for name, g, p in zip(names, (dWxh, dWhh, dWhy, dbh, dby), params, strict=True)]
        for p, g in zip(params, grads, strict=True):
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
        xs, targets = _validation.paired_indices(inputs, targets, self.input_dim, self.output_dim)
        _, ys, _, lses = self._forward(xs, h0)
        return float(self._loss(ys, lses, targets))

    def train(self, inputs, targets, learning_rate=0.1, *, clip=5.0, h0=None):
        """Forward, backward, clip, SGD update; returns the loss before the update."""
        xs, targets = _validation.paired_indices(inputs, targets, self.input_dim, self.output_dim)
        learning_rate, clip = _validation.sgd_options(learning_rate, clip)
        hs, ys, ps, lses = self._forward(xs, h0)
        loss = self._loss(ys, lses, targets)
        grads = self.backward(xs, hs, ps, targets)
        if clip is not None:
            for g in grads:
                np.clip(g, -clip, clip, out=g)
        self.update(*grads, learning_rate)
        self.last_hidden = hs[..., -1, :].copy()
        return float(loss)

    def predict(self, start_index, num_chars, *, temperature=1.0, seed=None, h0=None,
                top_k=None, top_p=None):
        """Sample ``num_chars`` indices after ``start_index`` (inverse-CDF draws).

        Uses ``numpy.random.RandomState(seed)``, whose uniform stream equals the
        one the fastrnn kernel draws from numba's generator, so both sample the
        same indices for the same seed (``top_k`` and ``top_p`` as in
        :meth:`fastrnn.RNN.predict`).
        """
        return _sample(self, start_index, num_chars, temperature, seed, h0, top_k, top_p)

    def _sampling_state(self, h0):
        return _validation.hidden_state(h0, 1, self.hidden_dim).reshape(-1, 1)  # (H, 1)

    def _sampling_step(self, ix, h):
        x = np.zeros((self.input_dim, 1))
        x[ix] = 1
        h = np.tanh(np.dot(self.Wxh, x) + np.dot(self.Whh, h) + self.bh)
        return (np.dot(self.Why, h) + self.by).ravel(), h


GPT = RNN


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


class _GatedReference:
    """What the reference LSTM and GRU share: PyTorch's parameters, the loss, SGD, sampling.

    Subclasses define ``_GATES``, ``_STATE_ARRAYS``, ``_state_parts`` (the
    named arrays of an ``h0``), ``_public`` (the form of ``last_hidden``),
    ``_step`` (one time step, returning what ``_step_back`` needs) and
    ``_step_back``.
    """

    _GATES = None
    _STATE_ARRAYS = 1  # a layer's state: (h,), or the LSTM's (h, c)

    def __init__(self, input_dim, hidden_dim, output_dim, *, num_layers=1, seed=None):
        self.input_dim, self.hidden_dim, self.output_dim, self.num_layers = _validation.check_sizes(
            input_dim, hidden_dim, output_dim, num_layers)
        rng = np.random.default_rng(_validation.check_seed("seed", seed))
        G, H = self._GATES, hidden_dim
        bound = 1.0 / math.sqrt(H)
        self._names = []
        for k in range(num_layers):
            inputs = input_dim if k == 0 else H
            for name, shape in ((f"weight_ih_l{k}", (G * H, inputs)),
                                (f"weight_hh_l{k}", (G * H, H)),
                                (f"bias_ih_l{k}", (G * H,)), (f"bias_hh_l{k}", (G * H,))):
                setattr(self, name, rng.uniform(-bound, bound, shape))
                self._names.append(name)
        self.Why = rng.uniform(-bound, bound, (output_dim, H))
        self.by = rng.uniform(-bound, bound, (output_dim, 1))
        self._names += ["Why", "by"]
        self.last_hidden = None

    def parameters(self):
        """The parameter arrays by name, in :meth:`fastrnn.LSTM.parameters`'s order."""
        return {name: getattr(self, name) for name in self._names}

    def _initial(self, h0, batch):
        """Per stream, per layer, the state as a tuple of column vectors (H, 1)."""
        L, H = self.num_layers, self.hidden_dim
        if h0 is None:
            parts = [np.zeros((L, batch, H))] * self._STATE_ARRAYS
        else:
            parts = [_validation.layered_state(name, value, L, batch, H)
                     for name, value in self._state_parts(h0)]
        return [[tuple(p[k, b].reshape(-1, 1).copy() for p in parts) for k in range(L)]
                for b in range(batch)]

    def _zero_grad(self):
        return tuple(np.zeros((self.hidden_dim, 1)) for _ in range(self._STATE_ARRAYS))

    def _collect(self, finals, single):
        """The final states of every stream, in the public form of ``last_hidden``."""
        parts = []
        for j in range(self._STATE_ARRAYS):
            p = np.array([[s[j].ravel() for s in f] for f in finals]).transpose(1, 0, 2)
            parts.append(p[:, 0].copy() if single else p.copy())  # (L, H) or (L, B, H)
        return self._public(parts)

    @staticmethod
    def _add_layer_gradients(grads, k, x, h, dp, dq):
        """Add one step's gradients of layer k's parameters to ``grads``.

        ``dp`` and ``dq`` are the gradients w.r.t. the input side
        ``W_ih x + b_ih`` and the recurrent side ``W_hh h + b_hh`` (the same
        for the LSTM, whose gates take their sum).
        """
        grads[f"weight_ih_l{k}"] += np.dot(dp, x.T)
        grads[f"weight_hh_l{k}"] += np.dot(dq, h.T)
        grads[f"bias_ih_l{k}"] += dp.ravel()
        grads[f"bias_hh_l{k}"] += dq.ravel()

    def _layer(self, k):
        return tuple(getattr(self, f"{n}_l{k}") for n in ("weight_ih", "weight_hh", "bias_ih",
                                                          "bias_hh"))

    def _run_row(self, inputs, targets, state):
        """One stream: returns the loss, the per-step records and the final state."""
        records, loss = [], 0.0
        for t in range(len(inputs)):
            x = np.zeros((self.input_dim, 1))
            x[inputs[t]] = 1
            step, inp = [], x
            new_state = []
            for k in range(self.num_layers):
                rec, s = self._step(k, inp, state[k])
                step.append(rec)
                new_state.append(s)
                inp = s[0]  # h
            state = new_state
            y = np.dot(self.Why, inp) + self.by
            p, lse = _softmax_and_log_normaliser(y)
            if targets is not None:
                loss += lse - float(y[targets[t], 0])
            records.append((x, step, inp, p))
        return loss, records, state

    def _rows(self, inputs, targets, h0):
        xs = _validation.index_array("inputs", inputs, self.input_dim)
        ys = None
        if targets is not None:
            xs, ys = _validation.paired_indices(inputs, targets, self.input_dim, self.output_dim)
        rows_x = xs.reshape(-1, xs.shape[-1])
        rows_y = None if ys is None else ys.reshape(rows_x.shape)
        states = self._initial(h0, rows_x.shape[0])
        return xs.ndim == 1, rows_x, rows_y, states

    def loss(self, inputs, targets, h0=None):
        """Return the loss (sum over time, mean over streams); the final state -> last_hidden."""
        single, rows_x, rows_y, states = self._rows(inputs, targets, h0)
        total, finals = 0.0, []
        for b in range(rows_x.shape[0]):
            loss, _, final = self._run_row(rows_x[b], rows_y[b], states[b])
            total += loss
            finals.append(final)
        self.last_hidden = self._collect(finals, single)
        return float(total / rows_x.shape[0])

    def gradients(self, inputs, targets, h0=None):
        """The loss and its gradients by parameter name, by BPTT one step at a time."""
        single, rows_x, rows_y, states = self._rows(inputs, targets, h0)
        B = rows_x.shape[0]
        grads = {name: np.zeros_like(p) for name, p in self.parameters().items()}
        total, finals = 0.0, []
        for b in range(B):
            loss, records, final = self._run_row(rows_x[b], rows_y[b], states[b])
            total += loss
            finals.append(final)
            nexts = [self._zero_grad() for _ in range(self.num_layers)]
            for t in reversed(range(len(records))):
                x, step, top, p = records[t]
                dy = p.reshape(-1, 1).copy()
                dy[rows_y[b, t]] -= 1
                dy /= B
                grads["Why"] += np.dot(dy, top.T)
                grads["by"] += dy
                dh = np.dot(self.Why.T, dy)
                for k in reversed(range(self.num_layers)):
                    dx, nexts[k] = self._step_back(k, step[k], dh, nexts[k], grads)
                    dh = dx
        self.last_hidden = self._collect(finals, single)
        return float(total / B), grads

    def train(self, inputs, targets, learning_rate=0.1, *, clip=5.0, h0=None):
        """Gradients, element-wise clipping, SGD; returns the loss before the update."""
        learning_rate, clip = _validation.sgd_options(learning_rate, clip)
        loss, grads = self.gradients(inputs, targets, h0)
        for name, p in self.parameters().items():
            g = grads[name]
            if clip is not None:
                np.clip(g, -clip, clip, out=g)
            p -= learning_rate * g
        return loss

    def predict(self, start_index, num_chars, *, temperature=1.0, seed=None, h0=None,
                top_k=None, top_p=None):
        """Sample ``num_chars`` indices after ``start_index``, as :meth:`RNN.predict` does."""
        return _sample(self, start_index, num_chars, temperature, seed, h0, top_k, top_p)

    def _sampling_state(self, h0):
        return self._initial(h0, 1)[0]

    def _sampling_step(self, ix, state):
        _, records, state = self._run_row([ix], None, state)
        return (np.dot(self.Why, records[0][2]) + self.by).ravel(), state


class LSTM(_GatedReference):
    """The LSTM (PyTorch's gates i, f, g, o), one time step at a time.

    The same contract as :class:`fastrnn.LSTM`: ``h0`` and ``last_hidden`` are
    pairs ``(h, c)``, each (L, H) or (L, B, H).
    """

    _GATES = 4
    _STATE_ARRAYS = 2

    @staticmethod
    def _state_parts(h0):
        if isinstance(h0, np.ndarray) or not isinstance(h0, (tuple, list)) or len(h0) != 2:
            raise ValueError("h0 of an LSTM must be a pair (h, c)")
        return ("h0[0] (h)", h0[0]), ("h0[1] (c)", h0[1])

    @staticmethod
    def _public(parts):
        return parts[0], parts[1]

    def _step(self, k, x, state):
        h, c = state
        Wih, Whh, bih, bhh = self._layer(k)
        H = self.hidden_dim
        a = np.dot(Wih, x) + bih.reshape(-1, 1) + np.dot(Whh, h) + bhh.reshape(-1, 1)
        i = _sigmoid(a[:H])
        f = _sigmoid(a[H:2 * H])
        g = np.tanh(a[2 * H:3 * H])
        o = _sigmoid(a[3 * H:])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        return (x, h, c, i, f, g, o, c_new), (h_new, c_new)

    def _step_back(self, k, rec, dh_above, nxt, grads):
        x, h, c, i, f, g, o, c_new = rec
        dh_next, dc_next = nxt
        Wih, Whh, _, _ = self._layer(k)
        dh = dh_above + dh_next
        tc = np.tanh(c_new)
        do = dh * tc
        dc = dh * o * (1 - tc * tc) + dc_next
        da = np.concatenate([dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g * g),
                             do * o * (1 - o)])
        self._add_layer_gradients(grads, k, x, h, da, da)
        return np.dot(Wih.T, da), (np.dot(Whh.T, da), dc * f)


class GRU(_GatedReference):
    """The GRU (PyTorch's gates r, z, n and formulation), one time step at a time.

    The same contract as :class:`fastrnn.GRU`: ``h0`` and ``last_hidden`` are
    (L, H) or (L, B, H).
    """

    _GATES = 3

    @staticmethod
    def _state_parts(h0):
        return (("h0", h0),)

    @staticmethod
    def _public(parts):
        return parts[0]

    def _step(self, k, x, state):
        (h,) = state
        Wih, Whh, bih, bhh = self._layer(k)
        H = self.hidden_dim
        p = np.dot(Wih, x) + bih.reshape(-1, 1)
        q = np.dot(Whh, h) + bhh.reshape(-1, 1)
        r = _sigmoid(p[:H] + q[:H])
        z = _sigmoid(p[H:2 * H] + q[H:2 * H])
        n = np.tanh(p[2 * H:] + r * q[2 * H:])
        h_new = (1 - z) * n + z * h
        return (x, h, r, z, n, q[2 * H:]), (h_new,)

    def _step_back(self, k, rec, dh_above, nxt, grads):
        x, h, r, z, n, qn = rec
        (dh_next,) = nxt
        Wih, Whh, _, _ = self._layer(k)
        dh = dh_above + dh_next
        dan = dh * (1 - z) * (1 - n * n)
        daz = dh * (h - n) * z * (1 - z)
        dar = dan * qn * r * (1 - r)
        dp = np.concatenate([dar, daz, dan])
        dq = np.concatenate([dar, daz, dan * r])
        self._add_layer_gradients(grads, k, x, h, dp, dq)
        return np.dot(Wih.T, dp), (dh * z + np.dot(Whh.T, dq),)
