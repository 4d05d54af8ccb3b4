"""Single-threaded BLAS for every timing in ``benchmarks/``.

fastrnn's kernels call BLAS (NumPy's OpenBLAS from Python, SciPy's OpenBLAS
from inside njit code), and so does the NumPy reference; PyTorch uses MKL and
OpenMP.  All of them start a thread pool sized to the machine unless told
otherwise, which makes timings depend on the core count and on whatever else
the machine is doing.  The benchmarks and the gate therefore run everything on
one thread, in three steps:

1. :func:`set_single_thread_env`, called before NumPy is imported, sets the
   environment variables the libraries read when they load.  Too late for a
   library that is already loaded, which is why there are two more steps.
2. :func:`limit_and_verify` loads both OpenBLAS builds (NumPy's, and SciPy's
   that numba's ``np.dot`` uses), then sets their thread count to 1 at run
   time: through ``threadpoolctl`` when it is installed, otherwise by calling
   ``openblas_set_num_threads`` in every loaded OpenBLAS directly (found in
   ``/proc/self/maps``, Linux only).
3. It reads the count back and reports it, so a run records what it really
   used (``max_threads``); ``None`` means it could not be checked (no
   threadpoolctl and no ``/proc``), and then only the environment variables
   of step 1 are in force.

PyTorch is limited separately with ``torch.set_num_threads(1)`` where it is
imported (see ``common/torch_rnn.py``).  ``OPENBLAS_CORETYPE`` is deliberately left
alone: it picks the kernels OpenBLAS uses, not its threads.
"""

import ctypes
import os
import sys

__all__ = ["THREAD_ENV_VARS", "set_single_thread_env", "limit_and_verify"]

THREAD_ENV_VARS = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "FASTRNN_NUM_THREADS",  # fastrnn's batch shards (read when fastrnn is imported)
)

# Symbol prefixes of the OpenBLAS builds in the wild: upstream, and the
# scipy-openblas wheels that NumPy (64-bit ints, suffix "64_") and SciPy ship.
_OPENBLAS_PREFIXES = ("openblas_", "scipy_openblas_")
_OPENBLAS_SUFFIXES = ("", "64_")

_limiter = None  # threadpoolctl's limiter, kept alive for the whole process


def set_single_thread_env():
    """Set every thread-count variable to 1; call before importing NumPy.

    Returns
    -------
    list of str
        The numeric modules that were already imported, for which the
        variables came too late (:func:`limit_and_verify` still fixes them).
    """
    for name in THREAD_ENV_VARS:
        os.environ[name] = "1"
    return [m for m in ("numpy", "scipy", "numba", "torch") if m in sys.modules]


def _load_blas():
    import numpy  # noqa: F401
    import scipy.linalg.cython_blas  # noqa: F401  (the BLAS numba's np.dot calls)


def _openblas_paths():
    try:
        with open("/proc/self/maps") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    paths = []
    for line in lines:
        path = line.split()[-1] if len(line.split()) >= 6 else ""
        if "openblas" in os.path.basename(path).lower() and path not in paths:
            paths.append(path)
    return paths


def _openblas_function(lib, name):
    for prefix in _OPENBLAS_PREFIXES:
        for suffix in _OPENBLAS_SUFFIXES:
            fn = getattr(lib, prefix + name + suffix, None)
            if fn is not None:
                return fn
    return None


def _limit_with_ctypes():
    libraries = []
    for path in _openblas_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        get = _openblas_function(lib, "get_num_threads")
        put = _openblas_function(lib, "set_num_threads")
        if get is None or put is None:
            continue
        get.restype = ctypes.c_int
        put.argtypes = [ctypes.c_int]
        put(1)
        libraries.append({"library": os.path.basename(path), "api": "openblas",
                          "num_threads": int(get())})
    return libraries


def limit_and_verify():
    """Load the BLAS libraries, limit each to one thread and read the counts back.

    Returns
    -------
    dict
        ``method`` ("threadpoolctl", "ctypes" or "environment only"),
        ``libraries`` (one entry per thread pool found: library, api,
        num_threads), ``max_threads`` (the largest count found, None when
        nothing could be checked) and ``env`` (the variables as set).
    """
    global _limiter
    _load_blas()
    try:
        import threadpoolctl
    except ImportError:
        threadpoolctl = None
    if threadpoolctl is not None:
        _limiter = threadpoolctl.threadpool_limits(limits=1)
        libraries = [
            {"library": os.path.basename(info.get("filepath", "")), "api": info.get("internal_api"),
             "num_threads": int(info.get("num_threads"))}
            for info in threadpoolctl.threadpool_info()
        ]
        method = "threadpoolctl"
    else:
        libraries = _limit_with_ctypes()
        method = "ctypes" if libraries else "environment only"
    counts = [lib["num_threads"] for lib in libraries]
    return {
        "method": method,
        "libraries": libraries,
        "max_threads": max(counts) if counts else None,
        "env": {name: os.environ.get(name) for name in THREAD_ENV_VARS},
    }
