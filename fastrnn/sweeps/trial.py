"""One trial of a sweep, as a Dask worker runs it: train, resume or skip it, and say how it went.

:func:`run_trial` is what :func:`fastrnn.sweep` submits for each trial.
It runs in a worker process (fastrnn imported there), uses the training API
only, and records the trial in ``trial.json`` beside the run's own files: its
options, its status and its seconds of training, which a rerun of the sweep
reads to skip a finished trial and to give a resumed one the rest of its time.
Whatever happens in a trial is its outcome, never an exception, so that a
failed trial does not stop the others.  Every outcome is a
:class:`~fastrnn.sweeps.results.TrialResult`, made by :func:`outcome`.
"""

import csv
import json
import math
import os
import threading
import time
from dataclasses import replace

from fastrnn._files import (
    RunFileError,
    atomic_write,
    describe_os_error,
    open_own,
    open_regular,
    refuse_special,
)
from fastrnn._limits import MAX_RECORD_BYTES
from fastrnn._threads import set_num_threads
from fastrnn.sweeps.results import TrialResult
from fastrnn.training import Trainer
from fastrnn.training.checkpoint import load_checkpoint
from fastrnn.training.config import TrainingConfig
from fastrnn.training.rundir import CHECKPOINT_NAME, open_history

__all__ = ["TRIAL_NAME", "TRIAL_LOG", "RECORD", "run_trial", "finished_outcome", "outcome",
           "read_json", "write_json", "curve", "describe_error"]

TRIAL_NAME = "trial.json"
TRIAL_LOG = "train.log"
RECORD = "the trial's record"
# What trial.json holds: the outcome, with every option the trial was given.
_RECORD_KEYS = ("trial", "options", "grid", "status", "iterations", "seconds", "best_val_loss",
                "message")


def read_json(path, what):
    """A JSON object from ``path``, or None when it is missing or unreadable.

    Raises
    ------
    RunFileError
        If a symbolic link, a special file or a file too large to be a record
        stands there (where the sweep writes ``what``): refused, never read
        through or waited on.
    """
    try:
        f, _ = open_regular(path, RunFileError, MAX_RECORD_BYTES, what, follow_links=False)
    except OSError:  # missing, or no permission: as if there were no record
        return None
    try:
        with f:
            value = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def write_json(path, value, what):
    """Replace ``path`` with ``value`` as JSON; a link or a special file there is refused."""
    refuse_special(path, RunFileError, what)  # a rename would replace it without a word
    data = (json.dumps(value, indent=1) + "\n").encode("utf-8")
    atomic_write(path, lambda f: f.write(data))


class _StopWatcher:
    """Sets ``stop`` when the sweep's Dask event is set, or the scheduler can no longer be asked.

    A thread waits on the event in the scheduler, half a second at a time, so a
    running trial notices a stop within about that long.
    """

    def __init__(self, name):
        from distributed import Event, get_client

        self.stop = threading.Event()
        self._done = threading.Event()
        self._event = Event(name, client=get_client())
        if self._event.is_set():
            self.stop.set()
            return
        self._thread = threading.Thread(target=self._watch, name="fastrnn sweep stop",
                                        daemon=True)
        self._thread.start()

    def _watch(self):
        while not self._done.is_set():
            try:
                if self._event.wait(timeout=0.5):
                    break
            except Exception:  # the scheduler is gone: nobody will collect the result
                break
        self.stop.set()

    def close(self):
        self._done.set()
        thread = getattr(self, "_thread", None)
        if thread is not None:
            thread.join(timeout=5)


def outcome(task, status, *, iterations=0, seconds=0.0, best_val_loss=None, message="",
            ran=True):
    """The trial's :class:`TrialResult`, its curve read from its history."""
    return TrialResult(name=task["name"], options=dict(task["grid"]), status=status,
                       iterations=int(iterations or 0), seconds=float(seconds or 0.0),
                       best_val_loss=best_val_loss, message=message, path=task["path"],
                       curve=tuple(curve(task["path"])), ran=ran)


def _record(task, status, iterations, seconds, best_val_loss, message):
    """What ``trial.json`` holds (the keys of :data:`_RECORD_KEYS`)."""
    return dict(zip(_RECORD_KEYS, (task["name"], task["options"], task["grid"], status,
                                   iterations, seconds, best_val_loss, message), strict=True))


def finished_outcome(task, record):
    """The outcome of a trial its ``record`` shows finished with the task's options, or None."""
    if record.get("status") == "finished" and record.get("options") == task["options"]:
        return outcome(task, "finished", iterations=record.get("iterations"),
                       seconds=record.get("seconds"), best_val_loss=record.get("best_val_loss"),
                       message=record.get("message", ""), ran=False)
    return None


