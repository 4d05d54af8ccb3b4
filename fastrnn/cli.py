"""The ``fastrnn`` command line (also ``python -m fastrnn``): a thin layer over the API.

Commands:

``fastrnn train [TEXT_FILE] --out DIR``
    Train a model (see :class:`fastrnn.training.Trainer`); without TEXT_FILE on
    the built-in corpus (:func:`fastrnn.corpus.builtin_corpus`).
``fastrnn sample [DIR_OR_CHECKPOINT]``
    Print text sampled from a trained model to stdout; without a model, from
    the bundled pretrained one (:func:`fastrnn.load_pretrained`).
``fastrnn eval DIR_OR_CHECKPOINT TEXT_FILE``
    Print the model's loss on a text, in nats and bits per character.
``fastrnn sweep [TEXT_FILE] --out DIR --grid OPTION=V1,V2 ...``
    Train one run per combination of option values on a Dask cluster
    (:func:`fastrnn.sweep.sweep`) and print the table of results.
``fastrnn --version``
    Print the version.
``fastrnn hello``
    The classic min-char-rnn demonstration on "hello world".

Every user error ends the command with a one-line message on stderr and a
non-zero exit status (2 for bad options, 1 otherwise, 128 + the signal's number
after Ctrl-C, SIGTERM or SIGHUP: 130, 143, 129).
"""

import argparse
import math
import os
import shlex
import signal
import sys

__all__ = ["main", "hello_world"]

_PROG = "fastrnn"
_EXIT_ERROR = 1


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


# -- the parser ----------------------------------------------------------------------

