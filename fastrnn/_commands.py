"""What each ``fastrnn`` command does, once :mod:`fastrnn.cli` has parsed its arguments.

Each handler takes the parsed ``argparse.Namespace`` and returns the exit
status; a problem to report in one line is raised as :class:`UserError` (or a
ValueError/OSError from the API), which :func:`fastrnn.cli.main` prints.  The
tables of training options are here because both the parser and the handlers
(a resumed run, a sweep's grid) read them.
"""

import errno
import io
import math
import os
import shlex
import signal
import sys

from fastrnn._files import describe_os_error

__all__ = ["hello_world"]

PROG = "fastrnn"
EXIT_ERROR = 1

def hello_world(epochs=1000, hidden=20, learning_rate=0.1, seed=0, out=None):
    """Train the seed example on "hello world" and print what it learned.

    Parameters
    ----------
    epochs : int, default 1000
    hidden : int, default 20
    learning_rate : float, default 0.1
    seed : int, default 0
    out : file, optional
        Where the progress goes; ``sys.stdout`` by default.

    Returns
    -------
    str
        The greedy continuation of "h" (ten characters).
    """
    from fastrnn.model import RNN

    out = sys.stdout if out is None else out
    data = "hello world"
    chars = sorted(set(data))
    char_to_ix = {ch: i for i, ch in enumerate(chars)}
    ix_to_char = dict(enumerate(chars))
    model = RNN(len(chars), hidden, len(chars), seed=seed)
    inputs = [char_to_ix[ch] for ch in data[:-1]]
    targets = [char_to_ix[ch] for ch in data[1:]]
    for epoch in range(epochs):
        loss = model.train(inputs, targets, learning_rate)
        if epoch % 200 == 0 or epoch == epochs - 1:
            print(f"epoch {epoch:4d}  loss {loss:.4f}", file=out)
    greedy = "".join(ix_to_char[i] for i in model.predict(char_to_ix["h"], 10, temperature=0))
    print(f"greedy from 'h': {greedy!r}", file=out)
    return greedy


# -- the options of train and sweep --------------------------------------------

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


# -- the commands --------------------------------------------------------------------


def hello(args):
    hello_world()
    return 0


def compile_kernels(args):
    """``fastrnn compile``: compile and cache the chosen models' kernels, saying how long."""
    import time

    from fastrnn._compile import compile_kernels as compile_all

    start = time.perf_counter()

    def report(model, dtype, seconds, functions):
        done = f"{len(functions)} functions compiled" if functions else "all in the cache already"
        print(f"{model} {dtype}: {done} ({seconds:.1f} s)", file=sys.stderr, flush=True)

    from fastrnn._threads import get_num_threads

    compile_all(args.model, args.dtype, report,
                jobs=get_num_threads() if args.jobs is None else args.jobs)
    print(f"{PROG}: kernels compiled and cached in {time.perf_counter() - start:.1f} s",
          file=sys.stderr)
    return 0


class UserError(Exception):
    """A problem to report in one line, without a traceback."""


def _read_training_text(path):
    from fastrnn.corpus import builtin_corpus, read_text

    if path is None:
        return builtin_corpus(), "<builtin>"
    if os.path.isdir(path):
        raise UserError(f"{path} is a directory, not a text file")
    try:
        return read_text(path), os.path.abspath(path)
    except OSError as error:
        raise UserError(f"cannot read the text file: {describe_os_error(error)}") from None


def _read_corpus(paths):
    """``(text, source, corpus)`` of train's PATHs: files and folders, or the built-in corpus.

    The source a checkpoint records is the one PATH given, made absolute, or
    the JSON list of them, so that a resume reads the same folders again.
    """
    import json

    from fastrnn.corpus import builtin_corpus, read_corpus

    if not paths:
        return builtin_corpus(), "<builtin>", ()
    paths = [os.path.abspath(path) for path in paths]
    try:
        text, corpus = read_corpus(paths)
    except OSError as error:
        raise UserError(f"cannot read the text file: {describe_os_error(error)}") from None
    return text, paths[0] if len(paths) == 1 else json.dumps(paths), corpus


def _read_val_file(path):
    """The validation text of --val-file, as Trainer's keyword arguments."""
    from fastrnn.corpus import read_text

    if os.path.isdir(path):
        raise UserError(f"--val-file {path} is a directory, not a text file")
    try:
        return {"val_text": read_text(path, "validate on"), "val_source": os.path.abspath(path)}
    except OSError as error:
        raise UserError(f"cannot read the validation file: {describe_os_error(error)}") from None


def _recorded_paths(source):
    """The PATHs a checkpoint's source records (None: the built-in corpus)."""
    import json

    if source == "<builtin>":
        return None
    if source.startswith("["):  # never an absolute path
        try:
            paths = json.loads(source)
            if isinstance(paths, list) and paths and all(isinstance(p, str) for p in paths):
                return paths
        except ValueError:
            pass
    return [source]


