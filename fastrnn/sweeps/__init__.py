"""Sweeps: one ordinary training run per combination of option values, run on Dask.

:func:`fastrnn.sweep` trains one run per combination of the values of a grid of
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

Modules, from the bottom up: :mod:`.results` (a trial's outcome, the table,
the plot), :mod:`.grid` (the options and the combinations), :mod:`.trial`
(one trial in a worker), :mod:`.cluster` (Dask), :mod:`.driver` (the sweep).
"""

from fastrnn.sweeps.driver import SweepInterrupted, sweep
from fastrnn.sweeps.results import TrialResult, markdown_table

__all__ = ["sweep", "SweepInterrupted", "TrialResult", "markdown_table"]
