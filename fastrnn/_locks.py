"""One call at a time on a model: its lock, held by every public method.

A model's calls share its workspaces, its gradient buffer and ``last_hidden``,
and the kernels run without the GIL, so each model has a re-entrant lock
(:class:`ModelLock`) that every public method holds (:func:`serialised`).
"""

import functools
import os
import threading
import weakref

__all__ = ["ModelLock", "serialised"]

# Every model's lock, so that a forked child can make each free: a lock held by
# another thread at the fork would stay held in the child, where that thread
# does not exist, and the child's first call on the model would wait forever.
_locks = weakref.WeakSet()


class ModelLock:
    """A model's re-entrant lock, free again in a forked child.

    Used as ``with lock:``, or with :meth:`acquire` and :meth:`release`, as a
    :class:`threading.RLock`.
    """

    __slots__ = ("_rlock", "__weakref__")

    def __init__(self):
        self._rlock = threading.RLock()
        _locks.add(self)

    def acquire(self, blocking=True, timeout=-1):
        """Take the lock (again, if this thread holds it); see :meth:`threading.RLock.acquire`."""
        return self._rlock.acquire(blocking, timeout)

    def release(self):
        """Release it once."""
        self._rlock.release()

    def __enter__(self):
        self._rlock.acquire()
        return self

    def __exit__(self, *exc):
        self._rlock.release()

    def _renew(self):
        self._rlock = threading.RLock()


def _free_locks_after_fork():
    for lock in list(_locks):
        lock._renew()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_free_locks_after_fork)


def serialised(method):
    """Run ``method`` holding the model's lock: one call at a time on a model.

    A model's calls share its workspaces, its gradient buffer and
    ``last_hidden``, and the kernels run without the GIL, so two threads
    calling one model at once would mix their intermediate results.  The lock
    is re-entrant and, uncontended, costs well under a microsecond; different
    models run in parallel.
    """

    @functools.wraps(method)
    def serialised(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return serialised
