"""A sweep from start to end: check it, claim its directory, run the trials, write the table.

See :mod:`fastrnn.sweeps` for what a sweep is and what its directory receives.
"""

import os
import re
import signal
import uuid

from fastrnn._files import RunFileError, refuse_special
from fastrnn._optional import import_distributed
from fastrnn._validation import check_instance
from fastrnn.corpus import fingerprint
from fastrnn.sweeps.cluster import cluster_client, submit
from fastrnn.sweeps.grid import (
    check_grid,
    check_options,
    check_workers,
    combinations,
    describe_grid,
)
from fastrnn.sweeps.results import (
    BEST_LINK,
    RESULTS_CSV,
    RESULTS_MD,
    SWEEP_PLOT,
    flag,
    ranked,
    show,
    write_results,
)
from fastrnn.sweeps.trial import (
    RECORD,
    TRIAL_NAME,
    describe_error,
    finished_outcome,
    read_json,
    write_json,
)
from fastrnn.training.rundir import BEST_NAME, CHECKPOINT_NAME, HISTORY_NAME, RunDirectory, as_path
from fastrnn.training.signals import StopFlag, default_log

__all__ = ["sweep", "SweepInterrupted", "SWEEP_NAME"]

SWEEP_NAME = "sweep.json"
_TRIAL_DIR = re.compile(r"trial-\d+")


class SweepInterrupted(KeyboardInterrupt):
    """The sweep was stopped (Ctrl-C, SIGTERM, SIGHUP); every running trial saved its checkpoint.

    Attributes
    ----------
    signum : int
        The signal.
    results : list of TrialResult
        The table as it stood, also written into the sweep's directory.
    """

    def __init__(self, signum, results):
        self.signum, self.results = signum, results
        super().__init__(f"sweep stopped by {signal.Signals(signum).name}; every running "
                         f"trial saved its checkpoint")


def _check_directory(out, spec):
    """Refuse a directory holding another sweep, or files this sweep did not write."""
    for name, what in ((SWEEP_NAME, "the sweep's description"), (RESULTS_CSV, "the results"),
                       (RESULTS_MD, "the results table"), (SWEEP_PLOT, "the results plot")):
        refuse_special(os.path.join(out, name), RunFileError, what)
    stored = read_json(os.path.join(out, SWEEP_NAME), "the sweep's description")
    if stored is None:
        if os.path.exists(os.path.join(out, SWEEP_NAME)):
            raise ValueError(f"{os.path.join(out, SWEEP_NAME)} is not a readable sweep "
                             f"description; move it away or choose another directory")
        ours = (RESULTS_CSV, RESULTS_MD, SWEEP_PLOT, BEST_LINK, CHECKPOINT_NAME, BEST_NAME,
                HISTORY_NAME)
        for name in sorted(os.listdir(out)):
            if name in ours or _TRIAL_DIR.fullmatch(name):
                raise FileExistsError(f"{out} already holds {name}, which this sweep did not "
                                      f"write; choose another directory")
        return
    for key, what in (("text_sha256", "another text"), ("grid", "another grid"),
                      ("options", "other fixed options"), ("random", "another draw")):
        theirs = stored.get(key)
        if theirs != spec[key]:
            if key == "grid" and isinstance(theirs, list):
                what += f" ({describe_grid(theirs)})"
            elif key == "options" and isinstance(theirs, dict):
                ours = spec["options"]
                what += " (" + ", ".join(
                    f"{flag(k)}={'none' if theirs.get(k) is None else show(theirs[k])}"
                    for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)
                ) + " there)"
            elif key == "random":
                what += f" (random={theirs})"
            raise ValueError(f"{out} holds a sweep of {what}; rerun that sweep to continue "
                             f"it, or choose another directory")
    link = os.path.join(out, BEST_LINK)
    if os.path.lexists(link) and not os.path.islink(link):
        raise FileExistsError(f"{link} is not the link a sweep makes; move it away")


