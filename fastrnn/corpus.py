"""Training text: reading it, the built-in corpus, the validation split, the streams.

The trainer sees a text as one index array (see :mod:`fastrnn.vocab`), held
once in the smallest integer type its vocabulary fits; the streams and the
validation data are views of it, and only each (B, T) chunk is converted to
the int64 the models take, as it is cut.
Its last ``val_fraction`` is cut off first as validation data; the rest is cut
into ``batch_size`` contiguous parts, one per stream, read in chunks of
``seq_length`` as char-rnn does: chunk k of stream b is
``parts[b, k*T : k*T + T]`` with the targets one character further on.  When a
stream has no room for another full chunk it wraps to the start of its part
(all streams wrap together, since the parts have the same length); the trainer
then starts again from a zero hidden state.  The characters of the last,
incomplete chunk of a part (fewer than ``seq_length``) are not trained on.

The built-in corpus
-------------------
Without a text file, fastrnn trains on the source code of a fixed set of
pure-Python modules of the installed Python's standard library
(:data:`BUILTIN_MODULES`, about 1 MB), concatenated in that order.  Every one of
them exists in every CPython from 3.10 on, so the command works on any machine
with nothing to download; the exact text (and so its fingerprint) differs a
little between Python versions.
"""

import collections
import hashlib
import os
import stat
import sysconfig

import numpy as np

from fastrnn._files import open_regular, read_exactly
from fastrnn._limits import MAX_TEXT_BYTES
from fastrnn._validation import check_instance, check_int, check_real, integer_vector

__all__ = [
    "BUILTIN_MODULES",
    "MAX_TEXT_BYTES",
    "CorpusError",
    "read_text",
    "corpus_files",
    "read_corpus",
    "check_corpus",
    "builtin_corpus",
    "fingerprint",
    "split_validation",
    "contiguous_parts",
    "Streams",
]

BUILTIN_MODULES = (
    "abc", "argparse", "ast", "bisect", "calendar", "contextlib", "copy", "csv",
    "dataclasses", "difflib", "enum", "fnmatch", "fractions", "functools",
    "genericpath", "glob", "heapq", "numbers", "operator", "posixpath", "pprint",
    "queue", "random", "statistics", "string", "tempfile", "textwrap", "tokenize",
    "traceback", "typing", "weakref",
)  # fmt: skip
"""The standard-library modules whose source text makes the built-in corpus, in order.

All are single-file, pure-Python modules present in CPython 3.10 and later.
"""



# Characters encoded or hashed at a time, so that no copy of the whole text is made.
_BLOCK = 1 << 20


class CorpusError(ValueError):
    """A text that cannot be trained on: empty, not UTF-8, too short, or missing sources."""


def read_text(path, use="train on"):
    """Read a UTF-8 text file, exactly (line endings are kept; a BOM is dropped).

    Only a regular file of at most :data:`MAX_TEXT_BYTES` is read: a FIFO, a
    device or a larger file is refused before anything is read from it.

    Parameters
    ----------
    path : str or os.PathLike
    use : str, default "train on"
        What the text is for, as an empty file's message says it.

    Returns
    -------
    str

    Raises
    ------
    OSError
        If the file cannot be read (missing, a directory, no permission).
    CorpusError
        If it is not a regular file, is larger than :data:`MAX_TEXT_BYTES`,
        empty or not valid UTF-8.
    """
    f, size = open_regular(path, CorpusError, MAX_TEXT_BYTES, "a text file")
    with f:
        raw = read_exactly(f, size, CorpusError, os.fspath(path))
    if not raw:
        raise CorpusError(f"{os.fspath(path)} is empty: there is nothing to {use}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CorpusError(
            f"{os.fspath(path)} is not UTF-8 text (byte 0x{raw[error.start]:02x} at offset "
            f"{error.start} is invalid); fastrnn reads UTF-8 files"
        ) from None
    if not text:
        raise CorpusError(f"{os.fspath(path)} holds only a UTF-8 byte-order mark: there is "
                          f"nothing to {use}")
    return text


