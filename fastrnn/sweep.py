"""Sweeps: one ordinary training run per combination of option values, run on Dask.

:func:`sweep` trains one run per combination of the values of a grid of
training options (or ``random`` combinations drawn from it), each an ordinary
run directory ``DIR/trial-NNN`` that :class:`~fastrnn.training.Trainer` writes
as ``fastrnn train --out DIR/trial-NNN`` would: its lock, checkpoints and
history, resumable.  ``dask.distributed`` schedules the trials: a local
cluster of single-threaded worker processes, or a running cluster.  Dask is an
optional dependency (``pip install "fastrnn[sweep]"``), imported only here,
only when a sweep runs.

``DIR`` receives:

- ``sweep.json``: what the sweep is (the text's fingerprint, the grid, the
  fixed options, the draw); rerunning the same sweep into ``DIR`` skips the
  finished trials and resumes the others, and another sweep is refused;
- ``trial-NNN/``: a run directory, plus ``trial.json`` (its options, status,
  seconds of training) and ``train.log`` (its samples and messages);
- ``results.csv`` and ``results.md``: one row per trial, sorted by best
  validation loss; ``sweep.png``: every trial's validation curve (with
  matplotlib); ``best``: a symbolic link to the best trial's directory.

Trials are stopped through a Dask event that each trial polls from a thread
and passes to :meth:`Trainer.run <fastrnn.training.Trainer.run>` as its stop
event: on Ctrl-C each trial finishes its step and saves a checkpoint.
"""

import math
import os
import re
import signal
import threading
import time
import uuid
from contextlib import contextmanager
from random import Random

from fastrnn._files import RunFileError, refuse_special
from fastrnn._rundir import (
    BEST_NAME,
    CHECKPOINT_NAME,
    HISTORY_NAME,
    RunDirectory,
    StopFlag,
    as_path,
    default_log,
)
from fastrnn._sweep_results import (
    BEST_LINK,
    RESULTS_CSV,
    RESULTS_MD,
    SWEEP_PLOT,
    TrialResult,
    flag,
    markdown_table,
    results_of,
    show,
    write_results,
)
from fastrnn._trial import (
    RECORD,
    TRIAL_NAME,
    describe_error,
    finished_outcome,
    read_json,
    run_trial,
    write_json,
)
from fastrnn._validation import check_instance, check_int
from fastrnn.config import OPTION_CHECKS, OPTION_CHOICES, TrainingConfig
from fastrnn.corpus import fingerprint

__all__ = ["sweep", "TrialResult", "SweepInterrupted", "markdown_table", "check_workers",
           "INSTALL_HINT", "MAX_TRIALS", "BUDGET_OPTIONS", "RESULTS_CSV", "RESULTS_MD",
           "SWEEP_PLOT", "BEST_LINK"]

INSTALL_HINT = 'pip install "fastrnn[sweep]"'
MAX_TRIALS = 10_000
"""The most trials one sweep runs; a larger grid is sampled with ``random``."""
MAX_WORKERS = 1024
BUDGET_OPTIONS = ("iterations", "time_limit")
"""A trial needs one of these, fixed or in the grid: how long it trains."""
SWEEP_NAME = "sweep.json"
# Seconds to wait for a scheduler given by address: long enough for a busy
# one to answer, short enough that a wrong address is told at once.
CONNECT_TIMEOUT = 5.0
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


# -- what the sweep is -----------------------------------------------------------------


def check_workers(name, value):
    """The number of worker processes of a local cluster: an integer in [1, MAX_WORKERS]."""
    return check_int(name, value, 1, MAX_WORKERS)


def _check_option(field, value, name):
    """A training option's value, checked by the rule :class:`TrainingConfig` applies."""
    choices = OPTION_CHOICES.get(field)
    if choices is None:
        return OPTION_CHECKS[field](name, value)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def _check_options(options):
    """The fixed options as a dict of checked values by field name."""
    options = check_instance("options", {} if options is None else options, dict)
    known = TrainingConfig.__dataclass_fields__
    unknown = sorted(str(name) for name in options if name not in known)
    if unknown:
        raise ValueError(f"unknown training options: {', '.join(unknown)}")
    return {field: None if value is None and field == "learning_rate"
            else _check_option(field, value, field) for field, value in options.items()}