def _resume_text(args, ckpt):
    """Read the text of a resumed run: the PATHs given, or those the checkpoint records."""
    from fastrnn.corpus import CorpusError, fingerprint

    if args.text_files:
        text, source, corpus = _read_corpus(args.text_files)
    else:
        paths = _recorded_paths(ckpt.text_source)
        try:
            text, source, corpus = _read_corpus(paths)
        except (UserError, CorpusError) as error:  # gone, or now a FIFO, a device, too large
            raise UserError(f"the run was trained on {ckpt.text_source}, which cannot be read "
                            f"now ({error}); pass its PATHs") from None
    if ckpt.corpus and fingerprint(text) != ckpt.text_sha256:
        _name_the_change(ckpt.corpus, corpus)  # else Trainer.from_checkpoint says it
    return text, source, corpus


def _name_the_change(recorded, now):
    """Name a file that makes a corpus's text not the run's (files may have moved)."""
    advice = "; resume with the corpus the run was trained on"
    then_by_path = {path: digest for path, digest, _ in recorded}
    then_digests = [digest for _, digest, _ in recorded]
    for path, digest, _ in now:
        if then_by_path.get(path, digest) != digest:
            raise UserError(f"{path} changed since the run started (sha256 "
                            f"{then_by_path[path][:12]}... then, {digest[:12]}... now)" + advice)
    for path, digest, _ in now:
        if digest not in then_digests:
            raise UserError(f"{path} was not in the corpus the run was trained on" + advice)
    now_digests = [digest for _, digest, _ in now]
    for path, digest, _ in recorded:
        if digest not in now_digests:
            raise UserError(f"the corpus has lost {path} since the run started" + advice)
    if now_digests != then_digests:
        raise UserError("the corpus's files come in another order, or some twice" + advice)


def _check_out_dir(out):
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out} exists and is not a directory")


