"""Models from checkpoints: the model a checkpoint holds, checked before it is built.

:func:`model_from_checkpoint` builds the model a checkpoint holds, its weights
checked against the file's own description before anything large is
allocated; the trainer resumes through it too, with :func:`check_fits` (the
model, state and optimizer against the run's config) and
:func:`check_val_text` (the validation text against the run's).
:func:`load_model` reads a checkpoint file (or a run directory's) into a
model and its vocabulary.
"""

import dataclasses
import itertools
from importlib import resources

import numpy as np

from fastrnn._threads import get_num_threads
from fastrnn._validation import check_instance
from fastrnn.corpus import fingerprint
from fastrnn.model import MODELS
from fastrnn.training.checkpoint import CheckpointError, load_checkpoint
from fastrnn.training.rundir import resolve_checkpoint
from fastrnn.vocab import Vocabulary

__all__ = ["PRETRAINED", "build_model", "model_from_checkpoint", "check_fits", "check_val_text",
           "load_model", "load_source", "transplant", "model_args_of", "start_from",
           "vocabulary_of",
           "resumed_vocabulary"]


def build_model(kind, args, seed=0):
    """A new model of the registry name ``kind`` (see :data:`fastrnn.model.MODELS`).

    An unknown kind, or arguments the model refuses, raise CheckpointError:
    both come from a checkpoint's description of its model.

    Parameters
    ----------
    kind : str
    args : dict
        The constructor's keyword arguments, but ``seed``.
    seed : int, default 0
    """
    cls = MODELS.get(kind)
    if cls is None:
        raise CheckpointError(f"unknown model kind {kind!r}; this fastrnn knows {sorted(MODELS)}")
    get_num_threads()  # a bad FASTRNN_NUM_THREADS is its own error, not the checkpoint's
    try:
        return cls(**args, seed=seed)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"bad arguments for a {kind} model: {error}") from None


def model_from_checkpoint(ckpt, where):
    """Build the model stored in a checkpoint, its weights checked and loaded.

    Parameters
    ----------
    ckpt : Checkpoint
        A checkpoint as :func:`~fastrnn.training.checkpoint.load_checkpoint` returns it.
    where : str
        What to call the checkpoint in error messages (its path).

    Returns
    -------
    RNN or another class of :data:`~fastrnn.model.MODELS`

    Raises
    ------
    CheckpointError
        If the weights do not fit the model the checkpoint describes.
    """
    args, vocab_size = ckpt.model_args, ckpt.vocab.size
    for dim in ("input_dim", "output_dim"):
        if args.get(dim) != vocab_size:
            raise CheckpointError(f"{where}: the model's {dim} is {args.get(dim)!r} but the "
                                  f"vocabulary has {vocab_size} characters")
    # Every model ends in the output layer Why (O, H): check the size before
    # allocating anything, so a damaged hidden_dim cannot ask for terabytes.
    why = ckpt.parameters.get("Why")
    if why is None or why.shape != (vocab_size, args.get("hidden_dim")):
        raise CheckpointError(f"{where}: the output weights Why do not match hidden_dim "
                              f"{args.get('hidden_dim')!r} and {vocab_size} characters")
    layers = args.get("num_layers", 1)
    # Every layer holds at least one stored array: a damaged num_layers must not
    # make a model of a billion layers before the names are compared.
    if type(layers) is not int or not 1 <= layers <= len(ckpt.parameters):
        raise CheckpointError(f"{where}: num_layers {layers!r} does not match the "
                              f"{len(ckpt.parameters)} stored weights")
    for name, value in ckpt.parameters.items():
        if not np.all(np.isfinite(value)):
            raise CheckpointError(f"{where}: weight {name} holds NaN or infinite values")
    model = build_model(ckpt.model_kind, args)
    params = model.parameters()
    if list(ckpt.parameters) != list(params):
        stored, wanted = list(ckpt.parameters), list(params)
        first = next((a, b) for a, b in itertools.zip_longest(stored, wanted) if a != b)
        raise CheckpointError(
            f"{where}: the file holds {len(stored)} weights, a {ckpt.model_kind} model "
            f"{len(wanted)}; the first difference: {first[0]!r} where {first[1]!r} belongs"
        )
    for name, value in ckpt.parameters.items():
        if value.shape != params[name].shape:
            raise CheckpointError(
                f"{where}: weight {name} has shape {value.shape}, expected {params[name].shape}"
            )
        with np.errstate(over="ignore"):
            cast = value.astype(model.dtype)  # a float64 1e39 is inf in float32
        if not np.all(np.isfinite(cast)):  # checked again as the model computes
            raise CheckpointError(f"{where}: weight {name} holds values beyond the range of "
                                  f"the model's {model.dtype.name}")
        params[name][...] = cast
    return model


