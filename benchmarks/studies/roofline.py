"""How close fastrnn is to this machine's floor, and which speed targets that floor allows.

Usage, from the repository root::

    python benchmarks/studies/roofline.py                      # every case, ~4 s each
    python benchmarks/studies/roofline.py --seconds 10 --out benchmarks/results/roofline.md
    python benchmarks/studies/roofline.py --case LSTM --case GRU --seconds 30
    python benchmarks/studies/roofline.py --seconds 0.3        # CI's smoke run: too short to trust

The floor is a model of the least time a training step takes on one core.
For one stream (B = 1) it is the time to read the recurrent matrix ``W_hh``
twice per character (in the forward matrix-vector product and in the
backward one: step t+1 needs the result of step t, so no two steps can share
a pass over the matrix), plus the products that are not sequential (the
output layer's three, ``dW_hh``) at the machine's best DGEMM rate, one after
the other.  Sampling reads ``W_hh`` and ``Why`` once per character.  With a
batch every product is a GEMM, and the floor is all the flops at the DGEMM
rate.  It leaves out the softmax, the activations, the optimizer and every
call overhead.  The one way below it is to hide the arithmetic entirely under
the matrix reads (the reads alone are printed too): fusing ``dW_hh`` into the
backward loop was tried that way and ran slower.

This machine is shared and its speed drifts by tens of percent from one
minute to the next, so a floor measured at one time and a benchmark run at
another do not compare.  Here every quantity of a case is measured in the
same window, interleaved in blocks of a few milliseconds (A B C D, B C D A,
...), and each takes its fastest block:

* **read**: a plain vectorised sum over an array the size of the matrix,
  visited alternately first-to-last and last-to-first in 4 kB blocks (the
  order fastrnn's matrix-vector loops use, which keeps the rows read last in
  L1/L2 for the next step); fastrnn's matrix-vector products read slower;
* **DGEMM**: OpenBLAS on a 512 x 512 x 512 product;
* **fastrnn**, the **reference** and **torch** (when installed): the
  benchmark suite's calls (``common/bench.py``), one chunk each.

For each target it prints fastrnn's time, the floor and the fraction of it
reached (floor / fastrnn), and the time the target asks for (the other
implementation's time / target).  A ratio "needed / floor" below 1 means the
target asks for less time than the floor: out of reach on this machine unless
nearly all the arithmetic hides under the matrix reads.
"""

import os
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCHMARKS))  # common
sys.path.insert(0, str(BENCHMARKS.parent))  # the fastrnn of this checkout

from common.single_thread import limit_and_verify, set_single_thread_env  # noqa: E402  isort: skip

set_single_thread_env()

import argparse  # noqa: E402
import datetime  # noqa: E402
import subprocess  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
from common.bench import (  # noqa: E402
    CLIP,
    LEARNING_RATE,
    PREDICT_CHARS,
    SEED,
    NumpyAPI,
    T,
    V,
    interleaved,
    make_model,
    markdown_table,
    stream,
    vector_isa,
)

import fastrnn  # noqa: E402
import fastrnn.reference  # noqa: E402

# (label, model, B, H, op, {comparison: target}): the speed targets fastrnn is held to
CASES = (
    ("train RNN B=1 H=100", "rnn", 1, 100, "train", {"reference": 12, "torch": 8}),
    ("train RNN B=1 H=512", "rnn", 1, 512, "train", {"reference": 7, "torch": 4.5}),
    ("predict RNN H=100", "rnn", 1, 100, "predict", {"reference": 10}),
    ("train RNN B=32 H=100", "rnn", 32, 100, "train", {"torch": 1.5}),
    ("train RNN B=32 H=512", "rnn", 32, 512, "train", {"torch": 1.5}),
    ("train LSTM B=1 H=128", "lstm", 1, 128, "train", {"reference": 15, "torch": 5}),
    ("train GRU B=1 H=128", "gru", 1, 128, "train", {"reference": 15, "torch": 5}),
)
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
GEMM_N = 512
_BLOCK = 512  # float64s per read block: a compile-time trip count, so LLVM vectorises
_BLOCK_S = 5e-3


