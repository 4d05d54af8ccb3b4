"""The one place where fastrnn decides how its kernels are compiled.

Every kernel in :mod:`fastrnn._kernels` is decorated with :func:`kernel`, so the
compilation options are chosen here and only here.

Why these options:

``cache=True``
    A cold compile of all kernels takes tens of seconds; the on-disk cache makes
    every later process start in well under a second.  Numba writes the cache
    next to the source files (``__pycache__``) and, where that directory is
    read-only, falls back to a per-user cache directory.  Setting the
    ``NUMBA_CACHE_DIR`` environment variable chooses the directory explicitly.
    Where none of them can be written (a read-only container), the kernels
    are compiled uncached, with one :class:`UncachedWarning`.  Processes may
    compile into one cache at once (see :class:`SharedCache`).

``fastmath=FASTMATH``
    Reassociation lets LLVM vectorise the dot-product reductions of the
    matrix-vector loops; ``contract`` allows fused multiply-adds.  The flags
    ``nnan`` and ``ninf`` are deliberately left out: with them LLVM may assume
    NaN and Inf never occur and fold ``np.isnan``/``np.isfinite`` to constants,
    and the trainer relies on those checks to stop on a diverging loss.

``EXACT_FASTMATH``
    The element-wise functions (``exp``, ``tanh``) depend on the exact order of
    their floating-point operations (Cody-Waite range reduction); they are
    compiled without ``reassoc`` so LLVM cannot undo that order.

``error_model="numpy"``
    Division by zero yields Inf/NaN as in NumPy instead of raising, which keeps
    branches out of the inner loops so they vectorise.

No kernel uses ``parallel=True``: see the README section on threads.

What compiles, and when.  Numba compiles every branch of a run-time ``if``,
and every function a compiled function calls is compiled too.  So what is
fixed for a model (its cell, one stream or a batch) is chosen where Numba
sees it at compile time: the entry points are made per kind of model
(:func:`fastrnn._kernels.chunks.entry_points`) with their choices as closure
constants, and below them the choice travels in argument types (None
against an array, an array's ``ndim``).  Numba's dead-branch pruning removes
the branches those decide before anything is typed.  ``inline="always"`` is
for small helpers only: Numba copies the callee's IR into each caller, at a
cost that grows with the callee.  A large kernel that one caller should
inline is made a second time for it by :func:`inlined`.  Sizes that Python
needs too (workspace lengths) are :func:`sizes` functions, plain Python when
called from Python, so asking for a size compiles nothing.
"""

import os
import warnings

from filelock import FileLock, Timeout
from numba import njit
from numba.core.caching import FunctionCache
from numba.extending import register_jitable

__all__ = ["FASTMATH", "EXACT_FASTMATH", "UncachedWarning", "SharedCache", "kernel",
           "kernel_named", "inlined", "sizes"]

FASTMATH = frozenset({"reassoc", "contract", "nsz", "arcp"})
EXACT_FASTMATH = frozenset({"contract", "nsz", "arcp"})


def kernel(function=None, *, fastmath=FASTMATH, inline="never"):
    """Compile ``function`` with fastrnn's njit options.

    Parameters
    ----------
    function : callable, optional
        The Python function to compile.  When omitted, a decorator is returned
        so that ``@kernel(fastmath=EXACT_FASTMATH)`` works as well as ``@kernel``.
    fastmath : frozenset of str, optional
        LLVM fast-math flags; defaults to :data:`FASTMATH`.
    inline : {"never", "always"}, optional
        ``"always"`` inlines the function into its callers at the Numba IR
        level, for the scalar helpers that must end up inside a caller's loop
        for LLVM to vectorise it (LLVM's own inliner gives up on large ones).

    Returns
    -------
    numba.core.registry.CPUDispatcher or callable
        The compiled dispatcher, or a decorator producing one.
    """

    def decorate(fn):
        compiled = njit(fastmath=set(fastmath), error_model="numpy", nogil=True,
                        inline=inline)(fn)
        if not hasattr(compiled, "enable_caching"):  # NUMBA_DISABLE_JIT: the plain function
            return compiled
        try:
            # What ``cache=True`` does (Dispatcher.enable_caching), with the cache class below.
            compiled._cache = SharedCache(fn)
        except RuntimeError as error:  # Numba found no directory it may write its cache to
            if "no locator available" not in str(error):
                raise
            _warn_uncached()
        return compiled

    if function is None:
        return decorate
    return decorate(function)


