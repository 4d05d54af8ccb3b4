"""pytest configuration of the benchmark suite (pytest-benchmark) in ``suite/``.

Run from the repository root::

    python -m pytest benchmarks --benchmark-only                    # full suite, 2-3 min
    python -m pytest benchmarks --benchmark-only --quick            # smoke test, H=100 B=1
    python -m pytest benchmarks --benchmark-only --benchmark-json=benchmarks/results/DATE.json
    python benchmarks/suite/report.py benchmarks/results/DATE.json  # table.md + speed.png

This file sits in ``benchmarks/`` rather than in ``suite/`` because pytest
reads command-line options (``--quick``) and report headers only from the
conftest files at or above the paths it is given: here it serves both
``pytest benchmarks`` and ``pytest benchmarks/suite``.  No other file under
``benchmarks/`` is a test module (the studies and the gate are scripts).

Everything is single-threaded: the thread variables are set at the top of
this file, before NumPy can be imported, and then enforced and read back at
run time (see ``common/single_thread.py``); the run aborts if a BLAS library still uses
more than one thread.  The thread report goes into the saved JSON
(``machine_info["fastrnn_bench"]``, and ``extra_info["threads"]`` of every
benchmark).

Options added here: ``--quick`` (only H=100, B=1, a tiny time budget: a few
seconds plus the JIT warm-up).  The per-benchmark time budget and the minimum
number of rounds are pytest-benchmark's own ``--benchmark-max-time`` and
``--benchmark-min-rounds``; ``-m quick`` selects the quick sizes at full
budget.
"""

import os
import sys

# The shared helpers (common/) must import under any --import-mode.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Must run before anything imports NumPy: OpenBLAS reads these when it loads.
from common.single_thread import limit_and_verify, set_single_thread_env  # noqa: E402  isort: skip

_ALREADY_IMPORTED = set_single_thread_env()

import importlib.metadata  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from common.bench import QUICK, SEED, V, vector_isa  # noqa: E402

import fastrnn  # noqa: E402
import fastrnn.reference  # noqa: E402

_STATE = pytest.StashKey[dict]()  # thread report and warm-up time, for the JSON
_QUICK_BUDGET_S = 0.05
_QUICK_MIN_ROUNDS = 3
_MAX_ROUNDS = 100
_COLUMNS = ["min", "median", "mean", "stddev", "rounds", "iterations"]


def pytest_addoption(parser):
    group = parser.getgroup("fastrnn benchmarks")
    group.addoption(
        "--quick",
        action="store_true",
        default=False,
        help="fastrnn benchmarks: run only H=100, B=1 with a tiny time budget (CI smoke test).",
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "quick: the benchmark sizes of the smoke test (H=100, B=1)"
    )
    # Runs before pytest-benchmark builds its session (that hook is trylast),
    # so a friendlier default table is still in time; an explicit
    # --benchmark-columns wins.
    if getattr(config.option, "benchmark_columns", "absent") is None:
        config.option.benchmark_columns = list(_COLUMNS)
    threads = limit_and_verify()
    if threads["max_threads"] not in (None, 1):
        raise pytest.UsageError(
            f"BLAS still uses {threads['max_threads']} threads after limiting it to 1: {threads}"
        )
    config.stash[_STATE] = {"threads": threads, "imported_before_env": _ALREADY_IMPORTED}


def _params(item):
    callspec = getattr(item, "callspec", None)
    return callspec.params if callspec is not None else {}


