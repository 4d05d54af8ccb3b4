"""Fill the compiled-code cache ahead of time: :func:`compile_kernels` (``fastrnn compile``).

Every kernel compiles on its first call and is cached on disk, so a new
environment pays the compile once, on its first run.  A container image or a
cluster's workers can pay it at build time instead: this runs each chosen
model's kernels once on tiny inputs, in the paths a training run and sampling
take (one stream, a batch, a batch of several shards; every optimizer), which
compiles and caches exactly those kernels.  Several processes can share the
work (``jobs``), one model and dtype each at a time: they save into the same
cache, which takes that safely (:class:`fastrnn._kernels.jit.SharedCache`).
"""

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from numba.core import event

from fastrnn._validation import DTYPES, check_dtype, check_int
from fastrnn.model import MODELS
from fastrnn.optim import Optimizer
from fastrnn.training.config import TrainingConfig

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


def _compile_pair(name, dtype):
    """Compile one model's kernels in one dtype: ``(name, dtype, seconds, functions)``."""
    start = time.perf_counter()
    with CompileLog() as functions:
        _exercise(MODELS[name](5, 8, 5, seed=0, dtype=dtype))
    return name, dtype, time.perf_counter() - start, functions


def compile_kernels(models=tuple(MODELS), dtypes=DTYPES[:1], report=None, jobs=1):
    """Compile (or load from the cache) the kernels of ``models`` in ``dtypes``.

    Parameters
    ----------
    models : sequence of {"rnn", "lstm", "gru"}, default all three
    dtypes : sequence of {"float64", "float32"}, default ("float64",)
    report : callable, optional
        Called as ``report(model, dtype, seconds, functions)`` after each pair,
        in order, ``functions`` the names of the functions compiled for it
        (none when the cache had them all).
    jobs : int, default 1
        Processes to compile in: with more than one (and more than one pair),
        each pair compiles in a new process, up to ``jobs`` at once; with one,
        in this process.  Each process takes a pair's whole time, so two
        halve the time of four pairs, not of one.

    Returns
    -------
    list of tuple (str, str, float, list of str)
        ``(model, dtype, seconds, functions)`` for each pair, in order;
        ``seconds`` the pair's own time, in whichever process compiled it.

    Raises
    ------
    ValueError
        For an unknown model or dtype or a ``jobs`` below 1 (before anything
        compiles).
    """
    models = list(models)
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ValueError(f"models must be some of {', '.join(MODELS)}, got {models!r}")
    dtypes = [check_dtype(d).name for d in dtypes]
    if not dtypes:
        raise ValueError("dtypes must name at least one dtype")
    jobs = check_int("jobs", jobs, low=1)
    # Model by model, each in every dtype: pairs side by side then compile the same kernels
    # for different dtypes, not the same compile twice.
    pairs = [(name, dtype) for name in models for dtype in dtypes]
    done = []
    for result in _compiled(pairs, min(jobs, len(pairs))):
        done.append(result)
        if report is not None:
            report(*result)
    return done


def _compiled(pairs, jobs):
    """:func:`_compile_pair` of each pair, in order: here, or in up to ``jobs`` new processes."""
    if jobs == 1:
        for pair in pairs:
            yield _compile_pair(*pair)
        return
    # New processes by "spawn": a fork of a process that has run Numba's compiler (and its
    # threads) is not safe.
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield from pool.map(_compile_pair, *zip(*pairs, strict=True))
    finally:
        pool.shutdown(cancel_futures=True)
