"""Batched training in float32 and float64, on 1 thread and on every core, against PyTorch.

The comparison users make: fastrnn against PyTorch with its defaults
(float32, every core) and in float64, on the same number of threads on both
sides (``fastrnn.set_num_threads``, ``torch.set_num_threads``).  One call is
one SGD step with clipping on the next chunk of B=32 streams (T=25, V=65) of
an LSTM of one layer of 256, a GRU of the same size or an RNN of 512
(``common/batched_step.py``; ``studies/vs_torch.py`` times the same calls
interleaved for the README's table).  A benchmark's group is one (model,
dtype, threads) case, its ``impl`` "fastrnn" or "torch"; ``extra_info`` adds
``dtype`` and ``threads``.
"""

import os

import pytest
from common.batched_step import CASES, B, fastrnn_step, torch_step
from common.bench import T, measure, stream

import fastrnn

EVERY_CORE = len(os.sched_getaffinity(0))
THREADS = sorted({1, EVERY_CORE})


@pytest.fixture
def threads(request):
    """Run the benchmark on ``request.param`` threads (fastrnn's and torch's), then restore."""
    before = fastrnn.get_num_threads()
    fastrnn.set_num_threads(request.param)
    torch_before = None
    try:
        import torch

        torch_before = torch.get_num_threads()
        torch.set_num_threads(request.param)
    except ImportError:
        pass
    yield request.param
    fastrnn.set_num_threads(before)
    if torch_before is not None:
        import torch

        torch.set_num_threads(torch_before)


@pytest.mark.parametrize("threads", THREADS, indirect=True, ids=lambda n: f"threads{n}")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("model", sorted(CASES))
@pytest.mark.parametrize("impl", ["fastrnn", "torch"])
def test_train_batched(benchmark, bench_settings, model, dtype, threads, impl):
    if impl == "torch":
        pytest.importorskip("torch")
    fn = (torch_step if impl == "torch" else fastrnn_step)(model, dtype, stream(B))
    benchmark.extra_info.update(model=model, layers=1, dtype=dtype)
    H = CASES[model][1]
    loss = measure(benchmark, fn, bench_settings, op="train", impl=impl, B=B, H=H,
                   chars=B * T, threads=threads)
    benchmark.group = f"train {model} B={B} H={H} {dtype} threads={threads}"
    assert 0.0 < loss < 1e3