def corpus_files(paths):
    """The files of a corpus, in order: each path a file, or every regular file of a folder.

    A folder gives its regular files at any depth, in sorted order of their
    paths (links, FIFOs and other special files in it are passed over, never
    followed or opened).  A path named twice, or a file that two folders give,
    is refused.

    Parameters
    ----------
    paths : str, os.PathLike or a list of them

    Returns
    -------
    list of str
        Absolute paths.

    Raises
    ------
    CorpusError
        If no path is given, a folder holds no regular file, or a file repeats.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise CorpusError("give at least one text file or folder")
    files = []
    for path in paths:
        if not isinstance(path, (str, os.PathLike)):
            raise CorpusError(f"a corpus path must be a str or os.PathLike, got {path!r}")
        path = os.path.abspath(os.fspath(path))
        if not os.path.isdir(path):
            files.append(path)  # read_text refuses what is not a readable regular file
            continue
        found = []
        for folder, subfolders, names in os.walk(path):
            subfolders.sort()
            found += [os.path.join(folder, name) for name in names
                      if stat.S_ISREG(os.lstat(os.path.join(folder, name)).st_mode)]
        if not found:
            raise CorpusError(f"the folder {path} holds no regular file to read")
        files += sorted(found)
    repeated = sorted(f for f, count in collections.Counter(files).items() if count > 1)
    if repeated:
        raise CorpusError(f"{repeated[0]} is in the corpus twice; name each file once")
    return files


def read_corpus(paths, use="train on"):
    """Read a corpus (:func:`corpus_files`) into one text: its files joined in order.

    Parameters
    ----------
    paths : str, os.PathLike or a list of them
        Files and folders.
    use : str, default "train on"
        What the text is for, as an empty file's message says it.

    Returns
    -------
    text : str
        The files' texts, one after the other, exactly (see :func:`read_text`).
    files : tuple of (str, str, int)
        Each file's absolute path, :func:`fingerprint` and length in characters,
        in order: what a checkpoint records, so that a resume can name a file
        that changed.

    Raises
    ------
    OSError
        If a file cannot be read.
    CorpusError
        As :func:`corpus_files` and :func:`read_text`, naming the file; and if
        the files together are larger than :data:`MAX_TEXT_BYTES`.
    """
    names = corpus_files(paths)
    total = 0
    for name in names:  # the sizes first: nothing is read of a corpus too large
        try:
            total += os.stat(name).st_size
        except OSError:
            continue  # read_text names it
        if total > MAX_TEXT_BYTES:
            raise CorpusError(f"the corpus is more than {MAX_TEXT_BYTES:,} bytes (at {name}); "
                              f"fastrnn trains on at most that much text")
    texts = [read_text(name, use) for name in names]
    files = tuple((name, fingerprint(text), len(text)) for name, text in zip(names, texts,
                                                                             strict=True))
    return "".join(texts), files


def check_corpus(corpus, text):
    """``corpus`` as ``(path, sha256, characters)`` tuples whose lengths add up to the text's."""
    try:
        corpus = tuple((str(path), str(digest), int(length)) for path, digest, length in corpus)
    except (TypeError, ValueError):
        raise ValueError("corpus must be a sequence of (path, sha256, characters), as "
                         "fastrnn.corpus.read_corpus returns it") from None
    if corpus and sum(length for _, _, length in corpus) != len(text):
        raise ValueError(f"the corpus's files hold {sum(n for _, _, n in corpus):,} "
                         f"characters, the text {len(text):,}: give the text read_corpus "
                         f"returned with them")
    return corpus


def builtin_corpus():
    """Return the built-in corpus: the source of :data:`BUILTIN_MODULES`, concatenated.

    Returns
    -------
    str
        About 1 MB of Python source.

    Raises
    ------
    CorpusError
        If this Python ships no ``.py`` sources for those modules (some
        embedded or stripped distributions keep only byte code).
    """
    stdlib = sysconfig.get_path("stdlib")
    pieces = []
    for name in BUILTIN_MODULES:
        path = os.path.join(stdlib, name + ".py")
        try:
            with open(path, "rb") as f:
                pieces.append(f.read().decode("utf-8"))
        except (OSError, UnicodeDecodeError):
            raise CorpusError(
                f"the built-in corpus is the source code of Python's standard library, but "
                f"this Python does not ship it ({path} is missing or unreadable); "
                f"pass a UTF-8 text file to train on instead"
            ) from None
    return "\n".join(pieces)


