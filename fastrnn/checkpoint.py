"""Checkpoints: one ``.npz`` file holding everything a training run needs to go on.

A checkpoint loads with ``numpy.load(path, allow_pickle=False)``.  Its entries:

=========================  ===============================================================
``Wxh``, ``Whh``, ...      the model's weights, one entry per parameter, under the
                           parameter names (``parameter_names`` lists them)
``format``                 ``"fastrnn-checkpoint"``; ``format_version`` its version (1)
``model_kind``             the model's registry name (``"rnn"``, ``"lstm"``, ``"gru"``);
                           ``model_args`` the constructor arguments, JSON
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
=========================  ===============================================================

Files are written atomically (:func:`atomic_write`): a crash at any moment
leaves either the old checkpoint or the new one, never a mixture.
"""

import json
import os
import tempfile
from dataclasses import dataclass, field

import numpy as np

from fastrnn._validation import check_instance
from fastrnn.vocab import Vocabulary

__all__ = ["Checkpoint", "CheckpointError", "save_checkpoint", "load_checkpoint", "atomic_write",
           "file_identity"]

FORMAT = "fastrnn-checkpoint"
FORMAT_VERSION = 1
_OPT_PREFIX = "optimizer."

# Entries besides the weights; a model parameter may not use one of these names.
_META = (
    "format", "format_version", "model_kind", "model_args", "parameter_names", "vocab",
    "config", "iteration", "epoch", "position", "hidden", "optimizer", "rng_state",
    "loss_ema", "best_val_loss", "text_sha256", "text_length", "text_source",
)  # fmt: skip


class CheckpointError(ValueError):
    """A file that is not a readable fastrnn checkpoint (damaged, truncated or foreign)."""


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


def _new_file_mode(path):
    try:
        return os.stat(path).st_mode & 0o7777  # keep the mode of the file replaced
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write(path, write):
    """Write a file so that it is replaced whole or not at all.

    ``write(f)`` fills a temporary file (opened ``"wb"``) in the same directory;
    it is flushed and fsynced, then renamed over ``path`` with :func:`os.replace`.
    On any error the temporary file is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or os.PathLike
    write : callable
        Takes the open binary file object.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp, _new_file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable; not possible on every platform
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _json(value):
    return np.array(json.dumps(value, sort_keys=True, allow_nan=True))


def save_checkpoint(path, checkpoint):
    """Write a checkpoint atomically (see :func:`atomic_write`).

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
        arrays[name] = np.asarray(value, dtype=np.float64)
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
        hidden=np.asarray(checkpoint.hidden, dtype=np.float64),
        optimizer=np.array(checkpoint.optimizer),
        rng_state=_json(checkpoint.rng_state),
        loss_ema=np.array(checkpoint.loss_ema, dtype=np.float64),
        best_val_loss=np.array(checkpoint.best_val_loss, dtype=np.float64),
        text_sha256=np.array(checkpoint.text_sha256),
        text_length=np.array(checkpoint.text_length, dtype=np.int64),
        text_source=np.array(checkpoint.text_source),
    )
    atomic_write(path, lambda f: np.savez(f, **arrays))


def file_identity(path):
    """What tells one version of a file from another (None when it cannot be read).

    An atomic save (:func:`atomic_write`) makes a new inode, so two versions
    of a checkpoint never share an identity even when their sizes and times do.

    Parameters
    ----------
    path : str or os.PathLike
        The file; a missing or unreadable one has no identity.

    Returns
    -------
    tuple or None
        ``(st_dev, st_ino, st_mtime_ns, st_size)``.
    """
    try:
        return _identity(os.stat(path))
    except OSError:
        return None


def _identity(st):
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


