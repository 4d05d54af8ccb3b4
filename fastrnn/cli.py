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
    (:func:`fastrnn.sweep`) and print the table of results.
``fastrnn --version``
    Print the version.
``fastrnn hello``
    The classic min-char-rnn demonstration on "hello world".

Every user error ends the command with a one-line message on stderr and a
non-zero exit status (2 for bad options, 1 otherwise, 128 + the signal's number
after Ctrl-C, SIGTERM or SIGHUP: 130, 143, 129).
"""
import argparse
import sys

from fastrnn import _commands
from fastrnn._commands.common import (
    EXIT_ERROR,
    GRID_NAMES,
    MODEL_OPTIONS,
    PROG,
    SCHEDULE_OPTIONS,
    UserError,
    discard,
    exit_status,
    fail,
    print_error,
    usable_streams,
)
from fastrnn._commands.training import hello_world
from fastrnn._files import describe_os_error

__all__ = ["main", "hello_world"]


# -- the parser ----------------------------------------------------------------------


def _option_argument(field):
    """The argparse keywords of a training option: its choices, or a converter from its check."""
    from dataclasses import fields

    from fastrnn._validation import argument_type
    from fastrnn.training.config import OPTION_CHECKS, OPTION_CHOICES, TrainingConfig

    if field in OPTION_CHOICES:
        return {"choices": OPTION_CHOICES[field]}
    kind = {f.name: f.type for f in fields(TrainingConfig)}[field]  # int, float | None, ...
    parse = int if kind is int else str if str in getattr(kind, "__args__", ()) else float
    return {"type": argument_type(OPTION_CHECKS[field], parse)}


def _add_training_options(model, schedule, defaults):
    """The options of ``train``, in two argument groups: the run's model and data, its schedule."""
    for group, options in ((model, MODEL_OPTIONS), (schedule, SCHEDULE_OPTIONS)):
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
    field = GRID_NAMES.get(name.strip().removeprefix("--"))
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


def _command(commands, name, handler, **options):
    """Add the subcommand ``name``, run by ``handler(args)``; ``options`` go to argparse."""
    parser = commands.add_parser(name, **options)
    parser.set_defaults(handler=handler)
    return parser


def _add_text_file(parser):
    parser.add_argument("text_file", nargs="?", metavar="TEXT_FILE",
                        help="UTF-8 text to train on (default: the built-in corpus)")


def _add_checkpoint(parser, more="", **options):
    parser.add_argument("checkpoint", metavar="DIR_OR_CHECKPOINT", **options,
                        help="a checkpoint file, or a training DIR (its checkpoint.npz)" + more)


