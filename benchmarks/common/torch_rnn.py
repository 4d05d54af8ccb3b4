"""The same model in PyTorch, written the way a PyTorch user would, for the speed comparison.

Import this module only after ``pytest.importorskip("torch")``.

What is compared, and how it is made equal to fastrnn:

* ``nn.RNN(V, H, nonlinearity="tanh")`` + ``nn.Linear(H, V)``, float64 (or the
  ``dtype`` given), one
  intra-op thread (``torch.set_num_threads(1)``, set on import).  The weights
  are copied from a fastrnn/reference model of the same seed (``bias_hh`` is
  zero and stays so: ``nn.RNN`` has two hidden biases where fastrnn has one).
* Inputs are **one-hot tensors of shape (T, B, V)** of that dtype, built once per
  chunk outside the timed call (the data a PyTorch training loop would feed in
  from its loader), so PyTorch is not charged for turning indices into
  vectors.  fastrnn and the reference take the int64 indices and do that
  inside the timed call.
* Loss: cross-entropy summed over time, mean over the batch
  (``F.cross_entropy(..., reduction="sum") / B``), exactly fastrnn's loss.
* A train step is ``zero_grad`` (set to None), forward, loss, ``backward``,
  ``clip_grad_value_(params, 5.0)`` and ``torch.optim.SGD`` with lr 0.1, with
  the final hidden state detached and carried to the next call as fastrnn's
  ``last_hidden`` is (lr and data stream as in ``common/bench.py``).
* Forward only runs under ``torch.no_grad()`` and returns the softmax
  probabilities, as ``fastrnn.RNN.forward`` does.  Backward only replays
  ``loss.backward(retain_graph=True)`` on a graph built once.
* Sampling is the usual Python loop: one ``nn.RNN`` step per character,
  softmax with temperature, ``torch.multinomial`` with a seeded generator.

:func:`check_against` verifies on a small case that this module computes the
same loss and gradients as the reference, so the timings compare the same
mathematics.
"""

import itertools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

torch.set_num_threads(1)

__all__ = ["TorchRNN", "check_against"]