# Training options: (flag, config field, metavar, help).  Their argparse default
# is None, so that a resumed run can tell what was given on the command line.
_MODEL_OPTIONS = (
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
_SCHEDULE_OPTIONS = (
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
)
_FLAGS = {option[1]: option[0] for option in _MODEL_OPTIONS + _SCHEDULE_OPTIONS}
_GRID_NAMES = {flag[2:]: field for field, flag in _FLAGS.items()}  # hidden-size -> hidden_size


def _option_argument(field):
    """The argparse keywords of a training option: its choices, or a converter from its check."""
    from dataclasses import fields

    from fastrnn._validation import DTYPES, argument_type
    from fastrnn.config import OPTIMIZERS, OPTION_CHECKS, TrainingConfig
    from fastrnn.model import MODELS

    if field == "model":
        return {"choices": tuple(MODELS)}
    if field == "optimizer":
        return {"choices": OPTIMIZERS}
    if field == "dtype":
        return {"choices": DTYPES}
    kind = {f.name: f.type for f in fields(TrainingConfig)}[field]  # int, float, float | None
    parse = int if kind is int else float
    return {"type": argument_type(OPTION_CHECKS[field], parse)}


def _add_training_options(model, schedule, defaults):
    """The options of ``train``, in two argument groups: the run's model and data, its schedule."""
    for group, options in ((model, _MODEL_OPTIONS), (schedule, _SCHEDULE_OPTIONS)):
        for flag, field, metavar, text in options:
            if field == "learning_rate":
                text = ("base learning rate (default: 0.1 for adagrad and sgd, 0.002 for "
                        "rmsprop and adam)")
            else:
                default = getattr(defaults, field)
                text = f"{text} (default: {'none' if default is None else default})"
            group.add_argument(flag, dest=field, default=None, metavar=metavar, help=text,
                               **_option_argument(field))


def _grid_item(text):
    """The argparse type of ``--grid``: ``OPTION=V1,V2,...`` -> ``(field, [values])``.

    Each value is converted as the option's own flag converts it, so a bad
    value is the same one-line error, naming the option.
    """
    name, sep, values = text.partition("=")
    field = _GRID_NAMES.get(name.strip().removeprefix("--"))
    if not sep or field is None:
        hint = "; TEXT_FILE goes before --grid" if not sep else ""
        raise argparse.ArgumentTypeError(
            f"{text!r} is not OPTION=V1,V2,... with OPTION an option of fastrnn train "
            f"(such as hidden-size=64,128){hint}")
    argument = _option_argument(field)
    converted = []
    for value in values.split(","):
        value = value.strip()
        if "choices" in argument and value not in argument["choices"]:
            raise argparse.ArgumentTypeError(f"{name}: invalid choice: {value!r} (choose from "
                                             f"{', '.join(argument['choices'])})")
        try:
            converted.append(argument["type"](value) if "type" in argument else value)
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentTypeError(f"{name}: {error}") from None
        if converted[-1] in converted[:-1]:
            raise argparse.ArgumentTypeError(f"{name}: {value!r} is given twice")
    return field, converted


def _add_sweep(commands, defaults):
    from fastrnn._validation import argument_type, check_int
    from fastrnn.sweep import MAX_TRIALS, check_workers

    sweep = commands.add_parser(
        "sweep", help="train one run per combination of option values, on Dask",
        description="Train one ordinary run, DIR/trial-NNN, for each combination of the "
        "values given with --grid (or --random N of them), with every other option as given, "
        "on a Dask cluster; then write DIR/results.csv, DIR/results.md (also printed), "
        "DIR/sweep.png and the link DIR/best to the trial with the lowest validation loss.",
        epilog="Rerunning the same command skips the finished trials and resumes the others. "
        "Ctrl-C, SIGTERM and SIGHUP stop every trial, each saving its checkpoint.  A failed "
        "trial is recorded with its message and the others go on; the exit status is 0 when "
        "at least one trial finished.  Needs Dask: " + 'pip install "fastrnn[sweep]".',
    )
    sweep.add_argument("text_file", nargs="?", metavar="TEXT_FILE",
                       help="UTF-8 text to train on (default: the built-in corpus)")
    sweep.add_argument("--out", required=True, metavar="DIR",
                       help="directory of the sweep: one run directory per trial, the results")
    sweep.add_argument("--grid", required=True, nargs="+", action="extend", type=_grid_item,
                       metavar="OPTION=V1,V2",
                       help="values to try for an option of fastrnn train, named without its "
                       "dashes (hidden-size=64,128 learning-rate=1e-3,3e-3); every "
                       "combination is a trial (TEXT_FILE goes before --grid)")
    sweep.add_argument("--random", type=argument_type(
        lambda name, v: check_int(name, v, 1, MAX_TRIALS), int), default=None, metavar="N",
                       help="run N distinct combinations drawn from the grid, seeded by --seed")
    where = sweep.add_mutually_exclusive_group()
    where.add_argument("--workers", type=argument_type(check_workers, int), default=None,
                       metavar="N", help="worker processes of the local Dask cluster, one "
                       "thread each (default: one per core, at most one per trial)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="use the running Dask cluster whose scheduler is at ADDRESS "
                       "(tcp://host:8786); its workers need fastrnn and DIR at the same path")
    fixed = sweep.add_argument_group("training options, the same for every trial (give "
                                     "--iterations, --time-limit or both: each trial's budget)")
    _add_training_options(fixed, fixed, defaults)
    sweep.set_defaults(handler=_sweep)


def _train_epilog():
    from fastrnn.corpus import BUILTIN_MODULES

    return (
        "Without TEXT_FILE the model trains on the built-in corpus: the source code of "
        "these modules of this Python's standard library (about 1 MB): "
        + ", ".join(BUILTIN_MODULES)
        + ".  DIR receives checkpoint.npz (the latest state: every eval and at the end), "
        "best.npz (lowest validation loss), history.csv and loss.png (needs matplotlib: "
        'pip install "fastrnn[plot]").  Ctrl-C, SIGTERM and SIGHUP stop cleanly after '
        "saving a checkpoint; continue with --resume.  One run at a time trains into DIR.  "
        "On --resume the model and data options come from the checkpoint (giving other "
        "values is an error) and the schedule options given apply from then on; "
        "TEXT_FILE may be left out to use the text the run was trained on."
    )


def _add_top_k_top_p(sample):
    """The options of ``sample`` that restrict each draw, converted by predict's checks."""
    from fastrnn._validation import argument_type, check_top_k, check_top_p

    sample.add_argument("--top-k", type=argument_type(lambda name, v: check_top_k(v, name), int),
                        default=None, metavar="K",
                        help="draw each character from the K most probable only (1: greedy)")
    sample.add_argument("--top-p", type=argument_type(lambda name, v: check_top_p(v, name), float),
                        default=None, metavar="P",
                        help="draw each character from the smallest set of the most probable "
                        "whose probability reaches P, in (0, 1] (nucleus sampling; after "
                        "--top-k when both are given)")


def _parser():
    from fastrnn._validation import (
        argument_type,
        check_num_chars,
        check_seed,
        check_temperature,
        check_threads,
    )
    from fastrnn.config import TrainingConfig

    defaults = TrainingConfig()
    from fastrnn import __version__

    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Character-level recurrent neural networks, compiled with Numba.",
    )
    parser.add_argument("--version", action="version", version=f"{_PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train a model on a text",
        description="Train a character-level model on a UTF-8 text file (or the built-in "
        "corpus) by truncated backpropagation through time.",
        epilog=_train_epilog(),
    )
    train.add_argument("text_file", nargs="?", metavar="TEXT_FILE",
                       help="UTF-8 text to train on (default: the built-in corpus)")
    train.add_argument("--out", required=True, metavar="DIR",
                       help="directory for checkpoints, history and plot")
    train.add_argument("--resume", action="store_true",
                       help="continue the run saved in DIR/checkpoint.npz up to --iterations")
    _add_training_options(train.add_argument_group("model and data (fixed once a run starts)"),
                          train.add_argument_group("optimisation schedule (may change on "
                                                   "--resume)"), defaults)
    train.add_argument("--threads", type=argument_type(check_threads, int), default=None,
                       metavar="N", help="threads to train on (default: every CPU, "
                       "FASTRNN_NUM_THREADS); the results are the same for any N")
    train.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    train.set_defaults(handler=_train)

    sample = commands.add_parser(
        "sample", help="generate text from a trained model",
        description="Print text generated by a trained model to stdout (messages go to "
        "stderr), starting with the --prime text if given.",
    )
    sample.add_argument("checkpoint", metavar="DIR_OR_CHECKPOINT", nargs="?", default=None,
                        help="a checkpoint file, or a training DIR (its checkpoint.npz); "
                        "default: the bundled pretrained model (an LSTM trained on Python "
                        "source)")
    # The checks generate() applies, with its argument names.
    length = argument_type(lambda name, value: check_num_chars(value, name), int)
    temperature = argument_type(lambda name, value: check_temperature(value, name), float)
    sample.add_argument("--length", type=length, default=500, metavar="N",
                        help="characters to generate, not counting the prime text (default: 500)")
    sample.add_argument("--temperature", type=temperature, default=1.0, metavar="T",
                        help="softmax temperature; lower is more conservative, 0 is greedy "
                        "(default: 1.0)")
    _add_top_k_top_p(sample)
    sample.add_argument("--prime", default="", metavar="TEXT",
                        help="text to start with; the output begins with it")
    sample.add_argument("--seed", type=argument_type(check_seed, int), default=None, metavar="N",
                        help="seed for reproducible samples (default: a fresh one)")
    sample.set_defaults(handler=_sample)

    evaluate = commands.add_parser(
        "eval", help="score a trained model on a text",
        description="Print the model's loss on a UTF-8 text, read as one stream from the "
        "first character (each character predicted from all before it): in nats and in bits "
        "per character.",
    )
    evaluate.add_argument("checkpoint", metavar="DIR_OR_CHECKPOINT",
                          help="a checkpoint file, or a training DIR (its checkpoint.npz)")
    evaluate.add_argument("text_file", metavar="TEXT_FILE", help="UTF-8 text to score")
    evaluate.add_argument("--json", action="store_true",
                          help='print {"loss_nats": ..., "bits_per_char": ..., "characters": ...}')
    evaluate.set_defaults(handler=_eval)
    _add_sweep(commands, defaults)

    hello = commands.add_parser("hello", help='the min-char-rnn demo: learn "hello world"')
    hello.set_defaults(handler=_hello)
    return parser


