"""nn.LSTM / nn.GRU + nn.Linear written the way a PyTorch user would, for the speed comparison.

Import this module only after ``pytest.importorskip("torch")``.  The same
conventions as :mod:`common.torch_rnn`: the fastrnn model's dtype (float64 or float32),
one intra-op thread unless the caller sets more, one-hot
inputs (T, B, V) built once per chunk outside the timed call, loss summed over
time and averaged over the batch, and a train step of ``zero_grad``, forward,
loss, ``backward``, ``clip_grad_value_`` and ``torch.optim.SGD`` with the
final state detached and carried to the next call.  The weights are those of
the fastrnn model, copied by :meth:`fastrnn.LSTM.to_torch`; the modules use
PyTorch's fused CPU kernels (``nn.LSTM`` and ``nn.GRU`` over the whole chunk).
"""

import itertools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

torch.set_num_threads(1)

__all__ = ["TorchGated"]


class TorchGated:
    """A char model of ``nn.LSTM`` or ``nn.GRU`` and ``nn.Linear`` with fastrnn-style calls.

    Parameters
    ----------
    model : fastrnn.LSTM or fastrnn.GRU
        Source of the sizes and the initial weights.
    learning_rate, clip : float
        SGD step size and element-wise gradient clip of :meth:`train_call`.
    """

    def __init__(self, model, learning_rate, clip):
        self.rnn, self.linear = model.to_torch()  # of the model's dtype
        self.dtype = self.linear.weight.dtype
        self.V, self.O = model.input_dim, model.output_dim
        self.params = list(self.rnn.parameters()) + list(self.linear.parameters())
        self.optimizer = torch.optim.SGD(self.params, lr=learning_rate)
        self.clip = clip

    def _tensors(self, x, y):
        x2 = np.asarray(x, dtype=np.int64).reshape(-1, np.shape(x)[-1])
        y2 = np.asarray(y, dtype=np.int64).reshape(x2.shape)
        xo = F.one_hot(torch.from_numpy(np.ascontiguousarray(x2.T)), self.V).to(self.dtype)
        return xo, torch.from_numpy(np.ascontiguousarray(y2.T))  # (T, B, V), (T, B)

    def train_call(self, pairs):
        """A zero-argument function doing one SGD step on the next chunk (returns the loss)."""
        tensors = itertools.cycle([self._tensors(x, y) for x, y in pairs])
        state = {"h": None}

        def step():
            xo, yt = next(tensors)
            self.optimizer.zero_grad(set_to_none=True)
            out, last = self.rnn(xo, state["h"])  # (T, B, H)
            logits = self.linear(out)  # (T, B, O)
            loss = F.cross_entropy(logits.reshape(-1, self.O), yt.reshape(-1),
                                   reduction="sum") / xo.shape[1]
            loss.backward()
            nn.utils.clip_grad_value_(self.params, self.clip)
            self.optimizer.step()
            if isinstance(last, tuple):
                state["h"] = tuple(s.detach() for s in last)
            else:
                state["h"] = last.detach()
            return loss.item()

        return step
