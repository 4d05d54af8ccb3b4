"""fastrnn against PyTorch on batched training: float32 and float64, 1 thread and every core.

Usage, from the repository root (unset the variables that pin OpenBLAS to
its AVX2 kernels where a host sets them; the results record which kernel ran)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/studies/vs_torch.py \\
        --json benchmarks/results/vs_torch.json --readme README.md

One call is one SGD step with element-wise clipping at 5 on the next chunk
of B = 32 streams of T = 25 characters (V = 65), the state carried: fastrnn's
``train(x, y, lr, clip=5.0, h0=last_hidden)`` and the plain PyTorch loop of
``common/torch_gated.py`` / ``common/torch_rnn.py`` (one-hot inputs built outside the
timed call, ``nn.LSTM``/``nn.GRU``/``nn.RNN`` + ``nn.Linear``, cross-entropy,
``clip_grad_value_``, ``torch.optim.SGD``).  Both sides get the same number
of threads (``fastrnn.set_num_threads``, ``torch.set_num_threads``) and the
same initial weights, in the dtype of the row.

The four implementations of a case are timed interleaved in blocks of about
0.3 s (``common.bench.interleaved``), never call by call: OpenBLAS's and PyTorch's
OpenMP threads spin after each call, and alternating single calls would slow
both.  Each time is the median block, in microseconds per character.

``gemm`` is the floor fastrnn's design sets itself: the same sequence of
matrix products a step makes (the recurrence forward and back per time step,
the recurrent weight gradient, the output layer's three products) and nothing
else, in the row's dtype, on the same shards and threads as fastrnn's own
step (:mod:`fastrnn._threads`), with the same products: the recurrence's by
:func:`fastrnn._kernels.packed.product` (its weights packed once a chunk on
an AVX-512 host, BLAS elsewhere), the others by BLAS.
"""

import os
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCHMARKS))  # common, tables
sys.path.insert(0, str(BENCHMARKS.parent))  # the fastrnn of this checkout

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402

import numpy as np  # noqa: E402
import tables  # noqa: E402
from common.batched_step import CASES, B, fastrnn_step, torch_step  # noqa: E402
from common.bench import (  # noqa: E402
    T,
    V,
    blas_libraries,
    interleaved,
    markdown_table,
    stream,
    vector_isa,
)
from numba import njit  # noqa: E402

import fastrnn  # noqa: E402
from fastrnn import _threads  # noqa: E402
from fastrnn._kernels.packed import pack, product, recurrent_pack_size  # noqa: E402

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
DTYPES = ("float32", "float64")
HAVE_TORCH = importlib.util.find_spec("torch") is not None  # without it: fastrnn and GEMMs only


@njit(cache=False, nogil=True)
def _gemms(h, h_all, dA_all, W, Why, z, dz, out, dh, dW, dWhy, dh_all, packing):
    """The products of one step of one shard (see the module docstring)."""
    steps = h_all.shape[0] // h.shape[0]
    rows = h.shape[0]
    packed = pack(W.T, packing)
    for t in range(steps):  # recurrence, forward: (rows, H) x (H, G*H)
        product(h, W.T, packed, out, t % 2 == 1)
    packed = pack(W, packing)
    for t in range(steps):  # recurrence, backward: (rows, G*H) x (G*H, H)
        product(dA_all[t * rows:(t + 1) * rows], W, packed, dh, t % 2 == 1)
    np.dot(dA_all.T, h_all, dW)  # dW_hh: (G*H, N) x (N, H)
    np.dot(Why, h_all.T, z)  # logits: (O, H) x (H, N)
    np.dot(dz, h_all, dWhy)  # dWhy: (O, N) x (N, H)
    np.dot(dz.T, Why, dh_all)  # dh: (N, O) x (O, H)


def _gemm_step(kind, dtype):
    H, G = CASES[kind][1], GATES[kind]
    rng = np.random.default_rng(0)
    shards = []
    for start, stop in _threads.shards(B):
        rows, N = stop - start, (stop - start) * T

        def r(*shape):
            return rng.standard_normal(shape).astype(dtype)

        shards.append((r(rows, H), r(N, H), r(N, G * H), r(G * H, H), r(V, H), r(V, N), r(V, N),
                       r(rows, G * H), r(rows, H), r(G * H, H), r(V, H), r(N, H),
                       np.empty(recurrent_pack_size(rows, H, G * H, np.dtype(dtype).itemsize),
                                dtype)))

    def step():
        _threads.run_shards(lambda k: _gemms(*shards[k]), len(shards))

    return step