def _add_sweep(commands, defaults):
    from fastrnn._limits import MAX_TRIALS
    from fastrnn._validation import argument_type, check_int
    from fastrnn.sweeps.grid import check_workers

    sweep = _command(
        commands, "sweep", _commands.sweep,
        help="train one run per combination of option values, on Dask",
        description="Train one ordinary run, DIR/trial-NNN, for each combination of the "
        "values given with --grid (or --random N of them), with every other option as given, "
        "on a Dask cluster; then write DIR/results.csv, DIR/results.md (also printed), "
        "DIR/sweep.png and the link DIR/best to the trial with the lowest validation loss.",
        epilog="Rerunning the same command skips the finished trials and resumes the others. "
        "Ctrl-C, SIGTERM and SIGHUP stop every trial, each saving its checkpoint.  A failed "
        "trial is recorded with its message and the others go on; the exit status is 0 when "
        "at least one trial finished.  Needs Dask: " + 'pip install "fastrnn[sweep]".',
    )
    _add_text_file(sweep)
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
    from fastrnn._limits import MAX_SAMPLES
    from fastrnn._validation import (
        DTYPES,
        argument_type,
        check_int,
        check_num_chars,
        check_seed,
        check_temperature,
        check_threads,
    )
    from fastrnn.inference import check_stop
    from fastrnn.model import MODELS
    from fastrnn.training.config import TrainingConfig

    defaults = TrainingConfig()
    from fastrnn import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Character-level recurrent neural networks, compiled with Numba.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = _command(
        commands, "train", _commands.train, help="train a model on a text",
        description="Train a character-level model on a UTF-8 text file (or the built-in "
        "corpus) by truncated backpropagation through time.",
        epilog=_train_epilog(),
    )
    train.add_argument("text_files", nargs="*", metavar="PATH",
                       help="UTF-8 text files, or folders (every regular file in them, at any "
                       "depth, in sorted order), joined into one text in order (default: the "
                       "built-in corpus)")
    train.add_argument("--out", required=True, metavar="DIR",
                       help="directory for checkpoints, history and plot")
    train.add_argument("--resume", action="store_true",
                       help="continue the run saved in DIR/checkpoint.npz up to --iterations")
    data = train.add_argument_group("model and data (fixed once a run starts)")
    _add_training_options(data, train.add_argument_group("optimisation schedule (may change on "
                                                         "--resume)"), defaults)
    data.add_argument("--val-file", default=None, metavar="FILE",
                      help="validate on this UTF-8 text instead of holding out --val-fraction "
                      "of the training text")
    train.add_argument("--threads", type=argument_type(check_threads, int), default=None,
                       metavar="N", help="threads to train on (default: every CPU, "
                       "FASTRNN_NUM_THREADS); the results are the same for any N")
    train.add_argument("--no-progress", action="store_true", help="do not show a progress bar")

    sample = _command(
        commands, "sample", _commands.sample, help="generate text from a trained model",
        description="Print text generated by a trained model to stdout (messages go to "
        "stderr), starting with the --prime text if given.",
    )
    _add_checkpoint(sample, "; 'pretrained', or nothing: the bundled pretrained model (an "
                    "LSTM trained on Python source)", nargs="?", default=None)
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
    sample.add_argument("--num-samples", type=argument_type(
        lambda name, value: check_int(name, value, 1, MAX_SAMPLES), int), default=None,
        metavar="N", help="draw N independent samples, each ended by a newline, an empty line "
        "between them (seeded from --seed, each its own)")
    stop = argument_type(lambda name, value: check_stop(value, name), str)
    sample.add_argument("--stop", type=stop, default=None, metavar="TEXT",
                        help="end each sample just before TEXT first appears in it (--length "
                        "is then the most it draws)")
    sample.add_argument("--json", action="store_true",
                        help="print the samples as one JSON list of strings")

    evaluate = _command(
        commands, "eval", _commands.evaluate, help="score a trained model on a text",
        description="Print the model's loss on a UTF-8 text, read as one stream from the "
        "first character (each character predicted from all before it): in nats and in bits "
        "per character.",
    )
    _add_checkpoint(evaluate, "; 'pretrained': the bundled pretrained model")
    evaluate.add_argument("text_file", metavar="TEXT_FILE", help="UTF-8 text to score")
    evaluate.add_argument("--json", action="store_true",
                          help='print {"loss_nats": ..., "bits_per_char": ..., "characters": ...}')
    _add_sweep(commands, defaults)

    _command(commands, "hello", _commands.hello, help='the min-char-rnn demo: learn "hello world"')

    compile_ = _command(
        commands, "compile", _commands.compile_kernels,
        help="compile and cache the kernels ahead of the first run",
        description="Compile the chosen models' kernels and cache them on disk (Numba's "
        "cache: next to the installed package, or NUMBA_CACHE_DIR), so that the first "
        "training run or script in this environment starts at once: for container images "
        "and cluster workers.",
    )
    compile_.add_argument("--model", type=_choices(MODELS), default=list(MODELS),
                          metavar="MODELS", help="comma-separated models to compile "
                          f"(default: {','.join(MODELS)})")
    compile_.add_argument("--dtype", type=_choices(DTYPES), default=list(DTYPES[:1]),
                          metavar="DTYPES", help=f"comma-separated dtypes: {', '.join(DTYPES)} "
                          f"(default: {DTYPES[0]})")
    compile_.add_argument("--jobs", type=argument_type(check_threads, int), default=None,
                          metavar="N", help="processes to compile in, each one model in one "
                          "dtype at a time (default: every CPU, FASTRNN_NUM_THREADS)")
    return parser


def _choices(allowed):
    """An argparse type: a comma-separated list of names from ``allowed``, in order, unique."""

    def parse(text):
        names = [name.strip() for name in text.split(",")]
        bad = [name for name in names if name not in allowed]
        if bad or not text.strip():
            raise argparse.ArgumentTypeError(
                f"{text!r}: choose from {', '.join(allowed)} (comma-separated)")
        return list(dict.fromkeys(names))

    return parse


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
    usable_streams()
    try:
        parser = _parser()
        args = parser.parse_args(argv)
        command = args.command
        if args.command is None:
            parser.print_usage(sys.stderr)
            print(f"{PROG}: error: choose a command: train, sample, eval, sweep, hello or "
                  "compile",
                  file=sys.stderr)
            return 2
        _set_threads(getattr(args, "threads", None))
        return args.handler(args)
    except KeyboardInterrupt as stop:
        print_error(f"\n{PROG}: interrupted")
        return exit_status(stop)
    except BrokenPipeError:
        # stderr's reader went away (``fastrnn train ... 2>&1 | head``): nothing
        # more can be said there.  A run saves its checkpoint before it stops.
        discard(sys.stderr)
        return EXIT_ERROR
    except UserError as error:
        return fail(str(error))
    except MemoryError:
        if command == "train":
            return fail("not enough memory for a model of this size; choose a smaller "
                         "--hidden-size or --num-layers")
        if command == "sample":
            return fail("not enough memory for that many characters; choose a smaller --length")
        return fail("not enough memory")
    except (ValueError, FloatingPointError) as error:
        # CorpusError, CheckpointError, TrainingDiverged and bad values all land here.
        return fail(str(error))
    except OSError as error:
        return fail(describe_os_error(error))


def _set_threads(threads):
    """``--threads`` when given; else check ``FASTRNN_NUM_THREADS`` before anything runs."""
    from fastrnn import get_num_threads, set_num_threads

    if threads is not None:
        set_num_threads(threads)
    else:
        get_num_threads()  # a bad FASTRNN_NUM_THREADS: a one-line error, not a model's