# -- commands ------------------------------------------------------------------------


def _hello(args):
    hello_world()
    return 0


class _UserError(Exception):
    """A problem to report in one line, without a traceback."""


def _describe_os_error(error):
    where = f"{error.filename}: " if error.filename else ""
    return f"{where}{error.strerror or error}"


def _read_training_text(path):
    from fastrnn.corpus import builtin_corpus, read_text

    if path is None:
        return builtin_corpus(), "<builtin>"
    if os.path.isdir(path):
        raise _UserError(f"{path} is a directory, not a text file")
    try:
        return read_text(path), os.path.abspath(path)
    except OSError as error:
        raise _UserError(f"cannot read the text file: {_describe_os_error(error)}") from None


def _resume_text(args, ckpt):
    """Read the text of a resumed run: TEXT_FILE, or the one the checkpoint records."""
    if args.text_file is not None:
        return _read_training_text(args.text_file)
    source = ckpt.text_source
    if source == "<builtin>":
        return _read_training_text(None)
    from fastrnn.corpus import CorpusError

    try:
        return _read_training_text(source)
    except (_UserError, CorpusError) as error:  # gone, or now a FIFO, a device, too large
        raise _UserError(f"the run was trained on {source}, which cannot be read now ({error}); "
                         f"pass its TEXT_FILE") from None


