"""The batched recurrence's matrix product: packed once a chunk against BLAS at every call.

Usage, from the repository root::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/studies/packed_product.py
    python benchmarks/studies/packed_product.py --seconds 0.5     # smoke test (CI)

For the products a batched step makes 25 times a chunk, on one thread,
``C (M, N) = A (M, K) @ W (K, N)`` with M = 16 streams (a shard) and 32:

* **packed**: :func:`fastrnn._kernels.packed.packed_dot`, ``W`` packed once
  (its packing is not timed: a chunk packs once for 25 products);
* **BLAS**: ``np.dot`` inside a Numba function, which calls SciPy's BLAS (the
  one fastrnn's kernels use), repacking ``W`` at every call.

The two are timed interleaved in blocks of about 0.2 s (``common.bench.interleaved``);
each figure is the median block.  Prints GFLOP/s and the ratio, and writes
them with the machine (the BLAS and its kernel, the vector ISA) to ``--json``.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCHMARKS))  # common
sys.path.insert(0, str(BENCHMARKS.parent))  # the fastrnn of this checkout

import numpy as np  # noqa: E402
from common.bench import blas_libraries, interleaved, vector_isa  # noqa: E402
from numba import njit  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from fastrnn._kernels.packed import USE_PACKED, pack, packed_dot, packed_size  # noqa: E402

# (K, N): the LSTM 1x256's product forward and back, the RNN H=512's
SHAPES = {"LSTM 256 forward": (256, 1024), "LSTM 256 backward": (1024, 256),
          "RNN 512": (512, 512)}
ROWS = (16, 32)
CALLS = 25  # products per timed call: one chunk's steps


@njit(nogil=True)
def _packed(A, Wp, C):
    for t in range(CALLS):
        packed_dot(A, Wp, C, t % 2 == 1)  # alternating, as the recurrence does


@njit(nogil=True)
def _blas(A, W, C):
    for _ in range(CALLS):
        np.dot(A, W, C)


def measure(seconds, dtype):
    rng = np.random.default_rng(0)
    rows = []
    for (name, (K, N)), M in ((shape, M) for shape in SHAPES.items() for M in ROWS):
        A = rng.standard_normal((M, K)).astype(dtype)
        W = rng.standard_normal((K, N)).astype(dtype)
        Wp = pack(W, np.empty(packed_size(K, N, A.itemsize), dtype))
        C = np.empty((M, N), dtype)
        calls = {"packed": lambda A=A, Wp=Wp, C=C: _packed(A, Wp, C),
                 "blas": lambda A=A, W=W, C=C: _blas(A, W, C)}
        times = interleaved(calls, seconds, block_s=0.2, min_rounds=3)
        gflops = {side: 2 * M * K * N * CALLS / statistics.median(t) / 1e9
                  for side, t in times.items()}
        row = {"product": name, "M": M, "K": K, "N": N, "dtype": np.dtype(dtype).name,
               "gflops": gflops, "ratio": gflops["packed"] / gflops["blas"]}
        rows.append(row)
        print(f"{name:<18} {np.dtype(dtype).name} M={M:<3} packed {gflops['packed']:6.1f} GF/s, "
              f"BLAS {gflops['blas']:6.1f} GF/s: {row['ratio']:.2f}x", flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="timing per shape and row count (default: 4)")
    parser.add_argument("--dtype", choices=("float32", "float64"), nargs="+",
                        default=["float32", "float64"])
    parser.add_argument("--json", type=Path, help="write the rows and the machine here")
    args = parser.parse_args(argv)
    blas = blas_libraries()  # loads SciPy's BLAS, so that the limit below covers it too
    with threadpool_limits(1):
        rows = [row for dtype in args.dtype for row in measure(args.seconds, dtype)]
    cpu, isa = vector_isa()
    machine = {"cpu": cpu, "vector_isa": isa, "threads": 1, "blas": blas,
               "models_use_packed": USE_PACKED}
    print(f"1 thread, {cpu} ({isa}), {', '.join(blas)}; the models use the packed product "
          f"here: {USE_PACKED}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
