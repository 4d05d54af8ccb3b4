"""What every command shares: the program's name, the training options, errors, the streams.

A problem to report in one line is raised as :class:`UserError`, which
:func:`fastrnn.cli.main` prints.  The tables of training options are here
because both the parser and the handlers (a resumed run, a sweep's grid)
read them.
"""

import errno
import io
import os
import signal
import sys

from fastrnn._files import describe_os_error

PROG = "fastrnn"


EXIT_ERROR = 1


# Training options: (flag, config field, metavar, help).  Their argparse default
# is None, so that a resumed run can tell what was given on the command line.
MODEL_OPTIONS = (
    ("--model", "model", None, "the kind of model"),
    ("--hidden-size", "hidden_size", "N", "size of the hidden state (of each layer)"),
    ("--num-layers", "num_layers", "N", "stacked layers (lstm and gru only)"),
    ("--dtype", "dtype", None, "what the model computes in"),
    ("--seq-length", "seq_length", "N", "characters per chunk, the steps backpropagated through"),
    ("--batch-size", "batch_size", "N", "parallel streams, each a contiguous part of the text"),
    ("--optimizer", "optimizer", None, "the update rule"),
    ("--val-fraction", "val_fraction", "F",
     "last fraction of the text held out for validation (0: none)"),
    ("--seed", "seed", "N", "seed of the initial weights and of the samples"),
    ("--init-from", "init_from", "SOURCE",
     "start from the weights of a run DIR, a checkpoint or 'pretrained' (the bundled model): "
     "the architecture is the source's, new characters get fresh weights"),
)


SCHEDULE_OPTIONS = (
    ("--learning-rate", "learning_rate", "LR", None),
    ("--clip", "clip", "C", "clip gradients element-wise to [-C, C] (0: off)"),
    ("--lr-decay", "lr_decay", "F",
     "multiply the learning rate by F every --lr-decay-every iterations"),
    ("--lr-decay-every", "lr_decay_every", "N", "iterations between decays"),
    ("--iterations", "iterations", "N",
     "total optimizer steps (one chunk of every stream each), counting those before a resume"),
    ("--eval-every", "eval_every", "N",
     "iterations between validations, history rows and checkpoints"),
    ("--sample-every", "sample_every", "N", "iterations between samples (0: none)"),
    ("--sample-length", "sample_length", "N",
     "characters in each sample shown during training (0: none)"),
    ("--time-limit", "time_limit", "SECONDS",
     "stop after this many seconds of training, saving as at the end; a resume has only "
     "the limit it is given"),
    ("--patience", "patience", "N",
     "stop after N evaluations without a new best validation loss, saving as at the end "
     "(0: never)"),
)


FLAGS = {option[1]: option[0] for option in MODEL_OPTIONS + SCHEDULE_OPTIONS}


GRID_NAMES = {flag[2:]: field for field, flag in FLAGS.items()}  # hidden-size -> hidden_size


class UserError(Exception):
    """A problem to report in one line, without a traceback."""


def check_out_dir(out):
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out} exists and is not a directory")


def make_out_dir(out):
    import tempfile

    try:
        os.makedirs(out, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise UserError(f"cannot write into the output directory {out}: "
                         f"{describe_os_error(error, with_name=False)}") from None


class _ClosedStream(io.TextIOBase):
    """What ``sys.stdout`` becomes when the command starts with it closed (``>&-``).

    Python leaves such a stream None and ``print`` then writes nothing without
    a word: a result (``eval``'s, ``sample``'s) would be computed and lost
    with exit status 0.  Writing here fails instead, as writing to a closed
    file does, so the command says so and exits 1.
    """

    def __init__(self, name):
        super().__init__()
        self.name = name

    def writable(self):
        return True

    def write(self, text):
        raise OSError(errno.EBADF, f"the standard {self.name} is closed: nothing can be "
                                   f"printed there")


def usable_streams():
    """Make the standard streams fit for the commands, whatever the shell gave them.

    A closed stderr (``2>&-``) becomes a log that keeps nothing: nothing can
    be said, and the work is still done (a run still trains and saves).  A
    closed stdout fails on the first write (:class:`_ClosedStream`).  Both
    stop raising on characters their encoding lacks (``PYTHONIOENCODING=ascii``
    and a file name in Greek): those are written as escapes, and no result
    is lost.
    """
    if sys.stderr is None:
        from fastrnn.training.signals import default_log

        sys.stderr = default_log()  # a log that keeps nothing
    if sys.stdout is None:
        sys.stdout = _ClosedStream("output")
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):  # not a text file of its own
            pass


def discard(stream):
    """Point a stream whose reader went away at /dev/null, so that flushing it at exit is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
    except (AttributeError, OSError, ValueError):  # no file descriptor (a replaced stream)
        pass


def given_options(args):
    """The training options given on the command line, by field name."""
    fields = [option[1] for option in MODEL_OPTIONS + SCHEDULE_OPTIONS]
    return {field: getattr(args, field) for field in fields if getattr(args, field) is not None}


def interrupted(what, stop, detail):
    """Report a command stopped by a signal; return its exit status.

    After SIGHUP the terminal is often gone: the exit status still tells.
    """
    by = "" if stop.signum == signal.SIGINT else f" by {signal.Signals(stop.signum).name}"
    print_error(f"\n{what}interrupted{by}{detail}")
    return exit_status(stop)


def exit_status(stop):
    """128 + the number of the signal that stopped the command, as shells report it."""
    return 128 + getattr(stop, "signum", signal.SIGINT)


def fail(message):
    print_error(f"{PROG}: error: {message}")
    return EXIT_ERROR


def print_error(text):
    """Print to stderr; when it is closed or its reader has gone, there is no one to tell."""
    if sys.stderr is None:  # started with stderr closed (``2>&-``); print would use stdout
        return
    try:
        print(text, file=sys.stderr)
        sys.stderr.flush()
    except (OSError, ValueError):  # the reader went away, or the stream is closed
        discard(sys.stderr)
