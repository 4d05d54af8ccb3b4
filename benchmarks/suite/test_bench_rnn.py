"""fastrnn vs its NumPy reference vs PyTorch: train step, forward, backward, sampling.

Each benchmark's group is one comparison ("train B=1 H=100"); its parameter
``impl`` names the implementation.  ``extra_info`` holds op, impl, B, H, T, V,
``chars_per_call`` and ``threads``, from which ``report.py`` computes the time
per character.  What exactly each call does is listed in ``common/bench.py`` (and,
for PyTorch, ``common/torch_rnn.py``); the torch cases skip when torch is missing.
"""

import pytest
from common.bench import (
    BATCH,
    HIDDEN,
    IMPLEMENTATIONS,
    PREDICT_CHARS,
    T,
    chunk,
    make_model,
    measure,
    stream,
)

sizes = pytest.mark.parametrize("H", HIDDEN, ids=[f"H{h}" for h in HIDDEN])
batches = pytest.mark.parametrize("B", BATCH, ids=[f"B{b}" for b in BATCH])


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request, warm_kernels):
    """The implementation's name, once its prerequisites are in place."""
    if request.param == "torch":
        request.getfixturevalue("torch_checked")
    return request.param


@pytest.fixture
def threads(impl, blas_threads):
    """The thread count the implementation runs with."""
    if impl == "torch":
        import torch

        return torch.get_num_threads()
    return blas_threads


@sizes
@batches
def test_train(benchmark, bench_settings, threads, impl, B, H):
    fn = make_model(impl, H).train_call(stream(B))
    loss = measure(benchmark, fn, bench_settings, op="train", impl=impl, B=B, H=H,
                   chars=B * T, threads=threads)
    assert 0.0 < loss < 1e3


@sizes
@batches
def test_forward(benchmark, bench_settings, threads, impl, B, H):
    x, _ = chunk(B)
    fn = make_model(impl, H).forward_call(x)
    measure(benchmark, fn, bench_settings, op="forward", impl=impl, B=B, H=H,
            chars=B * T, threads=threads)


@sizes
@batches
def test_backward(benchmark, bench_settings, threads, impl, B, H):
    x, y = chunk(B)
    fn = make_model(impl, H).backward_call(x, y)
    measure(benchmark, fn, bench_settings, op="backward", impl=impl, B=B, H=H,
            chars=B * T, threads=threads)


@sizes
def test_predict(benchmark, bench_settings, threads, impl, H):
    fn = make_model(impl, H).predict_call(PREDICT_CHARS)
    out = measure(benchmark, fn, bench_settings, op="predict", impl=impl, B=1, H=H,
                  chars=PREDICT_CHARS, threads=threads)
    assert len(out) == PREDICT_CHARS