def _check_grid(grid, options):
    """The grid as a tuple of ``(field, values)``, each value checked, none repeated."""
    check_instance("grid", grid, dict)
    if not grid:
        raise ValueError("grid must name at least one training option")
    known = TrainingConfig.__dataclass_fields__
    checked = []
    for field, values in grid.items():
        if field not in known:
            raise ValueError(f"grid: unknown training option {field!r}")
        if field in options:
            raise ValueError(f"{field} is both in the grid and a fixed option; give it one way")
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise ValueError(f"grid[{field!r}] must be a list of values, got {values!r}")
        values = tuple(_check_option(field, v, f"grid[{field!r}]") for v in values)
        if not values:
            raise ValueError(f"grid[{field!r}] must hold at least one value")
        repeated = [v for i, v in enumerate(values) if v in values[:i]]
        if repeated:
            raise ValueError(f"grid[{field!r}] repeats {repeated[0]!r}")
        checked.append((field, values))
    budget = set(BUDGET_OPTIONS) & ({f for f, _ in checked} | set(options))
    if not budget or all(options.get(f, 0) is None for f in budget):
        raise ValueError("give each trial a budget: iterations, time_limit or both, fixed or "
                         "in the grid")
    return tuple(checked)


def _combinations(grid, random, seed):
    """The combinations to run, in grid order: every one, or ``random`` drawn with ``seed``."""
    sizes = [len(values) for _, values in grid]
    total = math.prod(sizes)
    if random is None:
        if total > MAX_TRIALS:
            raise ValueError(f"the grid has {total:,} combinations, more than the "
                             f"{MAX_TRIALS:,} trials a sweep runs; draw some with random")
        indices = range(total)
    else:
        random = check_int("random", random, 1, MAX_TRIALS)
        if random > total:
            raise ValueError(f"random is {random} but the grid has only {total} combinations")
        indices = sorted(Random(seed).sample(range(total), random))
    combinations = []
    for index in indices:
        picks = []
        for size in reversed(sizes):  # the first option varies slowest, as in itertools.product
            index, pick = divmod(index, size)
            picks.append(pick)
        combinations.append({field: values[pick]
                             for (field, values), pick in zip(grid, reversed(picks), strict=True)})
    return combinations


def _describe_grid(grid):
    return " ".join(f"{flag(field)}={','.join(map(show, values))}" for field, values in grid)


# -- the sweep's directory -------------------------------------------------------------


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
                what += f" ({_describe_grid(theirs)})"
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


# -- the cluster -----------------------------------------------------------------------


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ImportError(f"fastrnn sweep needs dask.distributed, which is not installed: "
                          f"{INSTALL_HINT}") from None
    return distributed


def _ignore_terminal_signals_plugin(distributed):
    """A worker plugin that leaves Ctrl-C and SIGHUP to the sweep's own process.

    A local cluster's workers share the terminal's process group, so Ctrl-C
    reaches them too and would kill them mid-step; the sweep's process
    receives it as well and stops every trial cleanly through the stop event.
    """

    class IgnoreTerminalSignals(distributed.WorkerPlugin):
        idempotent = True
        name = "fastrnn-ignore-terminal-signals"

        def setup(self, worker):
            if threading.current_thread() is threading.main_thread():
                for signum in (signal.SIGINT, signal.SIGHUP):
                    signal.signal(signum, signal.SIG_IGN)

    return IgnoreTerminalSignals()


def _connect(distributed, workers, scheduler, trials):
    """``(client, cluster, description)``: to a scheduler's address, or a new local cluster."""
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT,
                                        set_as_default=False)
        except (OSError, TimeoutError):
            raise OSError(f"cannot reach a Dask scheduler at {scheduler}: nothing answered "
                          f"within {CONNECT_TIMEOUT:g} s") from None
        n = len(client.scheduler_info().get("workers", {}))
        return client, None, f"the Dask cluster at {scheduler} ({n} workers now)"
    import logging

    from dask.system import CPU_COUNT

    n = min(CPU_COUNT if workers is None else workers, max(trials, 1))
    # Dask's default configuration (distributed.nanny.pre-spawn-environ) starts each
    # worker with OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS at 1: one
    # thread per trial, no oversubscription.
    # No dashboard: Dask's scheduler still serves its HTTP routes, on a port of its
    # own choosing on this machine only (not 8787, which another sweep may hold).
    cluster = distributed.LocalCluster(
        n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
        silence_logs=logging.ERROR)
    try:
        client = distributed.Client(cluster, set_as_default=False)
        client.register_plugin(_ignore_terminal_signals_plugin(distributed))
    except BaseException:
        cluster.close()
        raise
    return client, cluster, f"{n} worker process{'es' if n > 1 else ''} on this machine"