def fingerprint(text):
    """Return the SHA-256 of a text's UTF-8 encoding, as 64 hex digits.

    A checkpoint records it so that a run is only ever resumed on its own text.

    Parameters
    ----------
    text : str
        Any text; lone surrogates are hashed as they are (``surrogatepass``).

    Returns
    -------
    str
        The lowercase hex digest, as :attr:`Checkpoint.text_sha256` holds it.
    """
    check_instance("text", text, str)
    digest = hashlib.sha256()
    for start in range(0, len(text), _BLOCK):  # UTF-8 encodes each character on its own
        digest.update(text[start:start + _BLOCK].encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _index_vector(name, data):
    """``data`` as a contiguous 1-D integer array of its own dtype (no copy when it is one)."""
    arr = integer_vector(name, data, "a 1-D array of integer indices")
    return np.ascontiguousarray(arr)


def split_validation(data, val_fraction):
    """Cut the validation data off the end of a text.

    Parameters
    ----------
    data : array_like of int, shape (n,)
        The whole text as indices.
    val_fraction : float
        In [0, 1).  The last ``round(n * val_fraction)`` characters (at least
        2, so that there is one prediction to score) become validation data;
        0 means no validation data.

    Returns
    -------
    train : ndarray, shape (n - n_val,)
    val : ndarray, shape (n_val,)
        Views of ``data`` (of its integer dtype) when it is already a
        contiguous array.
    """
    data = _index_vector("data", data)
    val_fraction = check_real("val_fraction", val_fraction, 0.0, 1.0, high_open=True)
    n = data.shape[0]
    n_val = 0 if val_fraction == 0 else max(2, int(round(n * val_fraction)))
    if n - n_val < 2:
        raise CorpusError(
            f"the text ({n} characters) is too short to keep {n_val} characters for "
            f"validation (val_fraction {val_fraction}) and still train"
        )
    return data[: n - n_val], data[n - n_val:]


def contiguous_parts(data, parts):
    """Cut ``data`` into ``parts`` contiguous rows of equal length (the rest is dropped).

    Parameters
    ----------
    data : array_like of int, shape (n,)
        The text as indices.
    parts : int
        B, at least 1 and at most n.

    Returns
    -------
    ndarray, shape (B, n // B)
        A view of ``data`` when it is a contiguous array, of its dtype.  Row b
        is ``data[b*L : (b+1)*L]`` with ``L = n // B``.

    Raises
    ------
    CorpusError
        If ``parts`` is more than n, so that a row would be empty.
    ValueError
        If ``data`` is not a 1-D integer sequence or ``parts`` is not an
        integer >= 1.
    """
    data = _index_vector("data", data)
    parts = check_int("parts", parts, 1)
    length = data.shape[0] // parts
    if length == 0:
        raise CorpusError(f"cannot cut {data.shape[0]} characters into {parts} parts")
    return data[: parts * length].reshape(int(parts), length)


class Streams:
    """``batch_size`` parallel streams over a text, read in chunks of ``seq_length``.

    Parameters
    ----------
    data : array_like of int, shape (n,)
        The training text as indices, of any integer dtype; it is not copied.
    batch_size : int
        B, the number of streams; the text is cut into B contiguous parts.
    seq_length : int
        T, the length of a chunk.
    position : int, default 0
        Where the next chunk starts in every part (a multiple of T), as saved
        from :attr:`position`.
    epoch : int, default 0
        How many times the streams have wrapped so far.

    Attributes
    ----------
    parts : ndarray, shape (B, L)
        The parts, a view of ``data``; every part must hold at least T + 1 characters.
    position : int
        Start of the next chunk within each part.
    epoch : int
        Completed passes over the parts.
    chunks_per_epoch : int
        ``(L - 1) // T``.
    """

    def __init__(self, data, batch_size, seq_length, *, position=0, epoch=0):
        for name, value in (("batch_size", batch_size), ("seq_length", seq_length)):
            check_int(name, value, 1)
        data = _index_vector("data", data)
        B, T = int(batch_size), int(seq_length)
        n = data.shape[0]
        if n // B < T + 1:
            raise CorpusError(
                f"the training text ({n} characters) is too short for {B} stream(s) of "
                f"chunks of {T}: each stream needs at least {T + 1} characters; use a "
                f"longer text, a smaller batch size or a smaller sequence length"
            )
        self.parts = contiguous_parts(data, B)  # (B, L)
        self.seq_length = T
        self.chunks_per_epoch = (self.parts.shape[1] - 1) // T
        for name, value in (("position", position), ("epoch", epoch)):
            check_int(name, value, 0)
        position = int(position)
        if position % T or position // T >= self.chunks_per_epoch:
            raise ValueError(
                f"position {position} is not the start of a chunk: it must be a multiple of "
                f"{T} below {self.chunks_per_epoch * T}"
            )
        self.position = position
        self.epoch = int(epoch)

    @property
    def batch_size(self):
        """B, the number of streams."""
        return self.parts.shape[0]

    def chunk(self):
        """Return the current chunk.

        Returns
        -------
        inputs : ndarray of int64, shape (B, T)
        targets : ndarray of int64, shape (B, T)
            ``inputs`` shifted by one character; fresh arrays.
        """
        p, T = self.position, self.seq_length
        return (self.parts[:, p:p + T].astype(np.int64, order="C"),
                self.parts[:, p + 1:p + T + 1].astype(np.int64, order="C"))

    def advance(self):
        """Move to the next chunk, wrapping to the start when a part is used up.

        Returns
        -------
        bool
            True when the streams wrapped (the caller resets the hidden state).
        """
        self.position += self.seq_length
        if self.position // self.seq_length >= self.chunks_per_epoch:
            self.position = 0
            self.epoch += 1
            return True
        return False
