"""The directory of a training run: its files and the guards that protect them.

:class:`RunDirectory` knows the files a run writes (``checkpoint.npz``,
``best.npz``, ``history.csv``, ``loss.png``), holds the directory's lock
(``.fastrnn.lock``) while a run writes into it, refuses a directory that holds
another run's files, removes the temporary files of a killed save, keeps the
history and draws the plot.  The guards raise :class:`AnotherRunError`,
:class:`DirectoryLockedError` and :class:`TargetPassedError`, whose attributes
let the command line say the same in terms of its flags.
"""

import csv
import fcntl
import io
import math
import os
import re

from fastrnn._files import (
    RunFileError,
    atomic_write,
    file_identity,
    open_own,
    open_regular,
    refuse_special,
)
from fastrnn._limits import MAX_HISTORY_BYTES
from fastrnn._optional import plot_figure
from fastrnn.training.errors import AnotherRunError, DirectoryLockedError, TargetPassedError

__all__ = [
    "HISTORY_COLUMNS",
    "CHECKPOINT_NAME",
    "BEST_NAME",
    "HISTORY_NAME",
    "PLOT_NAME",
    "LOCK_NAME",
    "AnotherRunError",
    "DirectoryLockedError",
    "TargetPassedError",
    "as_path",
    "open_history",
    "resolve_checkpoint",
    "check_target",
    "RunDirectory",
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
_STALE_TMP = re.compile(r"\.(?:" + "|".join(map(re.escape, _RUN_FILES))
                        + r")\.[A-Za-z0-9_]{8}\.tmp")
HISTORY_COLUMNS = ("iteration", "train_loss", "val_loss", "chars_per_sec", "val_bpc",
                   "learning_rate", "epoch")


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
            :func:`~fastrnn._files.file_identity` of the checkpoint the
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
            raise DirectoryLockedError(self.out_dir, _read_pid(fd), self.lock_path) from None
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
            raise DirectoryLockedError(self.out_dir, pid, self.lock_path) from None
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

        Only the names :func:`~fastrnn._files.atomic_write` gives the run's
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
        fig = plot_figure(PLOT_NAME, say, (7, 4.2))
        if fig is None:
            self.plot_failed = True
            return

        def number(text):
            return float(text) if text else float("nan")

        iterations = [int(r["iteration"]) for r in self.rows]
        train = [number(r["train_loss"]) for r in self.rows]
        val = [number(r["val_loss"]) for r in self.rows]
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