def _make_out_dir(out):
    import tempfile

    try:
        os.makedirs(out, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise UserError(f"cannot write into the output directory {out}: "
                         f"{describe_os_error(error, with_name=False)}") from None


def train(args):
    from fastrnn.training import Trainer, TrainingConfig

    out = args.out
    _check_out_dir(out)
    given = _given_options(args)
    if args.resume:
        trainer = _resume(args, given)
    else:
        text, source, corpus = _read_corpus(args.text_files)
        validation = {}
        if args.val_file is not None:
            if given.get("val_fraction"):
                raise UserError("--val-file replaces --val-fraction: give one of them")
            given["val_fraction"] = 0.0
            validation = _read_val_file(args.val_file)
        trainer = Trainer(text, TrainingConfig(**given), source=source, corpus=corpus,
                          **validation)
    _check_run(trainer, args)
    _make_out_dir(out)
    if args.resume:
        print(f"resuming {out} at iteration {trainer.iteration} of {trainer.config.iterations}",
              file=sys.stderr)
    else:
        _describe_run(trainer, out)
    try:
        summary = trainer.run(out, progress=not args.no_progress)
    except KeyboardInterrupt as stop:
        where = getattr(stop, "checkpoint", None)
        if where is None:
            raise
        return _interrupted("", stop, f" at iteration {stop.iteration}; checkpoint saved to "
                            f"{where}\nresume with: {_resume_command(args)}")
    _describe_end(summary, trainer, args)
    return 0


def sweep(args):
    from fastrnn.sweeps import SweepInterrupted, markdown_table, sweep
    from fastrnn.sweeps.grid import BUDGET_OPTIONS
    from fastrnn.sweeps.results import BEST_LINK, RESULTS_MD

    grid = {}
    for field, values in args.grid:
        if field in grid:
            raise UserError(f"--grid names {FLAGS[field][2:]} twice")
        grid[field] = values
    fixed = _given_options(args)
    for field in grid:
        if field in fixed:
            raise UserError(f"{FLAGS[field]} is given and in --grid; give it one way")
    if not set(BUDGET_OPTIONS) & (set(fixed) | set(grid)):
        raise UserError("give each trial a budget: --iterations N, --time-limit SECONDS or "
                         "both (fixed, or in --grid)")
    _check_out_dir(args.out)
    text, source = _read_training_text(args.text_file)
    try:
        results = sweep(text, args.out, grid, options=fixed, random=args.random,
                        workers=args.workers, scheduler=args.scheduler, source=source)
    except ImportError as error:  # no Dask: the message says how to install it
        raise UserError(str(error)) from None
    except SweepInterrupted as stop:
        return _interrupted("sweep ", stop, ": every running trial saved its checkpoint; "
                            "rerun the same command to resume the sweep")
    print(markdown_table(results), end="")
    sys.stdout.flush()
    finished = sum(r.status == "finished" for r in results)
    failed = sum(r.status == "failed" for r in results)
    line = f"{finished} of {len(results)} trials finished"
    if failed:
        line += f", {failed} failed (see {os.path.join(args.out, RESULTS_MD)})"
    if not finished:
        return fail(line)
    best = results[0]
    if best.status != "failed" and best.best_val_loss is not None:
        link = os.path.join(args.out, BEST_LINK)
        line += (f"; the best is {best.name}, now {link}\n"
                 f"sample with: {shlex.join([PROG, 'sample', link])}")
    print(line, file=sys.stderr)
    return 0


def _resume(args, given):
    """The trainer of ``--resume``: the checkpoint read once, the options it refuses named."""
    from fastrnn.training import CHECKPOINT_NAME, Trainer
    from fastrnn.training.checkpoint import load_checkpoint
    from fastrnn.training.errors import FixedOptionError

    try:
        ckpt = load_checkpoint(os.path.join(args.out, CHECKPOINT_NAME))
    except FileNotFoundError:
        raise UserError(f"--resume: {args.out} holds no {CHECKPOINT_NAME} to resume") from None
    text, source, _ = _resume_text(args, ckpt)
    if ckpt.validation:
        val_text = _read_val_file(args.val_file or ckpt.validation[0])["val_text"]
    elif args.val_file is not None:
        raise UserError("--val-file: this run holds out a fraction of its text for validation "
                        "and takes no validation file")
    else:
        val_text = None
    try:
        return Trainer.from_checkpoint(ckpt, text, source=source, val_text=val_text, **given)
    except FixedOptionError as error:
        raise UserError(
            f"{FLAGS[error.name]} {error.given} conflicts with the checkpoint, which has "
            f"{error.stored}; a resumed run keeps its model and data options"
        ) from None


def _check_run(trainer, args):
    """Ask the trainer whether it may run into --out, before the run is announced."""
    from fastrnn.training.errors import AnotherRunError, TargetPassedError

    try:
        trainer.check_run(args.out)
    except TargetPassedError as error:
        raise UserError(f"--iterations {error.target} is below the checkpoint's iteration "
                         f"{error.iteration}; it counts all iterations of the run") from None
    except AnotherRunError:
        if args.resume:  # the checkpoint changed since it was read: the trainer's words
            raise
        raise UserError(f"{args.out} already holds a checkpoint; add --resume to continue "
                         f"that run, or choose another --out") from None


def _describe_run(trainer, out):
    c = trainer.config
    n_params = trainer.model.parameter_vector.shape[0]
    paths = _recorded_paths(trainer.source)
    source = "the built-in corpus" if paths is None else ", ".join(paths)
    if trainer.corpus and len(trainer.corpus) > len(paths or ()):
        source += f" ({len(trainer.corpus)} files)"
    validation = (f"validating on {trainer.validation[0]} ({trainer.val_size:,} characters)"
                  if trainer.validation else f"{trainer.val_size:,} held out for validation")
    print(
        f"training a {c.model} with "
        + (f"{c.num_layers} layers of " if c.num_layers > 1 else "")
        + f"{c.hidden_size} hidden units ({n_params:,} {c.dtype} parameters) on "
        f"{source}: {trainer.text_length:,} characters, {trainer.vocab.size} distinct, "
        f"{validation}\n"
        f"{c.iterations:,} iterations of {c.batch_size} x {c.seq_length} characters, "
        f"{c.optimizer} with learning rate {c.learning_rate:g}, "
        + (f"clip {c.clip:g}" if c.clip else "no clipping")
        + (f", for at most {c.time_limit:g} s" if c.time_limit is not None else "")
        + f"; writing into {out}",
        file=sys.stderr,
    )


def _describe_end(summary, trainer, args):
    from fastrnn.training import BEST_NAME

    out, config = args.out, trainer.config
    if summary.reason == "time limit":
        line = (f"done: time limit of {config.time_limit:g} s reached at iteration "
                f"{summary.iteration} of {config.iterations}")
    elif summary.reason == "patience":
        line = (f"done: stopped early at iteration {summary.iteration} of {config.iterations}, "
                f"no new best validation loss in the last {config.patience} evaluations "
                f"(--patience {config.patience})")
    else:
        line = f"done: iteration {summary.iteration}"
    line += f", training loss {summary.train_loss:.4f}"
    if summary.val_loss is not None:
        line += (f", validation loss {summary.val_loss:.4f} nats "
                 f"({summary.val_loss / math.log(2):.3f} bits) per character")
    if summary.chars_per_sec:
        line += f"; {summary.seconds:.0f} s, {summary.chars_per_sec:,.0f} chars/s"
    if summary.reason == "patience":
        line += (f"\nthe best model, validation loss {summary.best_val_loss:.4f}, is "
                 f"{os.path.join(out, BEST_NAME)}")
    line += f"\nsample with: {shlex.join([PROG, 'sample', out])}"
    if summary.reason == "time limit":
        line += f"\ncontinue with: {_resume_command(args)}"
    print(line, file=sys.stderr)


# The name that stands for the bundled model wherever a model is taken.
PRETRAINED = "pretrained"


def _load(given):
    """The model and vocabulary of DIR_OR_CHECKPOINT.

    A checkpoint file, a training directory's ``checkpoint.npz``, or the bundled
    model (:data:`PRETRAINED`).
    """
    from fastrnn.training import CHECKPOINT_NAME, load_model

    if given == PRETRAINED:
        from fastrnn.pretrained import load_pretrained

        return load_pretrained()
    path = given
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT_NAME)
        if not os.path.exists(path):
            raise UserError(f"{given} holds no {CHECKPOINT_NAME}")
        if os.path.isdir(path):
            raise UserError(f"{path} is a directory, not a checkpoint")
    try:
        return load_model(path)
    except OSError as error:
        raise UserError(f"cannot read the checkpoint: {describe_os_error(error)}") from None


