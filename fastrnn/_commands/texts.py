"""The texts a command trains on: files and folders, a validation file, what a resume reads.

The source a checkpoint records is the one PATH given (absolute), or the
JSON list of them, so that a resume reads the same folders again; a resume
whose text is not the run's names the file that changed.
"""

import os

from fastrnn._commands.common import UserError
from fastrnn._files import describe_os_error


def read_text_file(path, use, what="the text file", flag=""):
    """One UTF-8 file named on the command line (``flag``: the option that named it)."""
    from fastrnn.corpus import read_text

    if os.path.isdir(path):
        raise UserError(f"{flag}{path} is a directory, not a text file")
    try:
        return read_text(path, use)
    except OSError as error:
        raise UserError(f"cannot read {what}: {describe_os_error(error)}") from None


def read_training_text(path):
    """The text of a sweep: TEXT_FILE, or the built-in corpus; with its source."""
    from fastrnn.corpus import builtin_corpus

    if path is None:
        return builtin_corpus(), "<builtin>"
    return read_text_file(path, "train on"), os.path.abspath(path)


def read_paths(paths):
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


def read_val_file(path):
    """The validation text of --val-file, as Trainer's keyword arguments."""
    text = read_text_file(path, "validate on", "the validation file", "--val-file ")
    return {"val_text": text, "val_source": os.path.abspath(path)}


def recorded_paths(source):
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


def resume_text(args, ckpt):
    """Read the text of a resumed run: the PATHs given, or those the checkpoint records."""
    from fastrnn.corpus import CorpusError, fingerprint

    if args.text_files:
        text, source, corpus = read_paths(args.text_files)
    else:
        paths = recorded_paths(ckpt.text_source)
        try:
            text, source, corpus = read_paths(paths)
        except (UserError, CorpusError) as error:  # gone, or now a FIFO, a device, too large
            raise UserError(f"the run was trained on {ckpt.text_source}, which cannot be read "
                            f"now ({error}); pass its PATHs") from None
    # The files' digests decide at once in the usual case; the whole text is
    # hashed only when they differ (the same text may be split otherwise).
    if (ckpt.corpus and [f[1] for f in corpus] != [f[1] for f in ckpt.corpus]
            and fingerprint(text) != ckpt.text_sha256):
        _name_the_change(ckpt.corpus, corpus)  # else Trainer.from_checkpoint says it
    return text, source, corpus


def _name_the_change(recorded, now):
    """Name a file that makes a corpus's text not the run's (files may have moved)."""
    advice = "; resume with the corpus the run was trained on"
    then_by_path = {path: digest for path, digest, _ in recorded}
    then_digests = [digest for _, digest, _ in recorded]
    now_digests = [digest for _, digest, _ in now]
    for path, digest, _ in now:
        if then_by_path.get(path, digest) != digest:
            raise UserError(f"{path} changed since the run started (sha256 "
                            f"{then_by_path[path][:12]}... then, {digest[:12]}... now)" + advice)
    then_known, now_known = set(then_digests), set(now_digests)
    for path, digest, _ in now:
        if digest not in then_known:
            raise UserError(f"{path} was not in the corpus the run was trained on" + advice)
    for path, digest, _ in recorded:
        if digest not in now_known:
            raise UserError(f"the corpus has lost {path} since the run started" + advice)
    if now_digests != then_digests:
        raise UserError("the corpus's files come in another order, or some twice" + advice)