@numba.njit(fastmath={"reassoc", "contract"}, error_model="numpy")
def _read(a, passes):
    """Sum ``a`` ``passes`` times in 4 kB blocks, alternately first-to-last and last-to-first."""
    nb = a.shape[0] // _BLOCK
    total = 0.0
    for p in range(passes):
        reverse = p % 2 == 1
        for q in range(nb):
            base = (nb - 1 - q if reverse else q) * _BLOCK
            block = a[base:base + _BLOCK]
            s = 0.0
            for i in range(_BLOCK):
                s += block[i]
            total += s
    return total


def read_call(nbytes, passes):
    """A call that reads an array ``passes`` times, and the factor that scales its time to
    ``nbytes`` (the array is rounded up to whole 4 kB blocks)."""
    a = np.random.default_rng(0).standard_normal(-(-nbytes // (8 * _BLOCK)) * _BLOCK)
    _read(a, 2)
    return (lambda: _read(a, passes)), nbytes / a.nbytes


def gemm_call(n=GEMM_N):
    rng = np.random.default_rng(0)
    a, b, out = rng.standard_normal((n, n)), rng.standard_normal((n, n)), np.empty((n, n))
    return lambda: np.dot(a, b, out)


def floor_parts(model, B, H, op):
    """(bytes read per pass, passes per call, flops per character) of a case's floor."""
    G = GATES[model]
    if op == "predict":
        return 8 * (H * H + V * H), PREDICT_CHARS, 0.0
    out_layer = 3 * 2.0 * V * H  # logits, dWhy, dh from the output layer
    if B > 1:  # forward and backward recurrence GEMMs, dW_hh, the output layer
        return 0, 0, 3 * 2.0 * G * H * H + out_layer
    return 8 * G * H * H, 2 * T, 2.0 * G * H * H + out_layer


def implementation_call(impl, model, B, H, op):
    """The benchmark suite's call of one implementation (None when torch is missing)."""
    if impl == "torch":
        try:
            import torch  # noqa: F401
        except ImportError:
            return None
    if model == "rnn":
        api = make_model(impl, H)
        return api.train_call(stream(B)) if op == "train" else api.predict_call(PREDICT_CHARS)
    fast_cls = fastrnn.LSTM if model == "lstm" else fastrnn.GRU
    pairs = stream(B)
    if impl == "torch":
        from common.torch_gated import TorchGated

        return TorchGated(fast_cls(V, H, V, seed=SEED), LEARNING_RATE, CLIP).train_call(pairs)
    cls = fast_cls if impl == "fastrnn" else getattr(fastrnn.reference, fast_cls.__name__)
    return NumpyAPI(cls(V, H, V, seed=SEED)).train_call(pairs)


def measure_case(model, B, H, op, targets, seconds):
    nbytes, passes, flops_per_char = floor_parts(model, B, H, op)
    chars = PREDICT_CHARS if op == "predict" else B * T
    calls = {"gemm": gemm_call()}
    scale = 1.0
    if nbytes:
        calls["read"], scale = read_call(nbytes, passes)
    for impl in ("fastrnn", *targets):
        fn = implementation_call(impl, model, B, H, op)
        if fn is not None:
            calls[impl] = fn
    best = {name: min(t) for name, t in
            interleaved(calls, seconds, block_s=_BLOCK_S, min_rounds=5).items()}
    rate = 2.0 * GEMM_N**3 / best["gemm"]
    read_us = best["read"] * scale / chars * 1e6 if nbytes else 0.0
    flops_us = flops_per_char / rate * 1e6
    us = {impl: best[impl] / chars * 1e6 for impl in calls if impl not in ("gemm", "read")}
    return {"floor": read_us + flops_us, "read": read_us, "flops": flops_us, "rate": rate,
            "us": us}


def provenance():
    """When and on what code a run was made, for the header of its output.

    For example ``2026-11-29 23:40 UTC, commit 62a6c5f02b (uncommitted
    changes); numpy 2.4.6, numba 0.68.1``: the commit of the checkout, read
    with git ("commit unknown" outside a git checkout or without git), and the
    versions that set the speed.
    """
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    try:
        def git(*args):
            return subprocess.run(("git", *args), cwd=BENCHMARKS, capture_output=True, text=True,
                                  check=True, timeout=10).stdout.strip()

        commit = f"commit {git('rev-parse', '--short=10', 'HEAD')}"
        if git("status", "--porcelain", "--untracked-files=no"):
            commit += " (uncommitted changes)"
    except (OSError, subprocess.SubprocessError):
        commit = "commit unknown"
    versions = [f"numpy {np.__version__}", f"numba {numba.__version__}"]
    try:
        import torch

        versions.append(f"torch {torch.__version__}")
    except ImportError:
        pass
    return f"{when}, {commit}; " + ", ".join(versions)


def _fmt(value):
    return "–" if value is None else f"{value:.3g}"


_COLUMNS = [("case", False), ("fastrnn µs/char", True), ("floor µs/char (read + flops)", True),
            ("floor / fastrnn", True), ("vs", False), ("their µs/char", True), ("speed-up", True),
            ("target", True), ("needed µs/char", True), ("needed / floor", True)]


def table(results):
    rows = []
    for label, r, targets in results:
        fast = r["us"]["fastrnn"]
        floor = (f"{r['floor']:.3g} ({r['read']:.3g} + {r['flops']:.3g})" if r["read"]
                 else f"{r['floor']:.3g} (flops)")
        for other, target in targets.items():
            theirs = r["us"].get(other)
            needed = None if theirs is None else theirs / target
            room = None if needed is None else needed / r["floor"]
            rows.append([label, f"{fast:.3g}", floor, f"{r['floor'] / fast:.0%}", other,
                         _fmt(theirs), "–" if theirs is None else f"{theirs / fast:.1f}×",
                         f"{target}×", _fmt(needed), "–" if room is None else f"{room:.2f}"])
    return markdown_table(_COLUMNS, rows) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="measuring time per case (default: 4)")
    parser.add_argument("--case", action="append", metavar="TEXT",
                        help="only the cases whose label contains TEXT, any case (repeatable)")
    parser.add_argument("--out", help="also write the Markdown to this file")
    args = parser.parse_args(argv)
    threads = limit_and_verify()["max_threads"]
    if threads not in (1, None):
        print(f"roofline: BLAS still runs {threads} threads", file=sys.stderr)
        return 1
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    results = []
    rates = []
    cases = [c for c in CASES
             if not args.case or any(text.lower() in c[0].lower() for text in args.case)]
    if not cases:
        print(f"roofline: no case matches {args.case}; the cases are: "
              + "; ".join(c[0] for c in CASES), file=sys.stderr)
        return 2
    for label, model, B, H, op, targets in cases:
        r = measure_case(model, B, H, op, targets, args.seconds)
        rates.append(r["rate"])
        results.append((label, r, targets))
        print(f"{label}: fastrnn {r['us']['fastrnn']:.3g} us/char, floor {r['floor']:.3g}",
              file=sys.stderr)
    cpu_name, isa = vector_isa()
    header = (f"- Machine: {cpu_name}, vector ISA {isa}, {os.cpu_count()} logical CPUs, 1 thread "
              f"(BLAS and torch); DGEMM "
              f"{min(rates) / 1e9:.0f}-{max(rates) / 1e9:.0f} GFLOP/s over the cases; each row's "
              f"quantities measured interleaved in the same {args.seconds:g} s window.\n"
              f"- Run: {provenance()}.\n\n")
    text = header + table(results)
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
