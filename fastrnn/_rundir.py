"""The directory of a training run: its files, the guards that protect them, the run's signals.

:class:`RunDirectory` knows the files a run writes (``checkpoint.npz``,
``best.npz``, ``history.csv``, ``loss.png``), holds the directory's lock
(``.fastrnn.lock``) while a run writes into it, refuses a directory that holds
another run's files, removes the temporary files of a killed save, keeps the
history and draws the plot.  :class:`StopFlag` turns Ctrl-C, SIGTERM and
SIGHUP into a clean stop; :func:`progress_bar` is the bar on the log.  The
guards raise :class:`AnotherRunError`, :class:`DirectoryLockedError` and
:class:`TargetPassedError`, whose attributes let the command line say the same
in terms of its flags.
"""

import csv
import errno
import fcntl
import io
import math
import os
import re
import signal
import sys
import threading

from fastrnn._files import RunFileError, open_own, open_regular, refuse_special
from fastrnn.checkpoint import atomic_write, file_identity

__all__ = [
    "HISTORY_COLUMNS",
    "CHECKPOINT_NAME",
    "BEST_NAME",
    "HISTORY_NAME",
    "PLOT_NAME",
    "PLOT_HINT",
    "LOCK_NAME",
    "MAX_HISTORY_BYTES",
    "STOP_SIGNALS",
    "AnotherRunError",
    "DirectoryLockedError",
    "TargetPassedError",
    "RunFileError",
    "StopSignal",
    "as_path",
    "default_log",
    "open_history",
    "resolve_checkpoint",
    "check_target",
    "RunDirectory",
    "StopFlag",
    "progress_bar",
]

CHECKPOINT_NAME = "checkpoint.npz"
BEST_NAME = "best.npz"
HISTORY_NAME = "history.csv"
PLOT_NAME = "loss.png"
LOCK_NAME = ".fastrnn.lock"
# The files a run writes, and the temporary files atomic_write makes for them
# (mkstemp: "." + name + "." + 8 random characters + ".tmp").
_RUN_FILES = (CHECKPOINT_NAME, BEST_NAME, HISTORY_NAME, PLOT_NAME)
_WHAT = {CHECKPOINT_NAME: "the run's checkpoint", BEST_NAME: "the run's best model",
         HISTORY_NAME: "the run's history", PLOT_NAME: "the run's plot",
         LOCK_NAME: "the run's lock"}
# A history is a short row per evaluation: this is millions of them.
MAX_HISTORY_BYTES = 1 << 30
_STALE_TMP = re.compile(r"\.(?:" + "|".join(map(re.escape, _RUN_FILES))
                        + r")\.[A-Za-z0-9_]{8}\.tmp")
# Signals that stop a run cleanly, as Ctrl-C does: a terminal's interrupt, a
# polite kill (systemd, docker stop, a batch scheduler) and a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
HISTORY_COLUMNS = ("iteration", "train_loss", "val_loss", "chars_per_sec", "val_bpc",
                   "learning_rate", "epoch")
PLOT_HINT = 'pip install "fastrnn[plot]"'


class AnotherRunError(FileExistsError):
    """The directory holds a checkpoint that the trainer did not load or save last.

    Attributes
    ----------
    out_dir : str
    """

    def __init__(self, out_dir):
        self.out_dir = out_dir
        super().__init__(f"{out_dir} already holds a checkpoint of another run; resume it or "
                         f"train into another directory")


class DirectoryLockedError(BlockingIOError):
    """Another process is training into the directory now.

    Attributes
    ----------
    out_dir : str
    pid : int or None
        The process holding the lock, when it could be read.
    """

    def __init__(self, out_dir, pid):
        self.out_dir, self.pid = out_dir, pid
        holder = "another process" if pid is None else f"process {pid}"
        super().__init__(errno.EAGAIN, f"{out_dir} is in use: {holder} is training into it "
                                       f"(it holds {os.path.join(out_dir, LOCK_NAME)}); wait "
                                       f"for it to end or train into another directory")

    def __str__(self):
        return self.strerror


class StopSignal(KeyboardInterrupt):
    """A second stop signal (``signum``): the run ends at once, keeping the last checkpoint."""

    def __init__(self, signum):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


class TargetPassedError(ValueError):
    """The run is already beyond the number of iterations asked for.

    Attributes
    ----------
    iteration : int
        Where the run is.
    target : int
        The iterations asked for.
    """

    def __init__(self, iteration, target):
        self.iteration, self.target = iteration, target
        super().__init__(f"the run is already at iteration {iteration}, beyond the {target} "
                         f"iterations asked for")


def open_history(out_dir):
    """A run's ``history.csv``, open for reading as CSV text; never through a link or a FIFO.

    Raises
    ------
    RunFileError
        If a link or a special file stands there, or it is over
        :data:`MAX_HISTORY_BYTES`.
    OSError
        If it cannot be opened.
    """
    raw, _ = open_regular(os.path.join(out_dir, HISTORY_NAME), RunFileError, MAX_HISTORY_BYTES,
                          _WHAT[HISTORY_NAME], follow_links=False)
    return io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8", newline="")