def load_model(path):
    """Load the model and vocabulary of a checkpoint, ready to sample from.

    The weights are checked against the checkpoint's own description of its
    model first (see :func:`model_from_checkpoint`).

    Parameters
    ----------
    path : str or os.PathLike
        A checkpoint file, or a training directory (its ``checkpoint.npz``).

    Returns
    -------
    model : RNN (or another class of :data:`MODELS`)
    vocab : Vocabulary

    Raises
    ------
    OSError
        If the file cannot be read.
    CheckpointError
        If it is not a valid checkpoint.
    """
    path = resolve_checkpoint(path)
    ckpt = load_checkpoint(path)
    return model_from_checkpoint(ckpt, path), ckpt.vocab


def check_fits(ckpt, config, model, where):
    """Refuse a checkpoint whose model, state or optimizer does not fit its own config.

    ``config`` is the checkpoint's (as resumed), ``model`` the one
    :func:`model_from_checkpoint` built from it, ``where`` its name in messages.
    """
    if ckpt.model_kind != config.model:
        raise CheckpointError(f"{where}: the file holds a {ckpt.model_kind} model, its config "
                              f"says {config.model!r}")
    if ckpt.model_args.get("hidden_dim") != config.hidden_size:
        raise CheckpointError(f"{where}: the model's hidden size does not match its config")
    if ckpt.model_args.get("num_layers", 1) != config.num_layers:
        raise CheckpointError(f"{where}: the model's number of layers does not match its "
                              f"config")
    if model.dtype.name != config.dtype:
        raise CheckpointError(f"{where}: the model's dtype {model.dtype.name} does not match "
                              f"its config's {config.dtype}")
    expected = model.pack_state(model.zero_state(config.batch_size)).shape
    if ckpt.hidden.shape != expected:
        raise CheckpointError(
            f"{where}: the hidden state has shape {ckpt.hidden.shape}, expected {expected}"
        )
    if not np.all(np.isfinite(ckpt.hidden)):
        raise CheckpointError(f"{where}: the hidden state holds NaN or infinite values")
    if ckpt.optimizer != config.optimizer:
        raise CheckpointError(f"{where}: optimizer state of {ckpt.optimizer!r}, "
                              f"config says {config.optimizer!r}")


def check_val_text(ckpt, val_text):
    """Refuse a resume without the run's validation text, or with one it does not have."""
    if not ckpt.validation:
        if val_text is not None:
            raise ValueError("this run holds out a fraction of its text for validation; it "
                             "takes no val_text")
        return
    where, digest, length = ckpt.validation
    if val_text is None:
        raise ValueError(f"this run validates on {where} ({length:,} characters): give its "
                         f"val_text")
    check_instance("val_text", val_text, str)
    if fingerprint(val_text) != digest:
        raise ValueError(f"this validation text is not the run's ({where}, {length:,} "
                         f"characters, sha256 {digest[:12]}...); this one has "
                         f"{len(val_text):,} characters")


# The name that stands for the bundled model wherever a model is taken, and its file.
PRETRAINED = "pretrained"
_PRETRAINED_FILE = "lstm.npz"


def load_source(source):
    """The model and vocabulary a run may start from: a run, a checkpoint, or :data:`PRETRAINED`.

    Parameters
    ----------
    source : str or os.PathLike
        A run directory (its ``checkpoint.npz``), a checkpoint file, or
        ``"pretrained"``, the model bundled in :mod:`fastrnn.pretrained`.

    Returns
    -------
    model, vocab
    """
    if isinstance(source, str) and source == PRETRAINED:
        bundled = resources.files("fastrnn.pretrained") / _PRETRAINED_FILE
        with resources.as_file(bundled) as path:
            return load_model(path)
    return load_model(source)


