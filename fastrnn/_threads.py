"""fastrnn's threads: how many, the pool that runs batch shards, and single-threaded BLAS.

A batch of B streams is cut into shards of at most :data:`SHARD_STREAMS`
streams, as equal as possible (:func:`shards`); each shard's forward pass and
BPTT run on their own, and the shards' gradients are summed in shard order.
The partition depends on B alone, never on the number of threads, and every
product inside a shard is single-threaded (BLAS, or the packed product, whose
rows do not depend on each other), so the results are the same to the bit
for any thread count: threads only decide how many shards run at once, and
how the element-wise sum of their gradients is cut (:func:`slices`).  One
stream (B = 1) is one shard and runs on the calling thread as it always has.

The BLAS that fastrnn's kernels call (NumPy's ``np.dot`` inside Numba code
goes to SciPy's BLAS) is set to one thread when the first model is built:
threads come from the shards, and a BLAS that started its own threads as well
would oversubscribe the cores (and may split a product differently for
another thread count).  Where SciPy ships its own OpenBLAS (the PyPI wheels),
only that library is limited; NumPy's BLAS, which fastrnn does not call in its
hot paths, keeps its threads.

The thread count is :func:`get_num_threads`: every CPU this process may run
on by default, the environment variable ``FASTRNN_NUM_THREADS`` (read once,
when fastrnn first needs the count: building the first model does), or
:func:`set_num_threads`.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

from fastrnn._validation import check_threads

__all__ = ["SHARD_STREAMS", "shards", "slices", "get_num_threads", "set_num_threads",
           "run_shards", "run_slices", "thread_slot", "limit_blas"]

SHARD_STREAMS = 16
"""The most streams of a batch one shard holds.  Smaller shards would spread a
batch over more cores, larger ones keep the products efficient: at B = 32,
two shards of 16 streams."""

_ENV = "FASTRNN_NUM_THREADS"


def _available_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _initial_threads():
    text = os.environ.get(_ENV)
    if text is None or text == "":
        return _available_cpus()
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{_ENV} must be a positive integer, got {text!r}")
    return value


_num_threads = None  # read from the environment when first needed (see get_num_threads)
_pool = None  # a ThreadPoolExecutor of _num_threads - 1 workers, made when first needed
_lock = threading.Lock()
_blas_limited = False
_slot = threading.local()  # .index: the runner a pool thread is now (see run_shards)


def get_num_threads():
    """The number of threads fastrnn runs a batch on (an int >= 1).

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If ``FASTRNN_NUM_THREADS`` is set to anything but a positive integer
        (and :func:`set_num_threads` has not been called).

    Notes
    -----
    The first call reads ``FASTRNN_NUM_THREADS`` (or counts the CPUs).  A bad
    value is reported by every call until :func:`set_num_threads` sets one,
    so that the error surfaces where fastrnn is used (a command line prints
    it in one line), not as an import that fails.
    """
    global _num_threads
    if _num_threads is None:
        _num_threads = _initial_threads()
    return _num_threads


def set_num_threads(n):
    """Run fastrnn's batched work on ``n`` threads from now on.

    The results do not depend on ``n`` (see :mod:`fastrnn._threads`): it
    changes only how long a batch takes.  One stream always runs on the
    calling thread.

    Parameters
    ----------
    n : int
        At least 1; the default is the number of CPUs this process may use
        (or ``FASTRNN_NUM_THREADS``).

    Raises
    ------
    ValueError
        If ``n`` is not a positive integer.
    """
    global _num_threads, _pool
    n = check_threads("n", n)
    with _lock:
        # A batch running now keeps the old pool until it is done; its idle
        # threads end when the pool is collected.
        _pool = None
        _num_threads = n


def shards(batch):
    """The shards of a batch of ``batch`` streams: a list of ``(start, stop)`` ranges.

    ``ceil(batch / SHARD_STREAMS)`` shards whose sizes differ by at most one,
    larger ones first; a function of ``batch`` alone.
    """
    count = -(-batch // SHARD_STREAMS)
    size, extra = divmod(batch, count)
    bounds, start = [], 0
    for k in range(count):
        stop = start + size + (k < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


def slices(n, min_size=1 << 16):
    """Cut ``range(n)`` into at most :func:`get_num_threads` contiguous ``(start, stop)`` parts.

    For element-wise work over a long vector (summing the shards' gradients,
    an update): parts of at least ``min_size`` elements (fewer parts for a
    short vector, where a thread would cost more than it saves), each
    starting on a multiple of 16 elements, a cache line in either dtype.
    Element-wise results do not depend on the cut.
    """
    count = max(1, min(get_num_threads(), n // min_size))
    if count == 1:
        return [(0, n)]
    step = (-(-n // count) + 15) // 16 * 16  # ceil(n / count), rounded up to 16
    return [(start, min(start + step, n)) for start in range(0, n, step)]


def _forget_pool_after_fork():
    """In a forked child: the parent's pool threads do not exist here; start afresh."""
    global _pool, _lock
    _pool = None
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _get_pool():
    global _pool
    with _lock:
        if _pool is None and get_num_threads() > 1:
            _pool = ThreadPoolExecutor(max_workers=get_num_threads() - 1,
                                       thread_name_prefix="fastrnn")
        return _pool