def curve(path):
    """``[(iteration, validation loss), ...]`` from a run's history, as far as it can be read."""
    try:
        with open_history(path) as f:
            return [(int(row["iteration"]), float(row["val_loss"]))
                    for row in csv.DictReader(f) if row.get("val_loss")]
    except (OSError, ValueError, KeyError, TypeError, csv.Error):  # RunFileError included
        return []


def describe_error(error):
    """What went wrong in a trial, in one line."""
    if isinstance(error, MemoryError):
        return "not enough memory for this trial"
    if isinstance(error, OSError) and error.strerror:
        return describe_os_error(error)
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())  # one line


def _trainer(text, task, spent):
    """The trial's trainer and the seconds it has spent: resumed from its checkpoint, or new.

    ``spent`` is what the trial's record says; the checkpoint's own count,
    saved with it, covers a trial killed (SIGKILL, a dead worker) before it
    could update the record.  The trainer is None when the time is spent.
    """
    config = TrainingConfig(**task["options"])  # a bad combination fails here
    path = os.path.join(task["path"], CHECKPOINT_NAME)
    ckpt = load_checkpoint(path) if os.path.exists(path) else None
    if ckpt is not None:
        spent = max(spent, ckpt.seconds)
    remaining = None if config.time_limit is None else config.time_limit - spent
    if remaining is not None and remaining <= 0:
        return None, spent
    if ckpt is not None:
        return Trainer.from_checkpoint(ckpt, text, source=task["source"],
                                       time_limit=remaining), spent
    return Trainer(text, replace(config, time_limit=remaining), source=task["source"]), spent


def run_trial(text, task):
    """Run, resume or skip one trial in a worker; return its outcome, a :class:`TrialResult`.

    ``task`` holds the trial's ``name``, ``path``, ``options`` (every option
    given, fixed and from the grid), ``grid`` (the grid's), ``source`` and
    ``stop`` (the name of the sweep's Dask event).  Whatever happens inside
    the trial is its outcome, never an exception: a failed trial does not stop
    the others.
    """
    # A Dask worker runs one trial per thread it has: each trial on one thread
    # (its results are the same on any number, so nothing else changes).
    set_num_threads(1)
    path, record_path = task["path"], os.path.join(task["path"], TRIAL_NAME)
    try:
        record = read_json(record_path, RECORD) or {}
    except RunFileError as error:
        return outcome(task, "failed", message=describe_error(error), ran=False)
    finished = finished_outcome(task, record)
    if finished is not None:
        return finished
    spent = record.get("seconds") if record.get("options") == task["options"] else 0.0
    spent = spent if isinstance(spent, (int, float)) and math.isfinite(spent) else 0.0
    iterations, best = record.get("iterations", 0), record.get("best_val_loss")
    watcher = _StopWatcher(task["stop"])
    try:
        if watcher.stop.is_set():
            return outcome(task, "interrupted", iterations=iterations, seconds=spent,
                           best_val_loss=best, message="stopped before it started", ran=False)
        os.makedirs(path, exist_ok=True)
        write_json(record_path, _record(task, "running", iterations, spent, best, ""), RECORD)
        started = time.perf_counter()
        trainer = None
        try:
            trainer, spent = _trainer(text, task, spent)
            if trainer is not None:
                fd = open_own(os.path.join(path, TRIAL_LOG),
                              os.O_WRONLY | os.O_APPEND | os.O_CREAT, RunFileError,
                              "the trial's log")
                with os.fdopen(fd, "a", encoding="utf-8") as log:
                    trainer.run(path, progress=False, log=log, handle_sigint=False,
                                stop=watcher.stop)
            status, message = "finished", ""
        except KeyboardInterrupt:  # TrainingInterrupted: the checkpoint is saved
            status, message = "interrupted", "stopped; rerun the sweep to resume it"
        except Exception as error:
            status, message = "failed", describe_error(error)
        seconds = spent + time.perf_counter() - started
        if trainer is not None:
            iterations, best = trainer.iteration, trainer.best_val_loss
        elif os.path.exists(os.path.join(path, CHECKPOINT_NAME)):
            try:
                ckpt = load_checkpoint(os.path.join(path, CHECKPOINT_NAME))
                best = None if math.isnan(ckpt.best_val_loss) else ckpt.best_val_loss
                iterations = ckpt.iteration
            except (OSError, ValueError):
                pass
        try:
            write_json(record_path, _record(task, status, iterations, seconds, best, message),
                       RECORD)
        except RunFileError as error:  # replaced by a link or a FIFO while the trial ran
            status, message = "failed", describe_error(error)
    finally:
        watcher.close()
    return outcome(task, status, iterations=iterations, seconds=seconds, best_val_loss=best,
                   message=message)
