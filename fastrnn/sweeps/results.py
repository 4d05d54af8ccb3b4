"""A sweep's results: each trial's outcome, the table (CSV and Markdown), the plot, ``DIR/best``.

A trial's outcome is one :class:`TrialResult`, made by
:mod:`fastrnn.sweeps.trial` in the worker that ran it (or for a trial its
worker never reported); :func:`fastrnn.sweep` collects them and hands them
here to be ranked and written into the sweep's directory.
"""

import csv
import io
import math
import os
from dataclasses import dataclass, field

from fastrnn._files import atomic_write
from fastrnn._optional import plot_figure

__all__ = ["TrialResult", "markdown_table", "ranked", "progress_line", "write_results", "flag",
           "show", "RESULTS_CSV", "RESULTS_MD", "SWEEP_PLOT", "BEST_LINK"]

RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"
SWEEP_PLOT = "sweep.png"
BEST_LINK = "best"


@dataclass(frozen=True)
class TrialResult:
    """How one trial went: one row of a sweep's results.

    Attributes
    ----------
    name : str
        The trial's directory name, ``trial-NNN``.
    options : dict
        Its values of the grid's options, by :class:`TrainingConfig` field name.
    status : {"finished", "interrupted", "failed"}
        Finished: its budget (iterations or time limit) is spent.
    iterations : int
    seconds : float
        Seconds of training, over every run of the trial.
    best_val_loss : float or None
        Nats per character.
    message : str
        Why it failed or stopped; empty when it finished.
    path : str
        Its run directory.
    curve : tuple of (int, float)
        ``(iteration, validation loss)`` of each history row with one.
    ran : bool
        Whether this call of the sweep ran it (False: found finished, or
        stopped before it started).
    """

    name: str
    options: dict
    status: str
    iterations: int
    seconds: float
    best_val_loss: float | None
    message: str
    path: str
    curve: tuple = ()
    ran: bool = field(default=True, compare=False)

    @property
    def bits_per_char(self):
        """The best validation loss in bits per character, or None."""
        return None if self.best_val_loss is None else self.best_val_loss / math.log(2)


def flag(name):
    """An option as the command line names it: hidden_size -> hidden-size."""
    return name.replace("_", "-")


def show(value):
    """A value as the table shows it: floats in ``%g``."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _link_best(out, best):
    """Point ``DIR/best`` at the best trial, replacing the link whole (a relative link)."""
    link = os.path.join(out, BEST_LINK)
    tmp = os.path.join(out, f".{BEST_LINK}.{os.getpid()}.tmp")
    try:
        os.symlink(best, tmp)
        os.replace(tmp, link)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def ranked(results):
    """The results sorted for the table: by best validation loss, failed trials last."""
    def key(r):
        loss = r.best_val_loss
        return (r.status == "failed", loss is None, loss if loss is not None else 0.0, r.name)

    return sorted(results, key=key)


def progress_line(result):
    """The line a sweep prints as a trial ends: status, numbers and options."""
    status = result.status
    if status == "finished" and not result.ran:
        status = "already finished"
    line = f"{result.name} {status}: {result.iterations} iterations, {result.seconds:.1f} s"
    if result.best_val_loss is not None:
        best = result.best_val_loss
        line += f", best validation loss {best:.4f} ({result.bits_per_char:.4f} bits/char)"
    if result.message and result.status != "finished":
        line += f"; {result.message}"
    return line + f"  [{' '.join(f'{flag(k)}={show(v)}' for k, v in result.options.items())}]"


def markdown_table(results):
    """The results as a Markdown table, in their order: trial, options, status and numbers."""
    if not results:
        return ""
    fields = list(results[0].options)
    header = ["trial", *map(flag, fields), "status", "iterations",
              "seconds", "best val loss", "bits/char"]
    with_messages = any(r.message for r in results)
    if with_messages:
        header.append("message")
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if h in ("iterations", "seconds", "best val loss",
                                             "bits/char") else "---" for h in header) + "|"]
    for r in results:
        cells = [r.name, *(show(r.options[f]) for f in fields), r.status, str(r.iterations),
                 f"{r.seconds:.1f}",
                 "" if r.best_val_loss is None else f"{r.best_val_loss:.4f}",
                 "" if r.bits_per_char is None else f"{r.bits_per_char:.4f}"]
        if with_messages:
            cells.append(r.message.replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _write_csv(path, results, fields):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["trial", *fields, "status", "iterations", "seconds", "best_val_loss",
                     "bits_per_char", "message"])
    for r in results:
        writer.writerow([r.name, *(r.options[f] for f in fields), r.status, r.iterations,
                         f"{r.seconds:.3f}",
                         "" if r.best_val_loss is None else f"{r.best_val_loss:.6f}",
                         "" if r.bits_per_char is None else f"{r.bits_per_char:.6f}",
                         r.message])
    data = buf.getvalue().encode("utf-8")
    atomic_write(path, lambda f: f.write(data))


def _plot(path, results, say):
    """Draw every trial's validation curve into ``path``; without matplotlib, say so."""
    fig = plot_figure(SWEEP_PLOT, say, (7.5, 4.5))
    if fig is None:
        return
    ax = fig.add_subplot()
    drawn = [r for r in results if r.curve]
    for rank, r in enumerate(drawn):
        iterations, losses = zip(*r.curve, strict=True)
        label = f"{r.name}: " + ", ".join(f"{flag(k)}={show(v)}" for k, v in r.options.items())
        best = rank == 0 and r.status != "failed"
        ax.plot(iterations, losses, marker="o" if len(iterations) < 30 else None,
                linewidth=2.5 if best else 1.2, markersize=3,
                label=label if len(drawn) <= 12 or best else None)
    ax.set_xlabel("iteration")
    ax.set_ylabel("validation loss per character (nats)")
    ax.set_title("fastrnn sweep: validation loss of each trial")
    ax.grid(True, alpha=0.3)
    if drawn:
        ax.legend(fontsize="small")
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))


def write_results(out, results, fields, say):
    """Write the CSV, the Markdown table and the plot into ``out``; link ``best``."""
    _write_csv(os.path.join(out, RESULTS_CSV), results, fields)
    table = markdown_table(results).encode("utf-8")
    atomic_write(os.path.join(out, RESULTS_MD), lambda f: f.write(table))
    _plot(os.path.join(out, SWEEP_PLOT), results, say)
    if results and results[0].status != "failed" and results[0].best_val_loss is not None:
        _link_best(out, results[0].name)