def pytest_collection_modifyitems(config, items):
    selected, deselected = [], []
    for item in items:
        params = _params(item)
        is_quick = params.get("H") == QUICK["H"] and params.get("B", 1) == QUICK["B"]
        if is_quick:
            item.add_marker(pytest.mark.quick)
        (selected if is_quick or not config.getoption("quick") else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    # Run the implementations of one comparison back to back, so that a slow
    # spell of the machine hits all of them rather than one.
    first_seen = {}
    for item in selected:
        first_seen.setdefault(item.originalname, len(first_seen))
    selected.sort(key=lambda item: (first_seen[item.originalname], _params(item).get("B", 1),
                                    _params(item).get("H", 0)))
    items[:] = selected


def pytest_report_header(config):
    threads = config.stash[_STATE]["threads"]
    libs = ", ".join(f"{lib['library']}={lib['num_threads']}" for lib in threads["libraries"])
    mode = "quick" if config.getoption("quick") else "full"
    return f"fastrnn benchmarks: {mode} mode; BLAS threads via {threads['method']}: {libs or 'n/a'}"


def pytest_benchmark_update_machine_info(config, machine_info):
    info = config.stash[_STATE]
    versions = {}
    for dist in ("numpy", "numba", "scipy", "torch", "pytest-benchmark"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    versions["fastrnn"] = fastrnn.__version__
    torch = sys.modules.get("torch")
    cpu_name, isa = vector_isa()
    machine_info["fastrnn_bench"] = {
        "llvm_cpu": cpu_name,
        "vector_isa": isa,
        "blas_threads": info["threads"]["max_threads"],
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "thread_check": info["threads"],
        "imported_before_env": info["imported_before_env"],
        "quick": bool(config.getoption("quick")),
        "jit_warmup_s": info.get("jit_warmup_s"),
        "versions": versions,
    }


@pytest.fixture(scope="session")
def bench_settings(pytestconfig):
    """How long each benchmark may take: ``budget`` seconds, ``min_rounds``, ``max_rounds``."""
    if pytestconfig.getoption("quick"):
        return {"budget": _QUICK_BUDGET_S, "min_rounds": _QUICK_MIN_ROUNDS,
                "max_rounds": _MAX_ROUNDS, "quick": True}
    return {
        "budget": float(pytestconfig.getoption("benchmark_max_time")),
        "min_rounds": int(pytestconfig.getoption("benchmark_min_rounds")),
        "max_rounds": _MAX_ROUNDS,
        "quick": False,
    }


@pytest.fixture(scope="session")
def blas_threads(pytestconfig):
    """The largest BLAS thread count found (1), or None where it cannot be read."""
    return pytestconfig.stash[_STATE]["threads"]["max_threads"]


@pytest.fixture(scope="session")
def warm_kernels(pytestconfig):
    """Compile (or load from numba's cache) every fastrnn kernel the benchmarks call.

    Runs each public method once on a tiny model, for a single sequence and for
    a batch (the kernels branch on B == 1), so no benchmark times a compilation.
    The seconds it took are recorded in the JSON's ``machine_info``.
    """
    start = time.perf_counter()
    model = fastrnn.RNN(V, 8, V, seed=SEED)
    rng = np.random.default_rng(SEED)
    for shape in ((5,), (2, 5)):
        x = rng.integers(0, V, size=shape)
        y = rng.integers(0, V, size=shape)
        model.train(x, y, 0.1, h0=None)
        model.train(x, y, 0.1, h0=model.last_hidden)
        xs, hs, ps = model.forward(x)
        model.backward(xs, hs, ps, y)
    model.predict(0, 5, seed=SEED)
    elapsed = time.perf_counter() - start
    pytestconfig.stash[_STATE]["jit_warmup_s"] = round(elapsed, 3)
    return elapsed


@pytest.fixture(scope="session")
def torch_checked():
    """Skip unless torch imports; once per session, check its model against the reference."""
    pytest.importorskip("torch")
    from common.torch_rnn import check_against

    rng = np.random.default_rng(SEED)
    model = fastrnn.reference.RNN(V, 16, V, seed=SEED)
    model.bh[...] = rng.standard_normal(model.bh.shape) * 0.1  # nonzero biases are checked too
    model.by[...] = rng.standard_normal(model.by.shape) * 0.1
    x = rng.integers(0, V, size=(3, 7))
    y = rng.integers(0, V, size=(3, 7))
    check_against(model, x, y)
    return True
