"""Checkpoints: one ``.npz`` file holding everything a training run needs to go on.

A checkpoint loads with ``numpy.load(path, allow_pickle=False)``.  Its entries:

=========================  ===============================================================
``Wxh``, ``Whh``, ...      the model's weights, one entry per parameter, under the
                           parameter names (``parameter_names`` lists them)
``format``                 ``"fastrnn-checkpoint"``; ``format_version`` its version (1)
``model_kind``             the model's registry name (``"rnn"``, ``"lstm"``, ``"gru"``);
                           ``model_args`` the constructor arguments, JSON (with
                           ``"dtype": "float32"`` for a float32 model; none for
                           float64); the weights, ``hidden`` and the optimizer
                           state are stored in the model's dtype
``vocab``                  the vocabulary as int64 code points, in index order
``config``                 the training configuration, JSON
``iteration``              optimizer steps taken; ``epoch`` and ``position`` where the
                           streams are (see :class:`fastrnn.corpus.Streams`)
``hidden``                 the carried state as one array (the model's ``pack_state``):
                           (B, H) for an rnn, (L, B, H) for a gru, (2, L, B, H) for an
                           lstm (h, then c)
``optimizer``              the optimizer's name; ``optimizer.<name>`` its state arrays
``rng_state``              the state of the trainer's random generator, JSON
``loss_ema``               moving average of the training loss per character (nats),
                           before bias correction
``best_val_loss``          lowest validation loss per character so far (NaN: none yet)
``text_sha256``            fingerprint of the training text; ``text_length`` its length
                           in characters; ``text_source`` where it came from
``seconds``                seconds the run has trained, over all its resumes (a file
                           without it reads as 0)
``corpus``                 the files of the training text, JSON ``[[path, sha256,
                           characters], ...]`` in order (optional: a text given as a
                           string has none)
``validation``             the separate validation text, JSON ``[source, sha256,
                           characters]`` (optional: none when a fraction of the
                           training text is held out)
=========================  ===============================================================

Files are written atomically (:func:`fastrnn._files.atomic_write`): a crash at any moment
leaves either the old checkpoint or the new one, never a mixture.
"""

import json
import math
import os
import re
import zipfile
from dataclasses import dataclass, field

import numpy as np

from fastrnn._files import atomic_write, open_regular, stat_identity
from fastrnn._limits import (
    MAX_CHECKPOINT_BYTES,
    MAX_JSON_DEPTH,
    MAX_META_BYTES,
    MAX_NPY_HEADER,
    MAX_OPTIMIZER_ARRAYS,
    MAX_PARAMETERS,
    MAX_STATE_VALUES,
    MAX_STEPS,
    MAX_TEXT_BYTES,
    MAX_VOCAB_BYTES,
)
from fastrnn._validation import check_instance
from fastrnn.training.errors import CheckpointError
from fastrnn.vocab import Vocabulary

__all__ = ["Checkpoint", "CheckpointError", "save_checkpoint", "load_checkpoint"]

FORMAT = "fastrnn-checkpoint"
FORMAT_VERSION = 1
_OPT_PREFIX = "optimizer."

# Entries besides the weights; a model parameter may not use one of these names.  What is
# read is bounded (fastrnn._limits), each bound checked before anything is inflated.
_META = (
    "format", "format_version", "model_kind", "model_args", "parameter_names", "vocab",
    "config", "iteration", "epoch", "position", "hidden", "optimizer", "rng_state",
    "loss_ema", "best_val_loss", "text_sha256", "text_length", "text_source", "seconds",
    "corpus", "validation",
)  # fmt: skip


