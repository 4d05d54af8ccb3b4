"""Fill the compiled-code cache ahead of time: :func:`compile_kernels` (``fastrnn compile``).

Every kernel compiles on its first call and is cached on disk, so a new
environment pays the compile once, on its first run.  A container image or a
cluster's workers can pay it at build time instead: this runs each chosen
model's kernels once on tiny inputs, in the paths a training run and sampling
take (one stream, a batch, a batch of several shards; every optimizer), which
compiles and caches exactly those kernels.
"""

import time

import numpy as np
from numba.core import event

from fastrnn._validation import DTYPES, check_dtype
from fastrnn.config import TrainingConfig
from fastrnn.model import MODELS
from fastrnn.optim import Optimizer

__all__ = ["CompileLog", "compile_kernels"]

OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam")


class CompileLog(event.Listener):
    """The fastrnn functions Numba compiles while this is entered, from its compile events.

    ``with CompileLog() as names:`` gives the list, each function once in the
    order of its first compilation (``module.qualname``; kernels and the size
    helpers they call).  Loading a kernel from the cache compiles nothing.
    """

    def __init__(self):
        self.names = []

    def on_start(self, ev):
        function = ev.data["dispatcher"].py_func
        name = f"{function.__module__}.{function.__qualname__}"
        if function.__module__.startswith("fastrnn.") and name not in self.names:
            self.names.append(name)

    def on_end(self, ev):
        pass

    def __enter__(self):
        event.register("numba:compile", self)
        return self.names

    def __exit__(self, *exc):
        event.unregister("numba:compile", self)


def _exercise(model):
    """Call every kernel the model's training runs, sampling and script API use, on tiny inputs."""
    rng = np.random.default_rng(0)
    for shape in ((3,), (2, 3), (20, 3)):  # one stream, one shard, two shards
        x = rng.integers(0, model.input_dim, shape)
        y = rng.integers(0, model.output_dim, shape)
        xs, hs, ps = model.forward(x)
        if hasattr(model, "backward"):  # the tanh RNN's, from given states (min-char-rnn's)
            model.backward(xs, hs, ps, y)
        model.loss(x, y)
        model.gradients(x, y)
        model.train(x, y, 0.01)
        model.train(x, y, 0.01, h0=model.last_hidden)  # a carried state: a training loop's
        model.train(x.tolist(), y.tolist(), 0.01)  # lists: a script's
    model.predict(0, 3, seed=0)
    model.predict(0, 3, seed=0, top_k=2, top_p=0.9)
    theta, grad = model.parameter_vector, model.gradient_vector
    for name in OPTIMIZERS:
        optimizer = Optimizer(TrainingConfig(optimizer=name), theta.shape[0], dtype=model.dtype)
        optimizer.step(theta, grad, 0.01, 5.0)


def compile_kernels(models=tuple(MODELS), dtypes=DTYPES[:1], report=None):
    """Compile (or load from the cache) the kernels of ``models`` in ``dtypes``.

    Parameters
    ----------
    models : sequence of {"rnn", "lstm", "gru"}, default all three
    dtypes : sequence of {"float64", "float32"}, default ("float64",)
    report : callable, optional
        Called as ``report(model, dtype, seconds, functions)`` after each pair,
        ``functions`` the names of the functions compiled for it (none when the
        cache had them all).

    Returns
    -------
    list of tuple (str, str, float, list of str)
        ``(model, dtype, seconds, functions)`` for each pair, in order.

    Raises
    ------
    ValueError
        For an unknown model or dtype (before anything compiles).
    """
    models = list(models)
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ValueError(f"models must be some of {', '.join(MODELS)}, got {models!r}")
    dtypes = [check_dtype(d).name for d in dtypes]
    if not dtypes:
        raise ValueError("dtypes must name at least one dtype")
    done = []
    for name in models:
        for dtype in dtypes:
            start = time.perf_counter()
            with CompileLog() as functions:
                _exercise(MODELS[name](5, 8, 5, seed=0, dtype=dtype))
            seconds = time.perf_counter() - start
            done.append((name, dtype, seconds, functions))
            if report is not None:
                report(name, dtype, seconds, functions)
    return done