def _read_all(path):
    """Every entry of an .npz file, read eagerly so that any damage shows up here.

    Returns the entries and the identity of the very version read.
    """
    with open(path, "rb") as f:  # a missing file or a directory raises OSError here
        identity = _identity(os.fstat(f.fileno()))
        try:
            loaded = np.load(f, allow_pickle=False)
        except Exception:
            # numpy reports a file that is neither .npy nor .npz as "pickled
            # data" (ValueError), a cut-off archive as BadZipFile, and so on:
            # to the caller they all mean the same.
            raise CheckpointError(
                f"{path} is not a fastrnn checkpoint (not an .npz file, or a damaged or "
                f"truncated one)"
            ) from None
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise CheckpointError(f"{path} holds a single .npy array, not a fastrnn checkpoint")
        try:
            with loaded:
                return {name: loaded[name] for name in loaded.files}, identity
        except Exception:  # bad CRC, truncated member, bad header: all damage
            raise CheckpointError(
                f"{path} is a damaged or truncated .npz file, not a readable checkpoint"
            ) from None


class _Reader:
    """Typed access to the entries of a loaded checkpoint, with clear errors."""

    def __init__(self, path, entries):
        self.path = path
        self.entries = entries

    def fail(self, what):
        raise CheckpointError(f"{self.path} is a damaged fastrnn checkpoint: {what}")

    def get(self, name):
        if name not in self.entries:
            self.fail(f"entry {name!r} is missing")
        return self.entries[name]

    def scalar(self, name, kinds, what, low=None):
        """The 0-d entry ``name`` of a dtype kind in ``kinds``, at least ``low`` when given."""
        value = self.get(name)
        if (value.ndim != 0 or value.dtype.kind not in kinds
                or (low is not None and int(value) < low)):
            self.fail(f"entry {name!r} is not {what}")
        return value

    def text(self, name):
        return str(self.scalar(name, "U", "a string"))

    def integer(self, name, low=0):
        return int(self.scalar(name, "iu", f"an integer >= {low}", low))

    def real(self, name):
        return float(self.scalar(name, "f", "a number"))

    def json(self, name, kind=dict):
        try:
            value = json.loads(self.text(name))
        except json.JSONDecodeError:
            self.fail(f"entry {name!r} is not valid JSON")
        if not isinstance(value, kind):
            self.fail(f"entry {name!r} is not a JSON {kind.__name__}")
        return value

    def floats(self, name):
        value = self.get(name)
        if value.dtype.kind != "f":
            self.fail(f"entry {name!r} is not a float array")
        return np.ascontiguousarray(value, dtype=np.float64)


# How each entry that is one value is read, in the order they are checked.
_SCALAR_ENTRIES = {
    "model_kind": _Reader.text,
    "model_args": _Reader.json,
    "config": _Reader.json,
    "iteration": _Reader.integer,
    "epoch": _Reader.integer,
    "position": _Reader.integer,
    "optimizer": _Reader.text,
    "rng_state": _Reader.json,
    "loss_ema": _Reader.real,
    "best_val_loss": _Reader.real,
    "text_sha256": _Reader.text,
    "text_length": _Reader.integer,
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
    entries, identity = _read_all(path)
    r = _Reader(path, entries)
    fmt = entries.get("format")
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
    parameters = {str(name): r.floats(str(name)) for name in names}
    try:
        vocab = Vocabulary.from_code_points(r.get("vocab"))
    except ValueError as error:
        r.fail(f"bad vocabulary ({error})")
    optimizer_state = {
        name[len(_OPT_PREFIX):]: np.array(value)
        for name, value in entries.items()
        if name.startswith(_OPT_PREFIX)
    }
    hidden = r.floats("hidden")
    if hidden.ndim < 2:
        r.fail(f"entry 'hidden' has shape {hidden.shape}, expected (B, H) or a layered state")
    checkpoint = Checkpoint(
        parameters=parameters, vocab=vocab, hidden=hidden, optimizer_state=optimizer_state,
        **{name: read(r, name) for name, read in _SCALAR_ENTRIES.items()},
    )
    # Which file, and which version of it, this is: a trainer resumed from it
    # may overwrite that version and no other (see Trainer.from_checkpoint).
    checkpoint._origin = (path, identity)
    return checkpoint