@dataclass
class Checkpoint:
    """The contents of a checkpoint file.

    Attributes
    ----------
    model_kind : str
        The model's registry name, e.g. ``"rnn"``.
    model_args : dict
        Keyword arguments of the model's constructor (``input_dim``, ...).
    parameters : dict[str, ndarray]
        The weights by parameter name, in the model's order.
    vocab : Vocabulary
    config : dict
        The training configuration (see :class:`fastrnn.training.TrainingConfig`).
    iteration : int
        Optimizer steps taken.
    epoch, position : int
        Where the training streams are.
    hidden : ndarray
        The state carried into the next chunk, as one array: (B, H) for an
        rnn, (L, B, H) for a gru, (2, L, B, H) for an lstm.
    optimizer : str
        The optimizer's name.
    optimizer_state : dict[str, ndarray]
        Its state arrays by name.
    rng_state : dict
        ``numpy.random.Generator.bit_generator.state`` of the trainer's generator.
    loss_ema : float
        Exponential moving average of the training loss per character (nats),
        before bias correction.
    best_val_loss : float
        Lowest validation loss per character so far; NaN when there is none.
    text_sha256 : str
        :func:`fastrnn.corpus.fingerprint` of the training text.
    text_length : int
        Its length in characters.
    text_source : str
        Where it came from: a file path, or ``"<builtin>"``.
    seconds : float
        Seconds the run has trained (:attr:`fastrnn.Trainer.seconds`), over
        all its resumes up to this checkpoint.
    corpus : tuple of (str, str, int)
        The files the text was read from (:func:`fastrnn.corpus.read_corpus`):
        each one's path, SHA-256 and length in characters; empty when the text
        was given as a string.
    validation : tuple (str, str, int)
        The separate validation text's source, SHA-256 and length in
        characters; empty when the run holds out ``val_fraction`` of its text.
    origin : tuple (str, object) or None
        The file it was read from and which version of that file, set by
        :func:`load_checkpoint`; None for one built in memory.  A trainer
        resumed from it may overwrite that version of the file and no other
        (:meth:`fastrnn.training.Trainer.from_checkpoint`).  Not written to a
        file, not compared; :func:`dataclasses.replace` keeps it.
    """

    model_kind: str
    model_args: dict
    parameters: dict
    vocab: Vocabulary
    config: dict
    iteration: int
    epoch: int
    position: int
    hidden: np.ndarray
    optimizer: str
    optimizer_state: dict = field(default_factory=dict)
    rng_state: dict = field(default_factory=dict)
    loss_ema: float = 0.0
    best_val_loss: float = float("nan")
    text_sha256: str = ""
    text_length: int = 0
    text_source: str = ""
    seconds: float = 0.0
    corpus: tuple = ()
    validation: tuple = ()
    origin: tuple | None = field(default=None, compare=False, repr=False)


def _json(value):
    return np.array(json.dumps(value, sort_keys=True, allow_nan=True))


def _float_entry(value):
    """An array entry in its own dtype when that is float32 or float64, else float64."""
    arr = np.asarray(value)
    return arr if arr.dtype in (np.float32, np.float64) else arr.astype(np.float64)


def save_checkpoint(path, checkpoint):
    """Write a checkpoint atomically (see :func:`fastrnn._files.atomic_write`).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file to write (replaced if it exists).
    checkpoint : Checkpoint
    """
    check_instance("checkpoint", checkpoint, Checkpoint)
    arrays = {}
    for name, value in checkpoint.parameters.items():
        if name in _META or name.startswith(_OPT_PREFIX):
            raise ValueError(f"parameter name {name!r} clashes with a checkpoint entry")
        arrays[name] = _float_entry(value)
    for name, value in checkpoint.optimizer_state.items():
        arrays[_OPT_PREFIX + name] = np.asarray(value)
    arrays.update(
        format=np.array(FORMAT),
        format_version=np.array(FORMAT_VERSION, dtype=np.int64),
        model_kind=np.array(checkpoint.model_kind),
        model_args=_json(checkpoint.model_args),
        parameter_names=np.array(list(checkpoint.parameters)),
        vocab=checkpoint.vocab.to_code_points(),
        config=_json(checkpoint.config),
        iteration=np.array(checkpoint.iteration, dtype=np.int64),
        epoch=np.array(checkpoint.epoch, dtype=np.int64),
        position=np.array(checkpoint.position, dtype=np.int64),
        hidden=_float_entry(checkpoint.hidden),
        optimizer=np.array(checkpoint.optimizer),
        rng_state=_json(checkpoint.rng_state),
        loss_ema=np.array(checkpoint.loss_ema, dtype=np.float64),
        best_val_loss=np.array(checkpoint.best_val_loss, dtype=np.float64),
        text_sha256=np.array(checkpoint.text_sha256),
        text_length=np.array(checkpoint.text_length, dtype=np.int64),
        text_source=np.array(checkpoint.text_source),
        seconds=np.array(checkpoint.seconds, dtype=np.float64),
        **({"corpus": _json([list(entry) for entry in checkpoint.corpus])}
           if checkpoint.corpus else {}),
        **({"validation": _json(list(checkpoint.validation))} if checkpoint.validation else {}),
    )
    atomic_write(path, lambda f: np.savez(f, **arrays))


def _open_archive(path):
    """The open checkpoint file, its zip directory and the identity of the version opened."""
    f, _ = open_regular(path, CheckpointError, MAX_CHECKPOINT_BYTES, "a checkpoint")
    try:
        identity = stat_identity(os.fstat(f.fileno()))
        try:
            return f, zipfile.ZipFile(f), identity
        except Exception:
            f.seek(0)
            if f.read(6) == b"\x93NUMPY":
                raise CheckpointError(
                    f"{path} holds a single .npy array, not a fastrnn checkpoint") from None
            # Not a zip archive, or a cut-off one: to the caller they all mean the same.
            raise CheckpointError(
                f"{path} is not a fastrnn checkpoint (not an .npz file, or a damaged or "
                f"truncated one)"
            ) from None
    except BaseException:
        f.close()
        raise


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}