def _check_out_dir(out):
    if os.path.exists(out) and not os.path.isdir(out):
        raise _UserError(f"--out {out} exists and is not a directory")


def _make_out_dir(out):
    import tempfile

    try:
        os.makedirs(out, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise _UserError(f"cannot write into the output directory {out}: "
                         f"{error.strerror or error}") from None


def _train(args):
    from fastrnn import set_num_threads
    from fastrnn.training import Trainer, TrainingConfig

    out = args.out
    _check_out_dir(out)
    if args.threads is not None:
        set_num_threads(args.threads)
    fields = [option[1] for option in _MODEL_OPTIONS + _SCHEDULE_OPTIONS]
    given = {field: getattr(args, field) for field in fields if getattr(args, field) is not None}
    if args.resume:
        trainer = _resume(args, given)
    else:
        text, source = _read_training_text(args.text_file)
        trainer = Trainer(text, TrainingConfig(**given), source=source)
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
        command = [_PROG, "train"] + ([args.text_file] if args.text_file else [])
        command += ["--out", out, "--resume"]
        by = "" if stop.signum == signal.SIGINT else f" by {signal.Signals(stop.signum).name}"
        # After SIGHUP the terminal is often gone: the status still tells.
        _print_error(f"\ninterrupted{by} at iteration {stop.iteration}; checkpoint saved to "
                     f"{where}\nresume with: {shlex.join(command)}")
        return _exit_status(stop)
    _describe_end(summary, trainer, args)
    return 0


def _sweep(args):
    from fastrnn.sweep import (
        BEST_LINK,
        BUDGET_OPTIONS,
        RESULTS_MD,
        SweepInterrupted,
        markdown_table,
        sweep,
    )

    grid = {}
    for field, values in args.grid:
        if field in grid:
            raise _UserError(f"--grid names {_FLAGS[field][2:]} twice")
        grid[field] = values
    fields = [option[1] for option in _MODEL_OPTIONS + _SCHEDULE_OPTIONS]
    fixed = {field: getattr(args, field) for field in fields if getattr(args, field) is not None}
    for field in grid:
        if field in fixed:
            raise _UserError(f"{_FLAGS[field]} is given and in --grid; give it one way")
    if not set(BUDGET_OPTIONS) & (set(fixed) | set(grid)):
        raise _UserError("give each trial a budget: --iterations N, --time-limit SECONDS or "
                         "both (fixed, or in --grid)")
    _check_out_dir(args.out)
    text, source = _read_training_text(args.text_file)
    try:
        results = sweep(text, args.out, grid, options=fixed, random=args.random,
                        workers=args.workers, scheduler=args.scheduler, source=source)
    except ImportError as error:  # no Dask: the message says how to install it
        raise _UserError(str(error)) from None
    except SweepInterrupted as stop:
        by = "" if stop.signum == signal.SIGINT else f" by {signal.Signals(stop.signum).name}"
        _print_error(f"\nsweep interrupted{by}: every running trial saved its checkpoint; "
                     f"rerun the same command to resume the sweep")
        return _exit_status(stop)
    print(markdown_table(results), end="")
    sys.stdout.flush()
    finished = sum(r.status == "finished" for r in results)
    failed = sum(r.status == "failed" for r in results)
    line = f"{finished} of {len(results)} trials finished"
    if failed:
        line += f", {failed} failed (see {os.path.join(args.out, RESULTS_MD)})"
    if not finished:
        return _fail(line)
    best = results[0]
    if best.status != "failed" and best.best_val_loss is not None:
        link = os.path.join(args.out, BEST_LINK)
        line += (f"; the best is {best.name}, now {link}\n"
                 f"sample with: {shlex.join([_PROG, 'sample', link])}")
    print(line, file=sys.stderr)
    return 0


def _resume(args, given):
    """The trainer of ``--resume``: the checkpoint read once, the options it refuses named."""
    from fastrnn.checkpoint import load_checkpoint
    from fastrnn.config import FixedOptionError
    from fastrnn.training import CHECKPOINT_NAME, Trainer

    try:
        ckpt = load_checkpoint(os.path.join(args.out, CHECKPOINT_NAME))
    except FileNotFoundError:
        raise _UserError(f"--resume: {args.out} holds no {CHECKPOINT_NAME} to resume") from None
    text, source = _resume_text(args, ckpt)
    try:
        return Trainer.from_checkpoint(ckpt, text, source=source, **given)
    except FixedOptionError as error:
        raise _UserError(
            f"{_FLAGS[error.name]} {error.given} conflicts with the checkpoint, which has "
            f"{error.stored}; a resumed run keeps its model and data options"
        ) from None


def _check_run(trainer, args):
    """Ask the trainer whether it may run into --out, before the run is announced."""
    from fastrnn._rundir import AnotherRunError, TargetPassedError

    try:
        trainer._check_run(args.out)
    except TargetPassedError as error:
        raise _UserError(f"--iterations {error.target} is below the checkpoint's iteration "
                         f"{error.iteration}; it counts all iterations of the run") from None
    except AnotherRunError:
        if args.resume:  # the checkpoint changed since it was read: the trainer's words
            raise
        raise _UserError(f"{args.out} already holds a checkpoint; add --resume to continue "
                         f"that run, or choose another --out") from None


def _describe_run(trainer, out):
    c = trainer.config
    n_params = trainer.model.parameter_vector.shape[0]
    source = "the built-in corpus" if trainer.source == "<builtin>" else trainer.source
    print(
        f"training a {c.model} with "
        + (f"{c.num_layers} layers of " if c.num_layers > 1 else "")
        + f"{c.hidden_size} hidden units ({n_params:,} {c.dtype} parameters) on "
        f"{source}: {trainer.text_length:,} characters, {trainer.vocab.size} distinct, "
        f"{trainer.val_size:,} held out for validation\n"
        f"{c.iterations:,} iterations of {c.batch_size} x {c.seq_length} characters, "
        f"{c.optimizer} with learning rate {c.learning_rate:g}, "
        + (f"clip {c.clip:g}" if c.clip else "no clipping")
        + (f", for at most {c.time_limit:g} s" if c.time_limit is not None else "")
        + f"; writing into {out}",
        file=sys.stderr,
    )


def _describe_end(summary, trainer, args):
    out, config = args.out, trainer.config
    timed_out = summary.iteration < config.iterations  # only the time limit ends a run early
    line = "done: " + (f"time limit of {config.time_limit:g} s reached at iteration "
                       f"{summary.iteration} of {config.iterations}" if timed_out
                       else f"iteration {summary.iteration}")
    line += f", training loss {summary.train_loss:.4f}"
    if summary.val_loss is not None:
        line += (f", validation loss {summary.val_loss:.4f} nats "
                 f"({summary.val_loss / math.log(2):.3f} bits) per character")
    if summary.chars_per_sec:
        line += f"; {summary.seconds:.0f} s, {summary.chars_per_sec:,.0f} chars/s"
    line += f"\nsample with: {shlex.join([_PROG, 'sample', out])}"
    if timed_out:
        command = [_PROG, "train"] + ([args.text_file] if args.text_file else [])
        line += f"\ncontinue with: {shlex.join(command + ['--out', out, '--resume'])}"
    print(line, file=sys.stderr)


def _load(given):
    """The model and vocabulary of DIR_OR_CHECKPOINT: a checkpoint file, or DIR/checkpoint.npz."""
    from fastrnn.training import CHECKPOINT_NAME, load_model

    path = given
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT_NAME)
        if not os.path.exists(path):
            raise _UserError(f"{given} holds no {CHECKPOINT_NAME}")
        if os.path.isdir(path):
            raise _UserError(f"{path} is a directory, not a checkpoint")
    try:
        return load_model(path)
    except OSError as error:
        raise _UserError(f"cannot read the checkpoint: {_describe_os_error(error)}") from None


