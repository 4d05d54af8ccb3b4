"""The batched training step on which fastrnn meets PyTorch, in float32 and float64.

One call is one SGD step with element-wise clipping at 5 on the next chunk of
B = 32 streams of T = 25 characters (V = 65), the state carried, for each case
of :data:`CASES`: an LSTM of one layer of 256, a GRU of the same size, an RNN of
512.  ``studies/vs_torch.py`` times these calls interleaved (the README's table);
``suite/test_bench_dtype.py`` times the same calls in the pytest-benchmark suite.
"""

import fastrnn
from common.bench import CLIP, LEARNING_RATE, SEED, NumpyAPI, V
from fastrnn.model import MODELS

__all__ = ["B", "CASES", "fastrnn_step", "torch_step"]

B = 32
CASES = {"lstm": ("LSTM 1x256", 256), "gru": ("GRU 1x256", 256), "rnn": ("RNN H=512", 512)}
"""model kind: (label in the tables, hidden size)."""


def fastrnn_step(kind, dtype, pairs):
    """One SGD step with clipping of a fastrnn model of ``kind`` on the next of ``pairs``."""
    return NumpyAPI(MODELS[kind](V, CASES[kind][1], V, seed=SEED, dtype=dtype)).train_call(pairs)


def torch_step(kind, dtype, pairs):
    """The same step in plain PyTorch (``torch_gated``, ``torch_rnn``), same weights."""
    import torch

    from common.torch_gated import TorchGated
    from common.torch_rnn import TorchRNN

    if kind == "rnn":
        source = fastrnn.RNN(V, CASES[kind][1], V, seed=SEED)
        return TorchRNN(source, LEARNING_RATE, CLIP, dtype=getattr(torch, dtype)).train_call(pairs)
    source = MODELS[kind](V, CASES[kind][1], V, seed=SEED, dtype=dtype)
    return TorchGated(source, LEARNING_RATE, CLIP).train_call(pairs)