def _read_member(archive, info, max_bytes, fail):
    """One ``.npy`` member as an array, never inflating more than ``max_bytes`` of data.

    The size the archive declares is checked before the member is opened, the
    size its header declares before its data is read; the data is read into
    an array of exactly that size, and the member must end there (which also
    checks its CRC).
    """
    name = info.filename[:-4]
    if info.file_size > max_bytes + MAX_NPY_HEADER:
        fail(f"entry {name!r} is {info.file_size:,} bytes, more than the {max_bytes:,} it "
             f"may hold")
    with archive.open(info) as member:
        reader = _HEADER_READERS.get(np.lib.format.read_magic(member))
        if reader is None:
            fail(f"entry {name!r} is not a .npy array of format 1.0 or 2.0")
        shape, fortran_order, dtype = reader(member)
        if dtype.hasobject:
            fail(f"entry {name!r} holds Python objects, which fastrnn does not load")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > max_bytes:
            fail(f"entry {name!r} declares {nbytes:,} bytes of data, more than the "
                 f"{max_bytes:,} it may hold")
        buf = bytearray(nbytes)
        if member.readinto(buf) != nbytes or member.read(1):
            fail(f"entry {name!r} is not as long as its header says")
    arr = np.frombuffer(buf, dtype=dtype) if nbytes else np.empty(0, dtype=dtype)
    return arr.reshape(shape, order="F" if fortran_order else "C")


def _json_depth(text):
    """How deeply the arrays and objects of a JSON text nest (strings skipped)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', "", text).encode("utf-8", "surrogatepass")
    codes = np.frombuffer(bare, dtype=np.uint8)
    steps = np.isin(codes, (ord("["), ord("{"))).astype(np.int64)
    steps -= np.isin(codes, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


class _Reader:
    """Typed access to the entries of a checkpoint, each read when first asked for.

    Only the entries asked for are ever inflated, each against a size bound.
    """

    def __init__(self, path, archive):
        self.path = path
        self.archive = archive
        self.members = {info.filename[:-4]: info for info in archive.infolist()
                        if info.filename.endswith(".npy")}
        self.entries = {}

    def fail(self, what):
        raise CheckpointError(f"{self.path} is a damaged fastrnn checkpoint: {what}")

    def has(self, name):
        return name in self.members

    def get(self, name, max_bytes=MAX_META_BYTES):
        if name not in self.entries:
            if name not in self.members:
                self.fail(f"entry {name!r} is missing")
            try:
                self.entries[name] = _read_member(self.archive, self.members[name], max_bytes,
                                                  self.fail)
            except CheckpointError:
                raise
            except Exception:  # bad CRC, truncated member, bad header: all damage
                raise CheckpointError(
                    f"{self.path} is a damaged or truncated .npz file, not a readable checkpoint"
                ) from None
        return self.entries[name]

    def scalar(self, name, kinds, what, low=None, high=None):
        """The 0-d entry ``name`` of a dtype kind in ``kinds``, in ``[low, high]`` when given."""
        value = self.get(name)
        if (value.ndim != 0 or value.dtype.kind not in kinds
                or (low is not None and int(value) < low)
                or (high is not None and int(value) > high)):
            self.fail(f"entry {name!r} is not {what}")
        return value

    def text(self, name):
        return str(self.scalar(name, "U", "a string"))

    def integer(self, name, low=0, high=None):
        what = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high:,}]"
        return int(self.scalar(name, "iu", what, low, high))

    def step_count(self, name):
        return self.integer(name, 0, MAX_STEPS)

    def text_offset(self, name):
        return self.integer(name, 0, MAX_TEXT_BYTES)

    def real(self, name):
        return float(self.scalar(name, "f", "a number"))

    def json(self, name, kind=dict):
        text = self.text(name)
        if _json_depth(text) > MAX_JSON_DEPTH:
            self.fail(f"entry {name!r} nests deeper than {MAX_JSON_DEPTH} levels")
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):  # bad syntax, a number of too many digits
            self.fail(f"entry {name!r} is not valid JSON")
        if not isinstance(value, kind):
            self.fail(f"entry {name!r} is not a JSON {kind.__name__}")
        return value

    def floats(self, name, max_bytes):
        value = self.get(name, max_bytes)
        if value.dtype.kind != "f":
            self.fail(f"entry {name!r} is not a float array")
        return np.ascontiguousarray(value, dtype=np.float64)


# How each entry that is one value is read, in the order they are checked.
_SCALAR_ENTRIES = {
    "model_kind": _Reader.text,
    "model_args": _Reader.json,
    "config": _Reader.json,
    "iteration": _Reader.step_count,
    "epoch": _Reader.step_count,
    "position": _Reader.text_offset,
    "optimizer": _Reader.text,
    "rng_state": _Reader.json,
    "loss_ema": _Reader.real,
    "best_val_loss": _Reader.real,
    "text_sha256": _Reader.text,
    "text_length": _Reader.text_offset,
    "text_source": _Reader.text,
}


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file itself (a training directory is not looked into).

    Returns
    -------
    Checkpoint
        It remembers the file and the version of it read:
        :meth:`fastrnn.training.Trainer.from_checkpoint` continues that file
        as it would from its path.

    Raises
    ------
    OSError
        If the file cannot be opened (missing, a directory, no permission).
    CheckpointError
        If it is damaged, truncated, of another format or of a newer version.
    """
    path = os.fspath(path)
    f, archive, identity = _open_archive(path)
    with f, archive:
        checkpoint = _read_checkpoint(_Reader(path, archive))
    # Which file, and which version of it, this is: a trainer resumed from it
    # may overwrite that version and no other (see Trainer.from_checkpoint).
    checkpoint.origin = (path, identity)
    return checkpoint


