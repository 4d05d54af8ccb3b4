"""CI performance gate: fastrnn must stay several times faster than its NumPy reference.

Usage, from the repository root::

    python benchmarks/gate.py                      # floors: train 8x, predict 6x
    python benchmarks/gate.py --min-train-speedup 10 --min-predict-speedup 7

Measures, in one process and on one BLAS thread, the train step (H=100, B=1,
T=25, V=65) and sampling (``predict`` of 200 characters at H=100) of
``fastrnn.RNN`` and ``fastrnn.reference.RNN``, and exits with status 1 when a
speed-up (reference time / fastrnn time) is below its floor.

Why a busy or noisy machine does not fool it:

* a ratio, not a wall-clock time, is checked, so a slower machine moves both
  sides alike;
* the two implementations are timed interleaved (A B B A A B ...) in short
  blocks of about 2 ms, so a slow spell of the machine hits both;
* the decision uses each side's fastest block over a few hundred of them
  (noise only ever adds time), and prints the median of the pairwise ratios
  beside it as a cross-check;
* a ratio below its floor is measured again (``--retries``) and the gate
  fails only if every attempt is below the floor.

Takes about 5 s with numba's cache warm (``--seconds`` per comparison), plus
15-20 s on this 2-core machine the first time the kernels compile.
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # common
sys.path.insert(0, str(HERE.parent))  # the fastrnn of this checkout

from common.single_thread import limit_and_verify, set_single_thread_env  # noqa: E402  isort: skip

set_single_thread_env()

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

from common import bench  # noqa: E402
from common.bench import PREDICT_CHARS, T, V, make_model, stream  # noqa: E402

H = 100
_BLOCK_S = 2e-3


def interleaved(fast, slow, seconds, min_pairs=30):
    """Time ``fast`` and ``slow`` alternately (A B, B A, ...); their per-call times in seconds.

    Returns
    -------
    fast_times, slow_times : list of float
        One entry per block, paired by index.
    """
    times = bench.interleaved({"fast": fast, "slow": slow}, seconds, block_s=_BLOCK_S,
                              min_rounds=min_pairs)
    return times["fast"], times["slow"]


def summarise(fast_times, slow_times):
    """Speed-up from the fastest blocks, and the median pairwise speed-up."""
    pair_ratios = [s / f for f, s in zip(fast_times, slow_times, strict=True)]
    return {
        "fast_us": min(fast_times) * 1e6,
        "slow_us": min(slow_times) * 1e6,
        "speedup": min(slow_times) / min(fast_times),
        "median_pair_speedup": statistics.median(pair_ratios),
        "pairs": len(fast_times),
    }


def _calls():
    pairs = stream(1)
    return {
        "train": (make_model("fastrnn", H).train_call(pairs),
                  make_model("reference", H).train_call(pairs)),
        "predict": (make_model("fastrnn", H).predict_call(PREDICT_CHARS),
                    make_model("reference", H).predict_call(PREDICT_CHARS)),
    }


def _same_numbers(calls):
    """Run every call once; the first train step's losses must agree, or the ratio means nothing."""
    fast_loss, ref_loss = calls["train"][0](), calls["train"][1]()
    if not math.isclose(fast_loss, ref_loss, rel_tol=1e-9):
        return f"train losses differ: fastrnn {fast_loss!r}, reference {ref_loss!r}"
    for fn in calls["predict"]:
        fn()
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-train-speedup", type=float, default=8.0, metavar="X",
                        help="floor for the train-step speed-up (default: 8)")
    parser.add_argument("--min-predict-speedup", type=float, default=6.0, metavar="X",
                        help="floor for the sampling speed-up (default: 6)")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="measuring time per comparison and attempt (default: 2)")
    parser.add_argument("--retries", type=int, default=1,
                        help="re-measurements of a ratio below its floor (default: 1)")
    args = parser.parse_args(argv)
    floors = {"train": args.min_train_speedup, "predict": args.min_predict_speedup}

    threads = limit_and_verify()
    if threads["max_threads"] not in (None, 1):
        print(f"gate: error: BLAS still uses {threads['max_threads']} threads: {threads}",
              file=sys.stderr)
        return 1
    start = time.perf_counter()
    calls = _calls()
    mismatch = _same_numbers(calls)  # also the JIT warm-up: every kernel runs here
    warmup = time.perf_counter() - start
    print(f"fastrnn performance gate: H={H} B=1 T={T} V={V}, predict {PREDICT_CHARS} chars; "
          f"BLAS threads: {threads['max_threads'] or os.environ.get('OPENBLAS_NUM_THREADS')} "
          f"(via {threads['method']}); JIT warm-up {warmup:.1f} s")
    if mismatch:
        print(f"FAIL: {mismatch}")
        return 1

    failures = []
    for name, (fast, slow) in calls.items():
        for attempt in range(args.retries + 1):
            result = summarise(*interleaved(fast, slow, args.seconds))
            ok = result["speedup"] >= floors[name]
            print(f"{name:8s} fastrnn {result['fast_us']:9.1f} us"
                  f"  reference {result['slow_us']:9.1f} us"
                  f"  speed-up {result['speedup']:5.2f}x (median of {result['pairs']} pairs"
                  f" {result['median_pair_speedup']:5.2f}x)  floor {floors[name]:.1f}x"
                  f"  {'ok' if ok else 'BELOW FLOOR'}"
                  + (f" (attempt {attempt + 1})" if attempt else ""))
            if ok:
                break
        else:
            failures.append(f"{name} speed-up {result['speedup']:.2f}x is below the floor "
                            f"{floors[name]:.1f}x (fastrnn {result['fast_us']:.1f} us, reference "
                            f"{result['slow_us']:.1f} us per call)")
    if failures:
        print("FAIL: " + "; ".join(failures))
        return 1
    print("PASS: every speed-up is at or above its floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
