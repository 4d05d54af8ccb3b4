"""The directory of a training run: its files, the guards that protect them, the run's signals.

:class:`RunDirectory` knows the files a run writes (``checkpoint.npz``,
``best.npz``, ``history.csv``, ``loss.png``), refuses a directory that holds
another run's, keeps the history and draws the plot.  :class:`StopFlag` turns
Ctrl-C into a clean stop; :func:`progress_bar` is the bar on the log.  The
guards raise :class:`AnotherRunError` and :class:`TargetPassedError`, whose
attributes let the command line say the same in terms of its flags.
"""

import csv
import io
import math
import os
import signal
import threading

from fastrnn.checkpoint import atomic_write, file_identity

__all__ = [
    "HISTORY_COLUMNS",
    "CHECKPOINT_NAME",
    "BEST_NAME",
    "HISTORY_NAME",
    "PLOT_NAME",
    "PLOT_HINT",
    "AnotherRunError",
    "TargetPassedError",
    "as_path",
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


class RunDirectory:
    """The files of one run in ``out_dir``, and its history rows.

    Parameters
    ----------
    out_dir : str

    Attributes
    ----------
    checkpoint_path, best_path, history_path, plot_path : str
    rows : list of dict
        The history so far, as written to ``history.csv`` (after :meth:`claim`).
    """

    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.checkpoint_path = os.path.join(out_dir, CHECKPOINT_NAME)
        self.best_path = os.path.join(out_dir, BEST_NAME)
        self.history_path = os.path.join(out_dir, HISTORY_NAME)
        self.plot_path = os.path.join(out_dir, PLOT_NAME)
        self.rows = []
        self.plot_failed = False

    def check(self, own_checkpoint):
        """Refuse a directory where the run would overwrite what is not its own.

        Parameters
        ----------
        own_checkpoint : tuple or None
            :func:`~fastrnn.checkpoint.file_identity` of the checkpoint the
            trainer loaded or saved last; None for a fresh trainer.

        Returns
        -------
        bool
            Whether the directory holds the trainer's own checkpoint.

        Raises
        ------
        FileExistsError
            If a directory stands where a file goes, the checkpoint is another
            run's (:class:`AnotherRunError`), or a best model has lost its checkpoint.
        """
        for path in (self.checkpoint_path, self.best_path, self.history_path, self.plot_path):
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
            # A best model without its checkpoint (a crash between the two
            # saves, or a deleted checkpoint): this run would overwrite it.
            raise FileExistsError(f"{self.out_dir} already holds the best model of another run "
                                  f"({BEST_NAME}); move it away or train into another directory")
        return False

    def claim(self, own_checkpoint, iteration):
        """Create the directory, check it and rewrite the history up to ``iteration``.

        Returns what :meth:`check` returns; a history that cannot be read
        raises ValueError before anything is written.
        """
        os.makedirs(self.out_dir, exist_ok=True)
        own = self.check(own_checkpoint)
        self.rows = self._read_history(iteration)
        self._write_history()
        return own

    def _read_history(self, iteration):
        """History rows up to ``iteration`` (later ones belong to a lost future)."""
        rows = []
        if iteration == 0 or not os.path.exists(self.history_path):
            return rows
        try:
            with open(self.history_path, newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    try:
                        if int(row["iteration"]) <= iteration:
                            rows.append({k: row.get(k) or "" for k in HISTORY_COLUMNS})
                    except (KeyError, TypeError, ValueError):
                        continue  # a torn last line after a crash
        except (csv.Error, UnicodeDecodeError) as error:
            # Not a torn line but a damaged file: rewriting it would lose its
            # rows, so nothing is touched and the user decides.
            raise ValueError(f"{self.history_path} is not a readable history ({error}); move "
                             f"it away to continue with a new one") from None
        return rows

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
        ax.plot(iterations, train, label="training (smoothed)", marker=marker)
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
    """Turns SIGINT into a flag checked between iterations (main thread only).

    The first Ctrl-C asks the loop to stop after the current step and save; it
    says so, since a step can take a while (the first one compiles kernels).
    A second Ctrl-C gives up at once with KeyboardInterrupt, without saving:
    the last checkpoint on disk is complete (writes are atomic) and is kept.

    Parameters
    ----------
    enabled : bool
        False leaves SIGINT alone (as does any thread but the main one).
    notify : callable
        ``notify(message)`` tells the user that a stop was asked for.

    Attributes
    ----------
    raised : bool
        Whether a Ctrl-C came.
    """

    def __init__(self, enabled, notify):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.notify = notify
        self.raised = False
        self._previous = None

    def _handle(self, signum, frame):
        if self.raised:
            signal.signal(signal.SIGINT, self._previous)
            raise KeyboardInterrupt
        self.raised = True
        try:
            self.notify("stopping after this step to save a checkpoint (Ctrl-C again: stop "
                        "now, keeping the last checkpoint)")
        except (OSError, ValueError):
            # The log is gone (Ctrl-C often ends a `| tee` too).  Raising here
            # would stop the step half done; the flag alone stops the run.
            pass

    def __enter__(self):
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self.enabled:
            signal.signal(signal.SIGINT, self._previous)
        return False


def progress_bar(total, initial, log, enabled):
    """The run's progress bar (tqdm) on ``log``, counting iterations; a no-op when disabled."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="training", unit="it", file=log,
                disable=not enabled, dynamic_ncols=True, mininterval=0.5, smoothing=0.05)
