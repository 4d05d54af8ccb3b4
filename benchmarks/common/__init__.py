"""Helpers shared by the benchmark suite, the CI gate and the studies (one copy of each).

``bench`` (sizes, data, the implementations, timing), ``single_thread`` (one BLAS
thread for every timing), ``torch_rnn`` and ``torch_gated`` (the PyTorch twins of
fastrnn's models) and ``batched_step`` (the batched float32/float64 step compared
with PyTorch).  The scripts put ``benchmarks/`` on ``sys.path`` and import
``common.<module>``; the paths below are where they read and write.
"""

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]
"""The ``benchmarks/`` folder."""

ROOT = BENCHMARKS.parent
"""The repository root (the fastrnn of this checkout)."""

RESULTS = BENCHMARKS / "results"
"""Saved measurements: the files the README's generated tables are made from."""
