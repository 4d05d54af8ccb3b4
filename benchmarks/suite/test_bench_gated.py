"""LSTM and GRU: fastrnn vs its NumPy reference vs PyTorch's nn.LSTM / nn.GRU, train step.

The conventions of ``test_bench_rnn.py``: each benchmark's group is one
comparison, its parameter ``impl`` the implementation, and ``extra_info``
holds op, impl, B, H, T, V, ``chars_per_call`` and ``threads``, plus ``model``
and ``layers`` (``report.py`` shows these as their own rows).  A call is
``train(x, y, 0.01, clip=5.0, h0=last_hidden)`` on the next chunk of a stream
(see ``common/bench.py``); PyTorch's is described in ``common/torch_gated.py``.

The sizes are those the gated models are judged at: one layer of H=128 for
one stream, two layers of H=256 for 32 streams (where the reference, ~0.3 s a
call, is left out).
"""

import pytest
from common.bench import CLIP, LEARNING_RATE, SEED, NumpyAPI, T, V, measure, stream

import fastrnn
import fastrnn.reference

# (model, layers, B, H, implementations)
CASES = [
    ("lstm", 1, 1, 128, ("fastrnn", "reference", "torch")),
    ("gru", 1, 1, 128, ("fastrnn", "reference", "torch")),
    ("lstm", 2, 32, 256, ("fastrnn", "torch")),
    ("gru", 2, 32, 256, ("fastrnn", "torch")),
]
CLASSES = {"lstm": (fastrnn.LSTM, fastrnn.reference.LSTM),
           "gru": (fastrnn.GRU, fastrnn.reference.GRU)}


@pytest.fixture(scope="session")
def warm_gated():
    """Compile (or load from numba's cache) the gated kernels: B == 1 and B > 1, 1 and 2 layers."""
    for fast, _ in CLASSES.values():
        for layers in (1, 2):
            m = fast(V, 8, V, num_layers=layers, seed=SEED)
            for B in (1, 2):
                x, y = stream(B, 1)[0]
                m.train(x, y, LEARNING_RATE, clip=CLIP)
                m.train(x, y, LEARNING_RATE, clip=CLIP, h0=m.last_hidden)
    return True


def _params():
    for model, layers, B, H, impls in CASES:
        for impl in impls:
            yield pytest.param(model, layers, B, H, impl, id=f"{model}-L{layers}-B{B}-H{H}-{impl}")


@pytest.mark.parametrize(("model", "layers", "B", "H", "impl"), list(_params()))
def test_train_gated(benchmark, bench_settings, blas_threads, warm_gated, model, layers, B, H,
                     impl):
    fast, ref = CLASSES[model]
    pairs = stream(B)
    threads = blas_threads
    if impl == "torch":
        pytest.importorskip("torch")
        import torch
        from common.torch_gated import TorchGated

        threads = torch.get_num_threads()
        fn = TorchGated(fast(V, H, V, num_layers=layers, seed=SEED), LEARNING_RATE,
                        CLIP).train_call(pairs)
    else:
        net = (fast if impl == "fastrnn" else ref)(V, H, V, num_layers=layers, seed=SEED)
        fn = NumpyAPI(net).train_call(pairs)

    benchmark.extra_info.update(model=model, layers=layers)
    loss = measure(benchmark, fn, bench_settings, op="train", impl=impl, B=B, H=H,
                   chars=B * T, threads=threads)
    benchmark.group = f"train {model} L={layers} B={B} H={H}"
    assert 0.0 < loss < 1e3