def _collect(futures, stop, event, say):
    """Wait for every trial; on the first stop signal set the stop event. Returns dicts."""
    outcomes, pending, asked = [], dict(futures), False
    while pending:
        if stop.raised and not asked:
            asked = True
            try:
                event.set()
            except Exception:  # the scheduler is gone: its trials have stopped already
                pass
        for future in [f for f in pending if f.done()]:
            task = pending.pop(future)
            if future.status == "finished":
                outcome = future.result()
            else:  # the trial never reported: its worker died, or the cluster lost it
                why = (describe_error(future.exception()) if future.status == "error"
                       else f"the cluster lost it ({future.status})")
                outcome = {"trial": task["name"], "grid": task["grid"], "status": "failed",
                           "iterations": 0, "seconds": 0.0, "best_val_loss": None,
                           "message": f"{why}; rerun the sweep to resume it", "ran": True}
            outcomes.append(outcome)
            say(_progress_line(outcome))
        time.sleep(0.05)
    return outcomes


def _progress_line(outcome):
    name, status = outcome["trial"], outcome["status"]
    if status == "finished" and not outcome.get("ran", True):
        status = "already finished"
    line = f"{name} {status}: {outcome['iterations']} iterations, {outcome['seconds']:.1f} s"
    if outcome.get("best_val_loss") is not None:
        best = outcome["best_val_loss"]
        line += f", best validation loss {best:.4f} ({best / math.log(2):.4f} bits/char)"
    if outcome.get("message") and outcome["status"] != "finished":
        line += f"; {outcome['message']}"
    return line + f"  [{' '.join(f'{flag(k)}={show(v)}' for k, v in outcome['grid'].items())}]"


# -- the sweep -------------------------------------------------------------------------


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
        The sweep's directory (see :mod:`fastrnn.sweep` for what it receives);
        the workers must see it at the same path (a local cluster, or a
        shared file system).  One sweep at a time holds it.
    grid : dict
        Values to try by :class:`~fastrnn.config.TrainingConfig` field name,
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
    options = _check_options(options)
    grid = _check_grid(grid, options)
    if workers is not None and scheduler is not None:
        raise ValueError("give workers (a local cluster) or scheduler (a running one), not both")
    workers = None if workers is None else check_workers("workers", workers)
    if scheduler is not None:
        check_instance("scheduler", scheduler, str)
    combinations = _combinations(grid, random, options.get("seed", 0))
    if log is not None and not callable(getattr(log, "write", None)):
        raise ValueError(f"log must be a writable text file, got {log!r}")
    say = _say(default_log() if log is None else log)
    distributed = _import_distributed()
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
    tasks = _tasks(out, options, combinations, source)
    outcomes, todo = [], []
    for task in tasks:  # the finished ones need no cluster
        finished = finished_outcome(task, read_json(os.path.join(task["path"], TRIAL_NAME),
                                                       RECORD) or {})
        if finished is None:
            todo.append(task)
        else:
            outcomes.append(finished)
    say(f"sweep of {len(tasks)} trials ({_describe_grid(grid)}) into {out}"
        + (f": {len(outcomes)} finished already" if outcomes else ""))
    with StopFlag(handle_sigint, say) as stop:
        with _cluster(distributed, workers, scheduler, len(todo), say) as client:
            os.makedirs(out, exist_ok=True)
            lock = RunDirectory(out)  # the lock of a run's directory: one writer at a time
            lock.lock()
            try:
                _check_directory(out, spec)
                write_json(os.path.join(out, SWEEP_NAME), spec, "the sweep's description")
                if todo:
                    outcomes += _submit(distributed, client, text, todo, stop, say)
                results = results_of(outcomes, out)
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


def _tasks(out, options, combinations, source):
    """What each worker is given: the trial's name, directory and options, and the stop event."""
    width = max(3, len(str(len(combinations))))
    stop_name = f"fastrnn-sweep-stop-{uuid.uuid4().hex}"
    tasks = []
    for number, combination in enumerate(combinations, start=1):
        name = f"trial-{number:0{width}d}"
        tasks.append({"name": name, "path": os.path.join(out, name), "grid": combination,
                      "options": {**options, **combination}, "source": source,
                      "stop": stop_name})
    return tasks


@contextmanager
def _cluster(distributed, workers, scheduler, trials, say):
    """A client of the cluster that runs the trials (None when there are none), then closed."""
    if not trials:
        yield None
        return
    client, cluster, where = _connect(distributed, workers, scheduler, trials)
    try:
        say(f"running {trials} trials on {where}")
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _submit(distributed, client, text, tasks, stop, say):
    """Run the trials on the cluster, the text sent once to each worker; their outcomes."""
    event = distributed.Event(tasks[0]["stop"], client=client)
    shipped = client.scatter(text, broadcast=True, hash=False)
    futures = {client.submit(run_trial, shipped, task, pure=False,
                             key=f"fastrnn-{task['name']}-{uuid.uuid4().hex}"): task
               for task in tasks}
    outcomes = _collect(futures, stop, event, say)
    if stop.raised:
        try:
            event.clear()  # the scheduler may outlive the sweep: leave it no event
        except Exception:
            pass
    return outcomes
