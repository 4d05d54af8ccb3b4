"""Sizes, data, implementations and the timing helper shared by the benchmark modules.

Every benchmark times one zero-argument call ("one chunk") of one implementation:

========  ======================================================  ====================
op        the call                                                chars per call
========  ======================================================  ====================
train     ``train(x, y, 0.01, clip=5.0, h0=last_hidden)``         B * T
forward   ``forward(x)``                                          B * T
backward  ``backward(xs, hs, ps, y)`` on one saved forward pass   B * T
predict   ``predict(0, PREDICT_CHARS, temperature=1.0, seed=0)``  PREDICT_CHARS
========  ======================================================  ====================

For B = 1 the chunk is a 1-D (T,) array, the classic min-char-rnn call; for
B > 1 it is (B, T).  The data are uniformly random indices.

A train benchmark makes thousands of calls, so each call takes the next chunk
of a stream of ``STREAM_CHUNKS`` chunks (cycling) and carries the hidden state,
as a training loop does; the learning rate is 0.01 because plain SGD at 0.1
diverges on a single random stream within a few thousand steps (losses in the
thousands, probabilities underflowing to 0, ``log(0)`` in the reference),
which is neither realistic nor a fair place to time floating-point code.
"""

import itertools
import math
import time

import numpy as np

import fastrnn
import fastrnn.reference

__all__ = [
    "V", "T", "HIDDEN", "BATCH", "PREDICT_CHARS", "LEARNING_RATE", "CLIP", "SEED",
    "STREAM_CHUNKS", "IMPLEMENTATIONS", "QUICK", "chunk", "stream", "make_model", "measure",
    "vector_isa", "blas_libraries", "interleaved", "markdown_table", "NumpyAPI",
]

V = 65  # vocabulary (tiny-shakespeare)
T = 25  # steps per chunk (min-char-rnn's seq_length)
HIDDEN = (32, 100, 256, 512)
BATCH = (1, 32)
PREDICT_CHARS = 200
LEARNING_RATE = 0.01
STREAM_CHUNKS = 256
CLIP = 5.0
SEED = 0
IMPLEMENTATIONS = ("fastrnn", "reference", "torch")
QUICK = {"H": 100, "B": 1}  # the one size that --quick runs


def vector_isa():
    """The widest x86 vector extension the JIT compiles for here: "AVX-512", "AVX2", ...

    Where a hypervisor hides AVX-512 the JIT emits AVX2 code even on a CPU
    that has it, and the kernels' speed changes with it, so each record of a
    run states it.  Returns LLVM's host CPU name and that extension.
    """
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features()
    for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse2", "SSE2")):
        if features.get(flag):
            return llvm.get_host_cpu_name(), name
    return llvm.get_host_cpu_name(), "none"


def blas_libraries():
    """Each BLAS library loaded here, named by its owner: ``"scipy: openblas 0.3.30 SkylakeX"``.

    Loads SciPy's BLAS first: fastrnn's kernels call it (Numba's ``np.dot``
    goes there), but it is loaded only when the first such kernel compiles.
    NumPy may bring another one, which the kernels do not use.
    """
    import os

    from scipy.linalg import cython_blas  # noqa: F401
    from threadpoolctl import threadpool_info

    return sorted(f"{os.path.basename(os.path.dirname(lib['filepath'])).split('.')[0]}: "
                  f"{lib['internal_api']} {lib.get('version')} {lib.get('architecture')}"
                  for lib in threadpool_info() if lib["user_api"] == "blas")


def interleaved(calls, seconds, *, block_s, min_rounds):
    """Time every callable in turn, in blocks of about ``block_s`` seconds, for ``seconds``.

    Each round times one block of each call; the order rotates from round to
    round (A B C, B C A, ...; for two calls A B, B A: no call is always first).
    Every call runs twice before timing (caches, workspaces) and once more
    to size its block.  At least ``min_rounds`` rounds run.

    Parameters
    ----------
    calls : dict[str, callable]
        Zero-argument calls by name.

    Returns
    -------
    dict[str, list of float]
        Per-call seconds of each block, one entry per round (paired by index).
    """
    for fn in calls.values():
        fn()
        fn()
    sizes = {}
    for name, fn in calls.items():
        start = time.perf_counter()
        fn()
        sizes[name] = max(1, math.ceil(block_s / max(time.perf_counter() - start, 1e-7)))
    times = {name: [] for name in calls}
    names = list(calls)
    deadline = time.perf_counter() + seconds
    rounds = 0
    while rounds < min_rounds or time.perf_counter() < deadline:
        shift = rounds % len(names)
        for name in names[shift:] + names[:shift]:
            fn, n = calls[name], sizes[name]
            start = time.perf_counter()
            for _ in range(n):
                fn()
            times[name].append((time.perf_counter() - start) / n)
        rounds += 1
    return times


