"""What ``sample`` and ``eval`` do, once their arguments are parsed."""

import os
import sys

from fastrnn._commands.common import UserError, discard
from fastrnn._commands.texts import read_text_file
from fastrnn._files import describe_os_error
from fastrnn.training.loading import PRETRAINED, load_source


def _load(given):
    """The model and vocabulary of DIR_OR_CHECKPOINT.

    A checkpoint file, a training directory's ``checkpoint.npz``, or the bundled
    model (``pretrained``).
    """
    from fastrnn.training import CHECKPOINT_NAME, load_model

    if given == PRETRAINED:
        return load_source(PRETRAINED)
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

    from fastrnn.inference import evaluate

    model, vocab = _load(args.checkpoint)
    path = args.text_file
    text = read_text_file(path, "score")
    result = evaluate(model, vocab, text, name=path)
    if args.json:
        print(json.dumps(result._asdict()))
    else:
        print(f"{result.loss_nats:.4f} nats ({result.bits_per_char:.4f} bits) per character "
              f"on {result.characters:,} characters of {path}")
    return 0