def _read_checkpoint(r):
    """The :class:`Checkpoint` a reader's entries make, every entry checked."""
    path = r.path
    fmt = r.get("format") if r.has("format") else None
    if fmt is None or fmt.ndim != 0 or fmt.dtype.kind != "U" or str(fmt) != FORMAT:
        raise CheckpointError(f"{path} is not a fastrnn checkpoint (it has no fastrnn format tag)")
    version = r.integer("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} is a fastrnn checkpoint of format version {version}; this fastrnn reads "
            f"version {FORMAT_VERSION}"
        )
    names = r.get("parameter_names")
    if names.ndim != 1 or names.dtype.kind != "U" or names.size == 0:
        r.fail("entry 'parameter_names' is not a list of names")
    names = [str(name) for name in names]
    # The parameters together are no larger than a model may be: checked on the
    # sizes the archive declares, before any of them is read.
    declared = 0
    for name in names:
        if not r.has(name):
            r.fail(f"entry {name!r} is missing")
        declared += max(r.members[name].file_size - MAX_NPY_HEADER, 0)
    if declared > 8 * MAX_PARAMETERS:
        r.fail(f"the parameters declare {declared:,} bytes, more than a model of "
               f"{MAX_PARAMETERS:,} parameters holds")
    parameters = {name: r.floats(name, 8 * MAX_PARAMETERS) for name in names}
    count = sum(value.size for value in parameters.values())
    try:
        vocab = Vocabulary.from_code_points(r.get("vocab", MAX_VOCAB_BYTES))
    except ValueError as error:
        r.fail(f"bad vocabulary ({error})")
    state_names = [name for name in r.members if name.startswith(_OPT_PREFIX)]
    if len(state_names) > MAX_OPTIMIZER_ARRAYS:
        r.fail(f"it has {len(state_names)} optimizer state entries, more than any optimizer "
               f"keeps")
    optimizer_state = {  # each a vector of one value per parameter, or a step count
        name[len(_OPT_PREFIX):]: np.array(r.get(name, max(8 * count, MAX_META_BYTES)))
        for name in state_names
    }
    hidden = r.floats("hidden", 8 * MAX_STATE_VALUES)
    if hidden.ndim < 2:
        r.fail(f"entry 'hidden' has shape {hidden.shape}, expected (B, H) or a layered state")
    seconds = r.real("seconds") if r.has("seconds") else 0.0  # older files: not recorded
    if not 0.0 <= seconds < math.inf:
        r.fail(f"entry 'seconds' is {seconds}, not a time spent")
    return Checkpoint(
        parameters=parameters, vocab=vocab, hidden=hidden, optimizer_state=optimizer_state,
        seconds=seconds, corpus=_read_corpus(r) if r.has("corpus") else (),
        validation=_read_validation(r) if r.has("validation") else (),
        **{name: read(r, name) for name, read in _SCALAR_ENTRIES.items()},
    )


def _text_record(entry):
    """Whether a JSON value is ``[source, sha256, characters]`` of a text."""
    return (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)
            and isinstance(entry[1], str) and re.fullmatch(r"[0-9a-f]{64}", entry[1]) is not None
            and type(entry[2]) is int and 0 < entry[2] <= MAX_TEXT_BYTES)


def _read_corpus(r):
    """The ``corpus`` entry: ``(path, sha256, characters)`` of each file, checked."""
    entries = r.json("corpus", list)
    if not all(_text_record(entry) for entry in entries):
        r.fail("entry 'corpus' is not a list of [path, sha256, characters]")
    return tuple(tuple(entry) for entry in entries)


def _read_validation(r):
    """The ``validation`` entry: ``(source, sha256, characters)``, checked."""
    entry = r.json("validation", list)
    if not _text_record(entry):
        r.fail("entry 'validation' is not [source, sha256, characters]")
    return tuple(entry)