def _sample(args):
    from fastrnn.training import generate

    if sys.stdout is None:  # started with stdout closed (``>&-``)
        raise _UserError("standard output is closed: there is nowhere to write the sample")
    if args.checkpoint is None:
        from fastrnn.pretrained import PRETRAINED_DESCRIPTION, load_pretrained

        print(f"sampling from the bundled pretrained model ({PRETRAINED_DESCRIPTION}); "
              f"name a checkpoint to use another", file=sys.stderr)
        model, vocab = load_pretrained()
    else:
        model, vocab = _load(args.checkpoint)
    text = generate(model, vocab, args.length, prime=args.prime, temperature=args.temperature,
                    seed=args.seed, top_k=args.top_k, top_p=args.top_p)
    data = text.encode("utf-8", "surrogateescape")
    if sys.stdout.isatty() and not text.endswith("\n"):
        data += b"\n"
    stream = getattr(sys.stdout, "buffer", None)
    try:
        if stream is None:  # a replaced text stream (tests, IDEs)
            sys.stdout.write(text)
        else:
            sys.stdout.flush()
            stream.write(data)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``fastrnn sample DIR | head``): not an error.
        _discard(sys.stdout)
    return 0


def _eval(args):
    import json

    from fastrnn.corpus import read_text
    from fastrnn.generate import evaluate

    model, vocab = _load(args.checkpoint)
    path = args.text_file
    if os.path.isdir(path):
        raise _UserError(f"{path} is a directory, not a text file")
    try:
        if os.path.getsize(path) == 0:
            raise _UserError(f"{path} is empty: there is nothing to score")
        text = read_text(path)
    except OSError as error:
        raise _UserError(f"cannot read the text file: {_describe_os_error(error)}") from None
    result = evaluate(model, vocab, text, name=path)
    if args.json:
        print(json.dumps(result._asdict()))
    else:
        print(f"{result.loss_nats:.4f} nats ({result.bits_per_char:.4f} bits) per character "
              f"on {result.characters:,} characters of {path}")
    return 0