def thread_slot():
    """Which runner of the batch now running this thread is: 0 for the calling thread.

    :func:`run_shards` deals a batch's shards to runners numbered from 0,
    each running its shards one after the other, so that what a runner uses
    shard after shard (a workspace) can be its own: at most
    ``min(shards, get_num_threads())`` of them, however many threads the pool
    has.
    """
    return getattr(_slot, "index", 0)


def run_shards(work, count):
    """Call ``work(k)`` for every shard k in ``range(count)``; their results in shard order.

    The shards are dealt to ``n = min(count, get_num_threads())`` runners:
    runner j runs shards j, j + n, j + 2n, ... one after the other, runner 0
    on the calling thread and the others on the pool, all at once.  The
    kernels release the GIL, so the runners really run in parallel.  While a
    runner works, :func:`thread_slot` on its thread is j.
    """
    pool = _get_pool() if count > 1 else None
    if pool is None:
        return [work(k) for k in range(count)]
    runners = min(count, get_num_threads())
    results = [None] * count

    def run(j):
        _slot.index = j
        try:
            for k in range(j, count, runners):
                results[k] = work(k)
        finally:
            _slot.index = 0

    futures = []
    try:
        for j in range(1, runners):  # one by one: a failed submit keeps those made
            futures.append(pool.submit(run, j))
        for k in range(0, count, runners):
            results[k] = work(k)
        for future in futures:
            future.result()
        return results
    finally:
        # Even when this thread is interrupted (Ctrl-C in a caller that does not
        # handle it), no shard outlives the call: a later call reuses its buffers.
        wait(futures)


def run_slices(work, n):
    """Call ``work(start, stop)`` for every part of :func:`slices` ``(n)``, the parts at once.

    For element-wise work over a vector of ``n`` elements (its result the
    same however the vector is cut); a short vector is one call, here.
    """
    parts = slices(n)
    if len(parts) == 1:  # the common case of a small model: no pool, no closure
        work(0, n)
    else:
        run_shards(lambda k: work(*parts[k]), len(parts))


def limit_blas():
    """Set the BLAS that fastrnn's kernels call to one thread (once per process)."""
    global _blas_limited
    get_num_threads()  # a bad FASTRNN_NUM_THREADS is told when the first model is built
    if _blas_limited:
        return
    from scipy.linalg import cython_blas  # noqa: F401 -- loads the library Numba calls
    from threadpoolctl import ThreadpoolController

    libraries = ThreadpoolController().select(user_api="blas").lib_controllers
    scipys = [lib for lib in libraries if "scipy" in os.path.basename(os.path.dirname(
        lib.filepath))]
    # SciPy's own OpenBLAS (PyPI wheels) alone; else a BLAS shared with NumPy
    # (conda, system packages), which is then the one the kernels call.
    for lib in scipys or libraries:
        lib.set_num_threads(1)
    _blas_limited = True
