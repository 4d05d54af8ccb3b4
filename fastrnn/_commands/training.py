"""What ``train``, ``sweep``, ``hello`` and ``compile`` do, once their arguments are parsed."""

import math
import os
import shlex
import sys

from fastrnn._commands.common import (
    FLAGS,
    PROG,
    UserError,
    check_out_dir,
    fail,
    given_options,
    interrupted,
    make_out_dir,
)
from fastrnn._commands.texts import (
    read_paths,
    read_training_text,
    read_val_file,
    recorded_paths,
    resume_text,
)


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


def train(args):
    from fastrnn.training import Trainer, TrainingConfig

    out = args.out
    check_out_dir(out)
    given = given_options(args)
    if args.resume:
        trainer = _resume(args, given)
    else:
        text, source, corpus = read_paths(args.text_files)
        validation = {}
        if args.val_file is not None:
            if given.get("val_fraction"):
                raise UserError("--val-file replaces --val-fraction: give one of them")
            given["val_fraction"] = 0.0
            validation = read_val_file(args.val_file)
        architecture = _from_source(given)
        trainer = Trainer(text, TrainingConfig(**given), source=source, corpus=corpus,
                          **validation)
        _check_architecture(trainer, architecture)
    _check_run(trainer, args)
    make_out_dir(out)
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
        return interrupted("", stop, f" at iteration {stop.iteration}; checkpoint saved to "
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
    fixed = given_options(args)
    for field in grid:
        if field in fixed:
            raise UserError(f"{FLAGS[field]} is given and in --grid; give it one way")
    if not set(BUDGET_OPTIONS) & (set(fixed) | set(grid)):
        raise UserError("give each trial a budget: --iterations N, --time-limit SECONDS or "
                         "both (fixed, or in --grid)")
    check_out_dir(args.out)
    text, source = read_training_text(args.text_file)
    try:
        results = sweep(text, args.out, grid, options=fixed, random=args.random,
                        workers=args.workers, scheduler=args.scheduler, source=source)
    except ImportError as error:  # no Dask: the message says how to install it
        raise UserError(str(error)) from None
    except SweepInterrupted as stop:
        return interrupted("sweep ", stop, ": every running trial saved its checkpoint; "
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
    text, source, _ = resume_text(args, ckpt)
    if ckpt.validation:
        val_text = read_val_file(args.val_file or ckpt.validation[0])["val_text"]
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


def _from_source(given):
    """With --init-from: check the source is there; take the architecture flags out of ``given``.

    The model's architecture is then the source's, and the flags taken out
    are checked against it (:func:`_check_architecture`).
    """
    from fastrnn.training.config import ARCHITECTURE_OPTIONS
    from fastrnn.training.loading import PRETRAINED

    source = given.get("init_from")
    if source is None:
        return {}
    if source != PRETRAINED and not os.path.exists(source):
        raise UserError(f"--init-from {source}: no such run directory or checkpoint (or "
                        f"'{PRETRAINED}' for the bundled model)")
    return {name: given.pop(name) for name in ARCHITECTURE_OPTIONS if name in given}


def _check_architecture(trainer, given):
    """Refuse an architecture flag that differs from --init-from's model."""
    for name in given:
        if getattr(trainer.config, name) != given[name]:
            raise UserError(f"{FLAGS[name]} {given[name]} conflicts with --init-from "
                            f"{trainer.config.init_from}, whose model has "
                            f"{getattr(trainer.config, name)}; leave {FLAGS[name]} out")


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
    paths = recorded_paths(trainer.source)
    source = "the built-in corpus" if paths is None else ", ".join(paths)
    if trainer.corpus and len(trainer.corpus) > len(paths or ()):
        source += f" ({len(trainer.corpus)} files)"
    validation = (f"validating on {trainer.validation[0]} ({trainer.val_size:,} characters)"
                  if trainer.validation else f"{trainer.val_size:,} held out for validation")
    print(
        f"training a {c.model} with "
        + (f"{c.num_layers} layers of " if c.num_layers > 1 else "")
        + f"{c.hidden_size} hidden units ({n_params:,} {c.dtype} parameters)"
        + (f", starting from {c.init_from}," if c.init_from is not None else "")
        + f" on {source}: {trainer.text_length:,} characters, {trainer.vocab.size} distinct, "
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


def _resume_command(args):
    """The ``fastrnn train ... --resume`` command that continues this run, quoted for a shell."""
    return shlex.join([PROG, "train", *args.text_files, "--out", args.out, "--resume"])
