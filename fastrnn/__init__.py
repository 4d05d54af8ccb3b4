"""fastrnn: a Numba-accelerated character-level recurrent neural network library.

``fastrnn.RNN`` (also ``fastrnn.GPT``) is a drop-in, many times faster version of
the classic min-char-rnn model; ``fastrnn.LSTM`` and ``fastrnn.GRU`` are stacked
gated models with PyTorch's parameter names and layouts (``model.to_torch()``,
``fastrnn.from_torch(module, linear)`` when PyTorch is installed).
``fastrnn.reference`` holds the plain NumPy versions they are tested and
benchmarked against.

Training on a text and sampling from the result (the API under the ``fastrnn``
command line)::

    from fastrnn import Trainer, TrainingConfig, evaluate, generate, load_model

    Trainer(text, TrainingConfig(iterations=20_000)).run("run")
    model, vocab = load_model("run")
    print(generate(model, vocab, 300, prime="def "))
    print(evaluate(model, vocab, other_text).loss_nats)  # nats per character

``fastrnn.set_num_threads(n)`` and ``fastrnn.get_num_threads()`` govern the
threads a batch runs on (every CPU by default, ``FASTRNN_NUM_THREADS`` at
start-up); the results are the same for any number of them.

``fastrnn.load_pretrained()`` returns a small LSTM that ships with the package,
trained on Python source, in the same ``(model, vocab)`` form.

``fastrnn.sweep(text, out_dir, grid, options=...)`` trains one run per
combination of option values on a Dask cluster and returns the table of results
(Dask is imported only then: ``pip install "fastrnn[sweep]"``).
"""

from fastrnn._threads import get_num_threads, set_num_threads
from fastrnn.inference import evaluate, generate
from fastrnn.interop import from_torch
from fastrnn.model import GPT, GRU, LSTM, RNN
from fastrnn.pretrained import load_pretrained
from fastrnn.sweeps import sweep
from fastrnn.training import Trainer, TrainingConfig, load_model
from fastrnn.vocab import Vocabulary

__all__ = ["RNN", "GPT", "LSTM", "GRU", "Vocabulary", "TrainingConfig", "Trainer", "load_model",
           "generate", "evaluate", "from_torch", "load_pretrained", "sweep", "set_num_threads",
           "get_num_threads"]
__version__ = "0.1.0"