def sweep(text, out_dir, grid, *, options=None, random=None, workers=None, scheduler=None,
          source="<text>", log=None, handle_sigint=True):
    """Train one run per combination of option values, on a Dask cluster; return the table.

    Each trial is an ordinary run directory ``out_dir/trial-NNN``, trained
    (or resumed) by :class:`~fastrnn.training.Trainer` in a Dask worker with
    the fixed ``options`` and its combination of the ``grid``'s values.
    Trials are numbered in grid order (the first option varying slowest), so
    the same sweep gives each combination the same number.  Calling ``sweep``
    again with the same arguments skips the finished trials and resumes the
    others (failed ones too: a failure that comes from the options comes back).

    Parameters
    ----------
    text : str
        The text to train on, sent once to every worker.
    out_dir : str or os.PathLike
        The sweep's directory (see :mod:`fastrnn.sweeps` for what it receives);
        the workers must see it at the same path (a local cluster, or a
        shared file system).  One sweep at a time holds it.
    grid : dict
        Values to try by :class:`~fastrnn.training.TrainingConfig` field name,
        e.g. ``{"hidden_size": [64, 128], "learning_rate": [1e-3, 3e-3]}``;
        each value is checked as the config checks it.
    options : dict, optional
        Fixed options of every trial, by field name.  Each trial needs a
        budget: ``iterations``, ``time_limit`` (seconds of training) or both,
        fixed or in the grid.
    random : int, optional
        Run this many distinct combinations drawn from the grid (seeded by the
        ``seed`` option, 0 by default) instead of all of them.
    workers : int, optional
        Worker processes of the local cluster (one thread each); by default
        one per core, and never more than there are trials.
    scheduler : str, optional
        The address of a running Dask scheduler (``tcp://host:8786``) to use
        instead of a local cluster; its workers need fastrnn installed.
    source : str, default "<text>"
        Where the text came from, recorded in the trials' checkpoints.
    log : file, optional
        Where progress goes; ``sys.stderr`` by default.
    handle_sigint : bool, default True
        Turn Ctrl-C, SIGTERM and SIGHUP into a clean stop of every trial (each
        finishes its step and saves a checkpoint), then :class:`SweepInterrupted`.

    Returns
    -------
    list of TrialResult
        Sorted as ``results.md``: by best validation loss, failed trials last.

    Raises
    ------
    ImportError
        Without dask.distributed (``pip install "fastrnn[sweep]"``).
    ValueError
        For a bad grid, option or argument, or an ``out_dir`` holding another
        sweep, before anything runs.
    OSError
        If the scheduler cannot be reached or ``out_dir`` cannot be written;
        ``BlockingIOError`` if another sweep or run holds ``out_dir``.
    SweepInterrupted
        After a clean stop on a signal; the results so far are written.
    """
    check_instance("text", text, str)
    out = os.path.abspath(as_path("out_dir", out_dir))
    check_instance("source", source, str)
    options = check_options(options)
    grid = check_grid(grid, options)
    if workers is not None and scheduler is not None:
        raise ValueError("give workers (a local cluster) or scheduler (a running one), not both")
    workers = None if workers is None else check_workers("workers", workers)
    if scheduler is not None:
        check_instance("scheduler", scheduler, str)
    picked = combinations(grid, random, options.get("seed", 0))
    if log is not None and not callable(getattr(log, "write", None)):
        raise ValueError(f"log must be a writable text file, got {log!r}")
    say = _say(default_log() if log is None else log)
    distributed = import_distributed()
    if scheduler is not None:
        from distributed.comm import get_address_host_port

        scheme = scheduler.split("://", 1)[0] if "://" in scheduler else "tcp"
        if scheme != "tcp":  # tls:// needs certificates, inproc:// this very process
            raise ValueError(f"scheduler {scheduler!r}: fastrnn sweep connects to a Dask "
                             f"scheduler over tcp:// only, not {scheme}://; give its "
                             f"tcp://host:port address")
        try:
            get_address_host_port(scheduler)  # a malformed address never reaches Client
        except ValueError as error:
            raise ValueError(f"scheduler {scheduler!r} is not the address of a Dask scheduler "
                             f"(tcp://host:port): {describe_error(error)}") from None
    spec = {"text_sha256": fingerprint(text), "text_source": source,
            "grid": [[field, list(values)] for field, values in grid], "options": options,
            "random": random}
    if os.path.exists(out):  # refused before a cluster starts; checked again under the lock
        if not os.path.isdir(out):
            raise FileExistsError(f"{out} exists and is not a directory")
        RunDirectory(out).check_lock()
        _check_directory(out, spec)
    tasks = _tasks(out, options, picked, source)
    outcomes, todo = [], []
    for task in tasks:  # the finished ones need no cluster
        finished = finished_outcome(task, read_json(os.path.join(task["path"], TRIAL_NAME),
                                                       RECORD) or {})
        if finished is None:
            todo.append(task)
        else:
            outcomes.append(finished)
    say(f"sweep of {len(tasks)} trials ({describe_grid(grid)}) into {out}"
        + (f": {len(outcomes)} finished already" if outcomes else ""))
    with StopFlag(handle_sigint, say) as stop:
        with cluster_client(distributed, workers, scheduler, len(todo), say) as client:
            os.makedirs(out, exist_ok=True)
            lock = RunDirectory(out)  # the lock of a run's directory: one writer at a time
            lock.lock()
            try:
                _check_directory(out, spec)
                write_json(os.path.join(out, SWEEP_NAME), spec, "the sweep's description")
                if todo:
                    outcomes += submit(distributed, client, text, todo, stop, say)
                results = ranked(outcomes)
                write_results(out, results, [field for field, _ in grid], say)
            finally:
                lock.unlock()
    if stop.raised:
        raise SweepInterrupted(stop.signum, results)
    return results




def _say(log):
    def say(message):
        print(message, file=log, flush=True)
    return say


def _tasks(out, options, picked, source):
    """What each worker is given: the trial's name, directory and options, and the stop event."""
    width = max(3, len(str(len(picked))))
    stop_name = f"fastrnn-sweep-stop-{uuid.uuid4().hex}"
    tasks = []
    for number, combination in enumerate(picked, start=1):
        name = f"trial-{number:0{width}d}"
        tasks.append({"name": name, "path": os.path.join(out, name), "grid": combination,
                      "options": {**options, **combination}, "source": source,
                      "stop": stop_name})
    return tasks