class _Nowhere(io.TextIOBase):
    """A log that keeps nothing: where messages go when there is no stderr."""

    def writable(self):
        return True

    def write(self, text):
        return len(text)


def default_log():
    """``sys.stderr``; a log that keeps nothing when there is none (``2>&-``, ``pythonw``)."""
    return _Nowhere() if sys.stderr is None else sys.stderr


def as_path(name, value):
    """``value`` as a str path; ValueError naming ``name`` when it is not a path."""
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{name} must be a path (str or os.PathLike), got {value!r}")
    return os.fspath(value)


def resolve_checkpoint(path):
    """A checkpoint file, or a training directory's ``checkpoint.npz``."""
    path = as_path("path", path)
    if os.path.isdir(path):
        return os.path.join(path, CHECKPOINT_NAME)
    return path


def check_target(iteration, target):
    """Refuse to run a trainer at ``iteration`` up to a smaller ``target``."""
    if iteration > target:
        raise TargetPassedError(iteration, target)


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def _read_pid(fd):
    try:
        return int(os.pread(fd, 32, 0).decode("ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


class RunDirectory:
    """The files of one run in ``out_dir``, and its history rows.

    Parameters
    ----------
    out_dir : str
        The run directory; it need not exist yet.

    Attributes
    ----------
    checkpoint_path, best_path, history_path, plot_path, lock_path : str
    rows : list of dict
        The history so far, as written to ``history.csv`` (after :meth:`claim`).
    """

    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.checkpoint_path = os.path.join(out_dir, CHECKPOINT_NAME)
        self.best_path = os.path.join(out_dir, BEST_NAME)
        self.history_path = os.path.join(out_dir, HISTORY_NAME)
        self.plot_path = os.path.join(out_dir, PLOT_NAME)
        self.lock_path = os.path.join(out_dir, LOCK_NAME)
        self._lock_fd = None
        self.rows = []
        self.plot_failed = False

    def check(self, own_checkpoint, source=None):
        """Refuse a directory where the run would overwrite what is not its own.

        Touches nothing, so a refused run leaves the directory as it was.

        Parameters
        ----------
        own_checkpoint : tuple or None
            :func:`~fastrnn.checkpoint.file_identity` of the checkpoint the
            trainer loaded or saved last; None for a fresh trainer.
        source : str, optional
            The training text's path: it may not be one of the files the run writes.

        Returns
        -------
        bool
            Whether the directory holds the trainer's own checkpoint.

        Raises
        ------
        DirectoryLockedError
            If another process is training into the directory.
        FileExistsError
            If a directory stands where a file goes, the checkpoint is another
            run's (:class:`AnotherRunError`), the run's other files are there
            without their checkpoint, or the training text is one of them.
        """
        self.check_lock()
        names = [*_RUN_FILES, LOCK_NAME]
        for name in names:
            path = os.path.join(self.out_dir, name)
            refuse_special(path, RunFileError, _WHAT[name])  # a link would be replaced, a FIFO hang
            if source is not None and _same_file(source, path):
                raise FileExistsError(f"the training text {source} is {path}, a file the run "
                                      f"writes; move the text out of {self.out_dir}")
            if os.path.isdir(path):  # found now, not at the first save hours later
                raise FileExistsError(f"{path} is a directory, where the run writes a file; "
                                      f"move it away or train into another directory")
        if os.path.exists(self.checkpoint_path):
            # Only the version this trainer loaded or saved last: not another
            # run's, nor a newer one of this run that another process wrote.
            if own_checkpoint is None or own_checkpoint != file_identity(self.checkpoint_path):
                raise AnotherRunError(self.out_dir)
            return True
        if os.path.exists(self.best_path):
            # A best model without its checkpoint (a deleted checkpoint): this
            # run would overwrite it.
            raise FileExistsError(f"{self.out_dir} already holds the best model of another run "
                                  f"({BEST_NAME}); move it away or train into another directory")
        for path in (self.history_path, self.plot_path):
            if os.path.exists(path):  # without a checkpoint, no run of ours wrote it
                raise FileExistsError(f"{self.out_dir} already holds {os.path.basename(path)}, "
                                      f"which this run did not write; move it away or train "
                                      f"into another directory")
        return False

    def check_lock(self):
        """Raise :class:`DirectoryLockedError` if a process holds the lock now; touch nothing."""
        if self._lock_fd is not None:
            return
        refuse_special(self.lock_path, RunFileError, _WHAT[LOCK_NAME])
        flags = (os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_NONBLOCK", 0))
        try:
            fd = os.open(self.lock_path, flags)
        except OSError:
            return  # no lock file: nobody has ever trained here
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DirectoryLockedError(self.out_dir, _read_pid(fd)) from None
        except OSError:
            pass  # a file system without flock: the lock taken for the run says so
        finally:
            os.close(fd)  # releases a lock taken here

    def lock(self):
        """Take the directory's lock for this process, recording its PID in the lock file.

        The lock is :func:`fcntl.flock` on an open file, so the kernel drops it
        when the process ends however it ends: a crash leaves no stale lock.

        Raises
        ------
        DirectoryLockedError
            If another process (or another run in this one) holds it.
        RunFileError
            If a symbolic link or a special file stands where the lock goes:
            it is not written through.
        """
        os.makedirs(self.out_dir, exist_ok=True)
        fd = open_own(self.lock_path, os.O_RDWR | os.O_CREAT, RunFileError, _WHAT[LOCK_NAME])
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise DirectoryLockedError(self.out_dir, pid) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # a full disk: the lock holds all the same, only its PID is not shown
        self._lock_fd = fd

    def unlock(self):
        """Release the lock taken by :meth:`lock` (the lock file stays, empty of meaning)."""
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)

    def remove_stale_temporaries(self):
        """Remove temporary files left by a save that was killed (``kill -9``, power loss).

        Only the names :func:`~fastrnn.checkpoint.atomic_write` gives the run's
        own files, and only while this process holds the lock, so that no
        other run's save in progress is touched.
        """
        if self._lock_fd is None:
            return
        for name in os.listdir(self.out_dir):
            if _STALE_TMP.fullmatch(name):
                try:
                    os.unlink(os.path.join(self.out_dir, name))
                except OSError:
                    pass

    def claim(self, own_checkpoint, iteration, source=None):
        """Lock the directory, check it, clean it and rewrite the history up to ``iteration``.

        Returns what :meth:`check` returns; a history that cannot be read
        raises ValueError before anything is written.  A fresh run writes no
        history until its first evaluation, so that a run that ends before
        it leaves nothing that would make the directory look like another run's.
        """
        # Checked before the lock is taken, so that a refused run does not
        # even create the lock file, and again under the lock, which decides.
        self.check(own_checkpoint, source)
        self._read_history(iteration)
        self.lock()
        try:
            own = self.check(own_checkpoint, source)
            rows = self._read_history(iteration)
        except BaseException:
            self.unlock()
            raise
        self.remove_stale_temporaries()
        self.rows = rows
        if own:
            self._write_history()
        return own

    def _read_history(self, iteration):
        """History rows up to ``iteration`` (later ones belong to a lost future)."""
        rows = []
        if iteration == 0 or not os.path.exists(self.history_path):
            return rows
        try:
            with open_history(self.out_dir) as f:
                reader = csv.DictReader(f)
                for row in reader:
                    try:
                        if int(row["iteration"]) > iteration:
                            continue
                    except (KeyError, TypeError, ValueError):
                        continue  # a torn last line after a crash
                    row = {k: row.get(k) or "" for k in HISTORY_COLUMNS}
                    self._check_row(row, reader.line_num)
                    rows.append(row)
        except (csv.Error, UnicodeDecodeError) as error:
            # Not a torn line but a damaged file: rewriting it would lose its
            # rows, so nothing is touched and the user decides.
            raise ValueError(f"{self.history_path} is not a readable history ({error}); move "
                             f"it away to continue with a new one") from None
        return rows

    def _check_row(self, row, line):
        """Refuse a row whose cells are not numbers: the plot and the table read them as such."""
        for key, value in row.items():
            try:
                if value:
                    float(value)
            except ValueError:
                raise ValueError(f"{self.history_path}, line {line}: {key} is {value!r}, not a "
                                 f"number; correct the line or move the file away to continue "
                                 f"with a new history") from None

    def _write_history(self):
        buf = io.StringIO()
        writer = csv.DictWriter(buf, HISTORY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        data = buf.getvalue().encode("utf-8")
        atomic_write(self.history_path, lambda f: f.write(data))

    def add_row(self, row):
        """Append a row to ``history.csv``; on failure the rows are as they were."""
        self.rows.append(row)
        try:
            self._write_history()
        except BaseException:
            self.rows.pop()  # not on disk: the next write must not add it out of turn
            raise

    def plot(self, say):
        """Draw ``loss.png`` from the history; without matplotlib, ``say`` so once."""
        if self.plot_failed or not self.rows:
            return
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            self.plot_failed = True
            say(f"matplotlib is not installed, so no {PLOT_NAME} is drawn; for plots: {PLOT_HINT}")
            return

        def number(text):
            return float(text) if text else float("nan")

        iterations = [int(r["iteration"]) for r in self.rows]
        train = [number(r["train_loss"]) for r in self.rows]
        val = [number(r["val_loss"]) for r in self.rows]
        fig = Figure(figsize=(7, 4.2), dpi=100)
        FigureCanvasAgg(fig)  # the Agg backend, without touching pyplot's global state
        ax = fig.add_subplot()
        marker = "o" if len(iterations) < 30 else None
        ax.plot(iterations, train, label="training (mean since the last row)", marker=marker)
        if not all(math.isnan(v) for v in val):
            ax.plot(iterations, val, label="validation", marker=marker)
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss per character (nats)")
        ax.set_title("fastrnn training")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        atomic_write(self.plot_path, lambda f: fig.savefig(f, format="png"))


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