def _discard(stream):
    """Point a stream whose reader went away at /dev/null, so that flushing it at exit is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
    except (AttributeError, OSError, ValueError):  # no file descriptor (a replaced stream)
        pass


def main(argv=None):
    """Entry point of ``fastrnn`` and ``python -m fastrnn``.

    Parameters
    ----------
    argv : list of str, optional
        The arguments; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        The exit status: 0 on success, 1 after an error, 2 for bad options,
        128 + the signal's number after Ctrl-C (130), SIGTERM (143) or SIGHUP (129).
    """
    command = None
    try:
        parser = _parser()
        args = parser.parse_args(argv)
        command = args.command
        if args.command is None:
            parser.print_usage(sys.stderr)
            print(f"{_PROG}: error: choose a command: train, sample, eval, sweep or hello",
                  file=sys.stderr)
            return 2
        return args.handler(args)
    except KeyboardInterrupt as stop:
        _print_error(f"\n{_PROG}: interrupted")
        return _exit_status(stop)
    except BrokenPipeError:
        # stderr's reader went away (``fastrnn train ... 2>&1 | head``): nothing
        # more can be said there.  A run saves its checkpoint before it stops.
        _discard(sys.stderr)
        return _EXIT_ERROR
    except _UserError as error:
        return _fail(str(error))
    except MemoryError:
        if command == "train":
            return _fail("not enough memory for a model of this size; choose a smaller "
                         "--hidden-size or --num-layers")
        if command == "sample":
            return _fail("not enough memory for that many characters; choose a smaller --length")
        return _fail("not enough memory")
    except (ValueError, FloatingPointError) as error:
        # CorpusError, CheckpointError, TrainingDiverged and bad values all land here.
        return _fail(str(error))
    except OSError as error:
        return _fail(_describe_os_error(error))


def _exit_status(stop):
    """128 + the number of the signal that stopped the command, as shells report it."""
    return 128 + getattr(stop, "signum", signal.SIGINT)


def _fail(message):
    _print_error(f"{_PROG}: error: {message}")
    return _EXIT_ERROR


def _print_error(text):
    """Print to stderr; when it is closed or its reader has gone, there is no one to tell."""
    if sys.stderr is None:  # started with stderr closed (``2>&-``); print would use stdout
        return
    try:
        print(text, file=sys.stderr)
        sys.stderr.flush()
    except (OSError, ValueError):  # the reader went away, or the stream is closed
        _discard(sys.stderr)