# Characters drawn per kernel call when printing to a terminal: they appear as drawn.
_TERMINAL_PIECE = 16


def sample(args):
    import json

    from fastrnn.inference import pieces, sample_seeds

    if args.checkpoint in (None, PRETRAINED):
        from fastrnn.pretrained import PRETRAINED_DESCRIPTION

        print(f"sampling from the bundled pretrained model ({PRETRAINED_DESCRIPTION})"
              + ("; name a checkpoint to use another" if args.checkpoint is None else ""),
              file=sys.stderr)
    model, vocab = _load(PRETRAINED if args.checkpoint is None else args.checkpoint)
    seeds = sample_seeds(args.seed, args.num_samples)
    terminal = not args.json and sys.stdout.isatty()
    options = dict(prime=args.prime, temperature=args.temperature, top_k=args.top_k,
                   top_p=args.top_p, stop=args.stop)
    if terminal:
        options["piece"] = _TERMINAL_PIECE
    try:
        sys.stdout.flush()  # what was printed before goes first
        if args.json:
            texts = ["".join(pieces(model, vocab, args.length, seed=seed, **options))
                     for seed in seeds]
            _write(json.dumps(texts, ensure_ascii=False) + "\n")
        for number, seed in enumerate([] if args.json else seeds):
            if number:
                _write("\n")  # an empty line between samples
            # Written piece by piece as it is sampled: memory does not grow with
            # --length, Ctrl-C stops within a piece, a reader that goes away ends
            # the sampling, and a terminal shows the characters as they are drawn.
            last = ""
            for piece in pieces(model, vocab, args.length, seed=seed, **options):
                _write(piece, flush=terminal)
                last = piece or last
            if (terminal or args.num_samples is not None) and not last.endswith("\n"):
                _write("\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``fastrnn sample DIR | head``): not an error.
        discard(sys.stdout)
    return 0


def _write(text, flush=False):
    """Write ``text`` to stdout as UTF-8 (lone surrogates kept as they came)."""
    stream = getattr(sys.stdout, "buffer", None)
    if stream is None:  # a replaced text stream (tests, IDEs)
        sys.stdout.write(text)
    else:
        stream.write(text.encode("utf-8", "surrogateescape"))
    if flush:
        sys.stdout.flush()


def evaluate(args):
    import json

    from fastrnn.corpus import read_text
    from fastrnn.inference import evaluate

    model, vocab = _load(args.checkpoint)
    path = args.text_file
    if os.path.isdir(path):
        raise UserError(f"{path} is a directory, not a text file")
    try:
        text = read_text(path, "score")
    except OSError as error:
        raise UserError(f"cannot read the text file: {describe_os_error(error)}") from None
    result = evaluate(model, vocab, text, name=path)
    if args.json:
        print(json.dumps(result._asdict()))
    else:
        print(f"{result.loss_nats:.4f} nats ({result.bits_per_char:.4f} bits) per character "
              f"on {result.characters:,} characters of {path}")
    return 0


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


def _resume_command(args):
    """The ``fastrnn train ... --resume`` command that continues this run, quoted for a shell."""
    return shlex.join([PROG, "train", *args.text_files, "--out", args.out, "--resume"])


def _given_options(args):
    """The training options given on the command line, by field name."""
    fields = [option[1] for option in MODEL_OPTIONS + SCHEDULE_OPTIONS]
    return {field: getattr(args, field) for field in fields if getattr(args, field) is not None}


def _interrupted(what, stop, detail):
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