def transplant(source, source_vocab, model, vocab):
    """Copy ``source``'s weights into ``model``, character by character; return ``model``.

    ``model`` has ``source``'s architecture and a vocabulary ``vocab`` that
    holds every character of ``source_vocab``.  Weights that do not depend on
    the vocabulary are copied whole; the input weights' columns and the
    output weights' rows of each character ``source`` knows go to that
    character's place in ``vocab``, and those of new characters keep
    ``model``'s own (fresh) values.
    """
    places = vocab.encode(source_vocab.chars)
    wanted = model.parameters()
    for name, value in source.parameters().items():
        target = wanted[name]
        if value.shape == target.shape:  # independent of V, or V unchanged (the same set)
            target[...] = value
            continue
        axes = [a for a in range(value.ndim) if value.shape[a] != target.shape[a]]
        if len(axes) != 1 or value.shape[axes[0]] != source_vocab.size:
            raise ValueError(f"weight {name} of shape {value.shape} does not fit {target.shape}")
        index = [slice(None)] * value.ndim
        index[axes[0]] = places
        target[tuple(index)] = value
    return model


def vocabulary_of(*texts):
    """The vocabulary of several texts together, each scanned once and none copied."""
    return Vocabulary.from_text("".join(Vocabulary.from_text(text).chars for text in texts))


def model_args_of(vocab_size, config):
    """The constructor arguments (but ``seed``) of a new model of ``config`` over a vocabulary."""
    args = {"input_dim": vocab_size, "hidden_dim": config.hidden_size, "output_dim": vocab_size}
    if config.model != "rnn":
        args["num_layers"] = config.num_layers
    if config.dtype != "float64":  # a float64 checkpoint reads as it always has
        args["dtype"] = config.dtype
    return args


def start_from(config, vocab):
    """A new run's start from ``config.init_from``: ``(config, vocab, model, model_args)``.

    The architecture is the source model's: an option of
    :data:`~fastrnn.training.config.ARCHITECTURE_OPTIONS` left at its default
    takes the source's value, another value is refused.  The vocabulary is
    ``vocab``'s characters and the source's together, and the model is new
    (seeded by ``config.seed``) with the source's weights for every character
    the source knows (:func:`transplant`).
    """
    source, source_vocab = load_source(config.init_from)
    kind = next(name for name, cls in MODELS.items() if type(source) is cls)
    theirs = {"model": kind, "hidden_size": source.hidden_dim,
              "num_layers": source.num_layers, "dtype": source.dtype.name}
    defaults = type(config)()
    for name, value in theirs.items():
        mine = getattr(config, name)
        if mine != value and mine != getattr(defaults, name):
            raise ValueError(f"{name} is {mine!r} but the model of init_from "
                             f"{config.init_from!r} has {value!r}: a run started from it "
                             f"keeps its architecture")
    config = dataclasses.replace(config, **theirs)
    merged = vocabulary_of(vocab.chars, source_vocab.chars)
    args = model_args_of(merged.size, config)
    model = build_model(config.model, args, seed=config.seed)
    return config, merged, transplant(source, source_vocab, model, merged), args


def resumed_vocabulary(ckpt, config, text, val_text, where):
    """The vocabulary of a resumed run, checked against its texts (see :func:`check_val_text`).

    It is the texts' own, or, for a run started from another model
    (``config.init_from``), the checkpoint's, which holds the source's
    characters too and must hold every character of the texts.
    """
    check_val_text(ckpt, val_text)
    vocab = vocabulary_of(text) if val_text is None else vocabulary_of(text, val_text)
    if config.init_from is None:
        if vocab != ckpt.vocab:
            raise CheckpointError(f"{where}: the vocabulary does not match its training text")
        return vocab
    if ckpt.vocab.unknown(vocab.chars):
        raise CheckpointError(f"{where}: the vocabulary lacks characters of its training text")
    return ckpt.vocab
