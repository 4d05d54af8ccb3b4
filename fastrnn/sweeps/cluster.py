"""The Dask side of a sweep: the cluster, the trials submitted to it, their outcomes collected.

``dask.distributed`` is an optional dependency (``pip install "fastrnn[sweep]"``),
imported only here, only when a sweep runs: a local cluster of single-threaded
worker processes, or a running cluster given by its scheduler's address.
"""

import signal
import threading
import time
import uuid
from contextlib import contextmanager

from fastrnn.sweeps.results import progress_line
from fastrnn.sweeps.trial import describe_error, outcome, run_trial

__all__ = ["CONNECT_TIMEOUT", "connect", "cluster_client", "submit"]

# Seconds to wait for a scheduler given by address: long enough for a busy
# one to answer, short enough that a wrong address is told at once.
CONNECT_TIMEOUT = 5.0


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


def connect(distributed, workers, scheduler, trials):
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
    """Wait for every trial; on the first stop signal set the stop event. Returns TrialResults."""
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
                result = future.result()
            else:  # the trial never reported: its worker died, or the cluster lost it
                why = (describe_error(future.exception()) if future.status == "error"
                       else f"the cluster lost it ({future.status})")
                result = outcome(task, "failed", message=f"{why}; rerun the sweep to resume it")
            outcomes.append(result)
            say(progress_line(result))
        time.sleep(0.05)
    return outcomes


@contextmanager
def cluster_client(distributed, workers, scheduler, trials, say):
    """A client of the cluster that runs the trials (None when there are none), then closed."""
    if not trials:
        yield None
        return
    client, cluster, where = connect(distributed, workers, scheduler, trials)
    try:
        say(f"running {trials} trials on {where}")
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def submit(distributed, client, text, tasks, stop, say):
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