def measure(seconds, threads_list, block_s=0.3):
    if HAVE_TORCH:
        import common.torch_gated  # noqa: F401 -- both set one torch thread on import: import first
        import common.torch_rnn  # noqa: F401
        import torch
    rows = []
    pairs = stream(B)
    for kind, threads in itertools.product(CASES, threads_list):
        fastrnn.set_num_threads(threads)
        calls = {}
        for dtype in DTYPES:
            calls[f"fastrnn {dtype}"] = fastrnn_step(kind, dtype, pairs)
            if HAVE_TORCH:
                torch.set_num_threads(threads)
                calls[f"torch {dtype}"] = torch_step(kind, dtype, pairs)
            calls[f"gemm {dtype}"] = _gemm_step(kind, dtype)
        times = interleaved(calls, seconds, block_s=block_s, min_rounds=3)
        us = {name: statistics.median(t) / (B * T) * 1e6 for name, t in times.items()}
        row = {"case": CASES[kind][0], "model": kind, "threads": threads, "us_per_char": us}
        for dtype in DTYPES:
            torch_us = us.get(f"torch {dtype}")
            row[f"speedup_{dtype}"] = torch_us / us[f"fastrnn {dtype}"] if torch_us else None
        rows.append(row)
        print(f"{row['case']:<11} {threads} thread(s): " + ", ".join(
            f"{name} {value:.2f}" for name, value in us.items()) + " us/char; vs torch: "
            + ", ".join(f"{dtype} {_ratio(row[f'speedup_{dtype}'])}" for dtype in DTYPES),
            flush=True)
    return rows


def _ratio(value):
    return "n/a" if value is None else f"{value:.2f}x"


def table(rows):
    """The Markdown table of :func:`measure`'s rows."""
    columns = [("model", False), ("threads", True)]
    for short in ("f32", "f64"):
        columns += [(f"fastrnn {short}", True), (f"torch {short}", True),
                    (f"**{short} speed-up**", True), (f"GEMMs {short}", True)]
    body = []
    for row in rows:
        us = row["us_per_char"]
        cells = [row["case"], str(row["threads"])]
        for dtype in DTYPES:
            torch_us = us.get(f"torch {dtype}")
            cells += [f"{us[f'fastrnn {dtype}']:.2f}",
                      "n/a" if torch_us is None else f"{torch_us:.2f}",
                      f"**{_ratio(row[f'speedup_{dtype}'])}**", f"{us[f'gemm {dtype}']:.2f}"]
        body.append(cells)
    return markdown_table(columns, body)


def _machine(threads_list):
    import numba

    torch = None
    if HAVE_TORCH:
        import torch

    cpu, isa = vector_isa()
    return {"cpu": cpu, "vector_isa": isa, "cores": len(os.sched_getaffinity(0)),
            "threads": threads_list, "blas": blas_libraries(),
            "openblas_env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE",
                                                            "OPENBLAS_L2_SIZE")},
            "torch": torch.__version__ if torch else None, "numba": numba.__version__,
            "numpy": np.__version__, "python": platform.python_version(),
            "fastrnn": fastrnn.__version__}


def readme_table(saved):
    """The README's table and its caption, from the saved JSON (``rows``, ``machine``)."""
    machine = saved["machine"]
    blas = "; ".join(machine["blas"])
    return (f"{table(saved['rows'])}\n\n"
            f"Microseconds per character of one SGD step with clipping (B={B}, T={T}, V={V}); "
            f"speed-up = torch time / fastrnn time, both sides on the same threads; GEMMs: the "
            f"matrix products of fastrnn's step alone. {machine['cores']}-core {machine['cpu']} "
            f"({machine['vector_isa']}), BLAS {blas} (fastrnn's kernels call SciPy's), torch "
            f"{machine['torch']}; measured by `benchmarks/studies/vs_torch.py`.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0,
                        help="interleaved timing per case and thread count (default 6)")
    parser.add_argument("--block", type=float, default=0.3,
                        help="seconds of one block of calls (default 0.3)")
    parser.add_argument("--threads", type=int, nargs="*", default=None,
                        help="thread counts (default: 1 and every CPU)")
    parser.add_argument("--json", type=Path, help="write the rows and the machine here")
    parser.add_argument("--readme", type=Path,
                        help="put the table into this file's vs-torch table")
    args = parser.parse_args(argv)
    if args.readme:  # before minutes of measuring
        try:
            tables.check(args.readme, "vs-torch")
        except (OSError, tables.MarkerError) as exc:
            sys.exit(f"vs_torch: {args.readme}: {exc}")
    cores = len(os.sched_getaffinity(0))
    threads_list = args.threads or sorted({1, cores})
    machine = _machine(threads_list)
    print(f"{machine['cores']} cores, {machine['cpu']} ({machine['vector_isa']}); BLAS: "
          f"{'; '.join(machine['blas'])}; OPENBLAS_* = {machine['openblas_env']}", flush=True)
    rows = measure(args.seconds, threads_list, args.block)
    print(table(rows))
    saved = {"machine": machine, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(saved, indent=2) + "\n")
    if args.readme:
        tables.write(args.readme, "vs-torch", readme_table(saved))


if __name__ == "__main__":
    main()