class UncachedWarning(RuntimeWarning):
    """No directory for compiled code could be written: kernels compile in every process."""


LOCK_NAME = "fastrnn-cache.lock"
SAVE_TIMEOUT = 120.0  # seconds to wait for another process's save before skipping this one


class SharedCache(FunctionCache):
    """Numba's on-disk cache of a kernel, safe for processes that compile into it at once.

    Numba saves a compiled signature by reading the kernel's index file,
    adding the signature under the first free data-file number, then writing
    the index and the data file, with no lock between processes (numba issue
    #10128).  Two processes compiling one kernel at once (``fastrnn compile
    --jobs``, a sweep's trials, a cluster's workers on one shared cache) can
    then lose each other's entries, or both take data file 1, leaving an
    entry that names the other signature's machine code.  Here every save
    holds a lock file in the cache directory (:data:`LOCK_NAME`).  Loading
    takes no lock: Numba replaces index and data files atomically, and an
    entry whose data file is not there yet is a miss.  A save that waits more
    than :data:`SAVE_TIMEOUT` seconds (a process stopped while it held the
    lock) is skipped, with a warning: the kernel works, uncached.
    """

    def _save_overload(self, sig, data):
        self._impl.locator.ensure_cache_path()
        try:
            with FileLock(os.path.join(self._cache_path, LOCK_NAME), timeout=SAVE_TIMEOUT):
                super()._save_overload(sig, data)
        except Timeout:
            warnings.warn(f"the compiled-code cache in {self._cache_path} stayed locked for "
                          f"{SAVE_TIMEOUT:.0f} s; {self._py_func.__qualname__} was not cached "
                          "this time", UncachedWarning, stacklevel=2)


_warned = []


def _warn_uncached():
    """Say once per process that the kernels are not cached, and how to change that."""
    if _warned:
        return
    _warned.append(True)
    warnings.warn_explicit(
        "no writable directory for compiled code (the install, NUMBA_CACHE_DIR and "
        "the user's cache are read-only), so every process compiles the kernels it uses; "
        "set NUMBA_CACHE_DIR to a writable directory to keep them",
        UncachedWarning, filename="fastrnn", lineno=0)


def kernel_named(name):
    """A decorator: :func:`kernel` for a function made by a factory, cached as ``name``.

    Numba names a kernel's cache files after its qualified name, which is the
    same for every closure one factory makes: all kinds of model would then
    share one index file, read whole by every load and rewritten by every
    save (:class:`SharedCache` keeps those saves safe, not small).  Giving
    each closure a name of its own (``"lstm_batch"`` and the function's)
    gives it files of its own.

    Parameters
    ----------
    name : str
        Prefixed to the function's name as its qualified name.

    Returns
    -------
    callable
        A decorator returning the compiled dispatcher.
    """

    def decorate(function):
        function.__qualname__ = f"{name}.{function.__name__}"
        return kernel(function)

    return decorate


def inlined(compiled):
    """The kernel ``compiled``, defined once, as a second kernel that its callers inline.

    For a large kernel that one caller should inline and the others call.  A
    kernel called from another is optimised and compiled on its own, then
    linked into the caller and optimised and compiled again there; where a
    caller's first call matters more, inlining skips the first round.  The
    copy keeps ``compiled``'s fast-math flags, so its arithmetic is the same.
    Only callers compile it, so it has no cache files of its own.  Under
    ``NUMBA_DISABLE_JIT=1`` both are the plain function.

    Parameters
    ----------
    compiled : numba.core.registry.CPUDispatcher or callable
        A kernel made by :func:`kernel`.

    Returns
    -------
    numba.core.registry.CPUDispatcher or callable
    """
    options = getattr(compiled, "targetoptions", {})  # none under NUMBA_DISABLE_JIT
    return kernel(getattr(compiled, "py_func", compiled),
                  fastmath=options.get("fastmath", FASTMATH), inline="always")


def sizes(function):
    """Make ``function``, integer arithmetic on sizes, callable from Python and kernels alike.

    From Python it is the plain function (nothing compiles: the model asks for
    a workspace's length before its first kernel call); inside a kernel Numba
    compiles it into the caller.

    Parameters
    ----------
    function : callable
        A pure function of integers (and tuples of them) returning the same.

    Returns
    -------
    callable
        ``function`` itself, registered with Numba.
    """
    return register_jitable(function)
