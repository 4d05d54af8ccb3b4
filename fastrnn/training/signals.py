"""How a run meets its user: stop signals, the progress bar, the log.

:class:`StopFlag` turns Ctrl-C, SIGTERM and SIGHUP into a clean stop;
:func:`progress_bar` is the bar on the log; :func:`default_log` is where
messages go.
"""

import io
import signal
import sys
import threading

from fastrnn.training.errors import StopSignal

__all__ = ["STOP_SIGNALS", "StopFlag", "StopSignal", "progress_bar", "default_log"]

# Signals that stop a run cleanly, as Ctrl-C does: a terminal's interrupt, a
# polite kill (systemd, docker stop, a batch scheduler) and a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Nowhere(io.TextIOBase):
    """A log that keeps nothing: where messages go when there is no stderr."""

    def writable(self):
        return True

    def write(self, text):
        return len(text)


def default_log():
    """``sys.stderr``; a log that keeps nothing when there is none (``2>&-``, ``pythonw``)."""
    return _Nowhere() if sys.stderr is None else sys.stderr


class StopFlag:
    """Turns SIGINT, SIGTERM and SIGHUP into a flag checked between iterations (main thread only).

    The first signal asks the loop to stop after the current step and save; it
    says so, since a step can take a while (the first one compiles kernels).
    A second one gives up at once with :class:`StopSignal` (a
    KeyboardInterrupt), without saving: the last checkpoint on disk is
    complete (writes are atomic) and is kept.

    Parameters
    ----------
    enabled : bool
        False leaves the signals alone (as does any thread but the main one).
    notify : callable
        ``notify(message)`` tells the user that a stop was asked for.

    Attributes
    ----------
    raised : bool
        Whether a stop signal came.
    signum : int or None
        The first one.
    """

    def __init__(self, enabled, notify):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.notify = notify
        self.raised = False
        self.signum = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.raised:
            self._restore()
            raise StopSignal(signum)
        self.raised = True
        self.signum = signum
        again = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        try:
            self.notify(f"stopping after this step to save a checkpoint ({again} again: stop "
                        f"now, keeping the last checkpoint)")
        except (OSError, ValueError):
            # The log is gone (Ctrl-C often ends a `| tee` too, and SIGHUP
            # comes with a closed terminal).  Raising here would stop the step
            # half done; the flag alone stops the run.
            pass

    def _restore(self):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    def __enter__(self):
        if self.enabled:
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        self._restore()
        return False


def progress_bar(total, initial, log, enabled):
    """The run's progress bar (tqdm) on ``log``, counting iterations; a no-op when disabled."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="training", unit="it", file=log,
                disable=not enabled, dynamic_ncols=True, mininterval=0.5, smoothing=0.05)