def markdown_table(columns, rows):
    """A Markdown table, without a final newline.

    Parameters
    ----------
    columns : list of (str, bool)
        Each column's title, and whether it is right-aligned (numbers).
    rows : iterable of list of str
        The cells of each row, one per column.
    """
    lines = ["| " + " | ".join(title for title, _ in columns) + " |",
             "|" + "|".join("---:" if right else "---" for _, right in columns) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def stream(B, n=STREAM_CHUNKS, seed=SEED):
    """``n`` consecutive chunks of B random index streams, as (inputs, targets) pairs.

    Each pair has shape (T,) for B == 1, else (B, T); targets are the inputs
    shifted by one, and chunk k+1 continues where chunk k stopped.
    """
    rng = np.random.default_rng(seed)
    text = rng.integers(0, V, size=(B, n * T + 1), dtype=np.int64)
    pairs = []
    for k in range(n):
        x = np.ascontiguousarray(text[:, k * T:(k + 1) * T])
        y = np.ascontiguousarray(text[:, k * T + 1:(k + 1) * T + 1])
        pairs.append((x[0], y[0]) if B == 1 else (x, y))
    return pairs


def chunk(B, seed=SEED):
    """One chunk: the first pair of :func:`stream`."""
    return stream(B, 1, seed)[0]


class NumpyAPI:
    """The calls to time of a model with the NumPy API (every fastrnn and reference model)."""

    def __init__(self, model):
        self.model = model

    def train_call(self, pairs):
        m = self.model
        chunks = itertools.cycle(pairs)

        def train():
            x, y = next(chunks)
            return m.train(x, y, LEARNING_RATE, clip=CLIP, h0=m.last_hidden)

        return train

    def forward_call(self, x):
        m = self.model

        def forward():
            return m.forward(x)

        return forward

    def backward_call(self, x, y):
        m = self.model
        xs, hs, ps = m.forward(x)

        def backward():
            return m.backward(xs, hs, ps, y)

        return backward

    def predict_call(self, num_chars):
        m = self.model

        def predict():
            return m.predict(0, num_chars, temperature=1.0, seed=SEED)

        return predict


def make_model(impl, H):
    """The implementation ``impl`` at hidden size H, with the same initial weights for all.

    ``"torch"`` must only be asked for after ``pytest.importorskip("torch")``.
    """
    if impl == "fastrnn":
        return NumpyAPI(fastrnn.RNN(V, H, V, seed=SEED))
    if impl == "reference":
        return NumpyAPI(fastrnn.reference.RNN(V, H, V, seed=SEED))
    if impl == "torch":
        from common.torch_rnn import TorchRNN

        return TorchRNN(fastrnn.reference.RNN(V, H, V, seed=SEED), LEARNING_RATE, CLIP)
    raise ValueError(f"unknown implementation {impl!r}")


def _probe(fn):
    """Seconds per call of ``fn``: the fastest of a few calls, batched when calls are short."""
    n = 1
    while True:
        best = math.inf
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(n):
                fn()
            best = min(best, (time.perf_counter() - start) / n)
        if best * n >= 2e-3 or n >= 4096:
            return best
        n *= 8


def measure(benchmark, fn, settings, *, op, impl, B, H, chars, threads):
    """Time ``fn`` with pytest-benchmark's pedantic mode, rounds sized from a probe.

    One round is ``iterations`` back-to-back calls, enough to last about
    ``budget / max_rounds`` seconds; there are as many rounds as fit in the
    budget, at least ``min_rounds`` and at most ``max_rounds``.  So a 20 us
    fastrnn call gets ~100 rounds of a few hundred calls each, and a 0.5 s
    reference step gets ``min_rounds`` rounds of one call (the budget is then
    exceeded rather than the statistics starved).

    Parameters
    ----------
    benchmark : pytest_benchmark.fixture.BenchmarkFixture
    fn : callable
        The zero-argument call to time.
    settings : dict
        ``budget`` (seconds), ``min_rounds``, ``max_rounds`` (from conftest).
    op, impl : str
    B, H, chars : int
        Recorded in ``extra_info`` with the thread count; ``chars`` is the
        number of characters one call processes, for per-char times.
    threads : int or None
    """
    benchmark.group = f"{op} B={B} H={H}"
    benchmark.extra_info.update(
        op=op, impl=impl, B=B, H=H, T=T, V=V, chars_per_call=chars, threads=threads
    )
    if benchmark.disabled:  # --benchmark-disable: run once as a smoke test
        return benchmark.pedantic(fn)
    fn()  # first call: workspaces, autograd graph, caches
    per_call = _probe(fn)
    round_target = settings["budget"] / settings["max_rounds"]
    iterations = max(1, math.ceil(round_target / per_call))
    rounds = int(settings["budget"] / (per_call * iterations))
    rounds = min(settings["max_rounds"], max(settings["min_rounds"], rounds))
    return benchmark.pedantic(fn, rounds=rounds, iterations=iterations, warmup_rounds=1)