class TorchRNN:
    """An ``nn.RNN`` + ``nn.Linear`` char model with fastrnn-style calls.

    Parameters
    ----------
    model : fastrnn.RNN or fastrnn.reference.RNN
        Source of the sizes and the initial weights.
    learning_rate, clip : float
        SGD step size and element-wise gradient clip of :meth:`train_call`.
    """

    def __init__(self, model, learning_rate=0.1, clip=5.0, dtype=torch.float64):
        self.V = model.input_dim
        self.H = model.hidden_dim
        self.O = model.output_dim
        self.dtype = dtype
        self.rnn = nn.RNN(self.V, self.H, nonlinearity="tanh", dtype=dtype)
        self.linear = nn.Linear(self.H, self.O, dtype=dtype)
        with torch.no_grad():  # copy_ converts float64 weights to the module's dtype
            self.rnn.weight_ih_l0.copy_(torch.from_numpy(np.array(model.Wxh)))
            self.rnn.weight_hh_l0.copy_(torch.from_numpy(np.array(model.Whh)))
            self.rnn.bias_ih_l0.copy_(torch.from_numpy(np.array(model.bh).ravel()))
            self.rnn.bias_hh_l0.zero_()
            self.linear.weight.copy_(torch.from_numpy(np.array(model.Why)))
            self.linear.bias.copy_(torch.from_numpy(np.array(model.by).ravel()))
        self.params = list(self.rnn.parameters()) + list(self.linear.parameters())
        self.optimizer = torch.optim.SGD(self.params, lr=learning_rate)
        self.clip = clip

    def one_hot(self, x):
        """Indices (T,) or (B, T) -> one-hot tensor (T, B, V) of the model's dtype."""
        x2 = np.asarray(x, dtype=np.int64).reshape(-1, np.shape(x)[-1])
        idx = torch.from_numpy(np.ascontiguousarray(x2.T))  # (T, B)
        return F.one_hot(idx, self.V).to(self.dtype)

    @staticmethod
    def targets(y):
        """Indices (T,) or (B, T) -> int64 tensor (T, B)."""
        y2 = np.asarray(y, dtype=np.int64).reshape(-1, np.shape(y)[-1])
        return torch.from_numpy(np.ascontiguousarray(y2.T))

    def _loss(self, xo, yt, h0):
        out, h_last = self.rnn(xo, h0)  # (T, B, H), (1, B, H)
        logits = self.linear(out)  # (T, B, O)
        B = xo.shape[1]
        loss = F.cross_entropy(logits.reshape(-1, self.O), yt.reshape(-1), reduction="sum") / B
        return loss, h_last

    def train_call(self, pairs):
        """A zero-argument function doing one SGD step on the next chunk (returns the loss).

        ``pairs`` is a list of (inputs, targets) chunks, cycled through.
        """
        tensors = itertools.cycle([(self.one_hot(x), self.targets(y)) for x, y in pairs])
        B = np.shape(pairs[0][0])[0] if np.ndim(pairs[0][0]) == 2 else 1
        state = {"h": torch.zeros(1, B, self.H, dtype=self.dtype)}

        def step():
            xo, yt = next(tensors)
            self.optimizer.zero_grad(set_to_none=True)
            loss, h_last = self._loss(xo, yt, state["h"])
            loss.backward()
            nn.utils.clip_grad_value_(self.params, self.clip)
            self.optimizer.step()
            state["h"] = h_last.detach()
            return loss.item()

        return step

    def forward_call(self, x):
        """A zero-argument function returning (hidden states, probabilities) for the chunk."""
        xo = self.one_hot(x)
        h0 = torch.zeros(1, xo.shape[1], self.H, dtype=self.dtype)

        def forward():
            with torch.no_grad():
                out, _ = self.rnn(xo, h0)  # (T, B, H)
                return out, torch.softmax(self.linear(out), dim=-1)  # (T, B, O)

        return forward

    def backward_call(self, x, y):
        """A zero-argument function running BPTT on a graph built once (returns nothing)."""
        xo, yt = self.one_hot(x), self.targets(y)
        loss, _ = self._loss(xo, yt, torch.zeros(1, xo.shape[1], self.H, dtype=self.dtype))

        def backward():
            for p in self.params:
                p.grad = None
            loss.backward(retain_graph=True)

        return backward

    def predict_call(self, num_chars, start=0, temperature=1.0, seed=0):
        """A zero-argument function sampling ``num_chars`` indices (a list of int)."""

        @torch.no_grad()
        def predict():
            generator = torch.Generator().manual_seed(seed)
            x = torch.zeros(1, 1, self.V, dtype=self.dtype)
            h = torch.zeros(1, 1, self.H, dtype=self.dtype)
            ix = start
            out = []
            for _ in range(num_chars):
                x.zero_()
                x[0, 0, ix] = 1.0
                _, h = self.rnn(x, h)
                p = torch.softmax(self.linear(h[0, 0]) / temperature, dim=-1)
                ix = int(torch.multinomial(p, 1, generator=generator))
                out.append(ix)
            return out

        return predict


def check_against(reference_model, x, y, rtol=1e-9):
    """Raise AssertionError unless TorchRNN's loss and gradients equal the reference's.

    Parameters
    ----------
    reference_model : fastrnn.reference.RNN
        Its weights are copied; it is not modified.
    x, y : ndarray of int, shape (B, T)
        A small chunk.
    """
    tm = TorchRNN(reference_model)
    xo, yt = tm.one_hot(x), tm.targets(y)
    loss, _ = tm._loss(xo, yt, torch.zeros(1, xo.shape[1], tm.H, dtype=torch.float64))
    loss.backward()
    xs, hs, ps = reference_model.forward(x)
    ref_loss = reference_model.loss(x, y)
    dWxh, dWhh, dWhy, dbh, dby = reference_model.backward(xs, hs, ps, y)
    pairs = {
        "loss": (loss.item(), ref_loss),
        "dWxh": (tm.rnn.weight_ih_l0.grad, dWxh),
        "dWhh": (tm.rnn.weight_hh_l0.grad, dWhh),
        "dbh": (tm.rnn.bias_ih_l0.grad, dbh.ravel()),
        "dWhy": (tm.linear.weight.grad, dWhy),
        "dby": (tm.linear.bias.grad, dby.ravel()),
    }
    for name, (got, want) in pairs.items():
        got = np.asarray(got.numpy() if torch.is_tensor(got) else got)
        scale = max(1.0, float(np.max(np.abs(want))))
        err = float(np.max(np.abs(got - want)))
        assert err <= rtol * scale, f"torch model differs from the reference in {name}: {err:g}"
