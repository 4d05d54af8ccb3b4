"""Training a character-level model on a text: the Python API under ``fastrnn train``.

The pieces, from small to large:

- :class:`TrainingConfig` -- every option of a run, validated;
- :class:`Trainer` -- one run: the model, its optimizer state, the streams over
  the text, the carried hidden state; :meth:`Trainer.step` takes one optimizer
  step, :meth:`Trainer.run` trains to ``config.iterations`` while writing
  checkpoints, ``history.csv`` and ``loss.png`` into a directory;
- :func:`load_model` and :func:`generate` -- sampling from a checkpoint.

Truncated BPTT as char-rnn does it: the training text (the part before the
validation split) is cut into ``batch_size`` contiguous parts, read in chunks of
``seq_length`` with the hidden state carried from chunk to chunk (see
:class:`fastrnn.corpus.Streams`).  One iteration is one optimizer step on one
chunk of every stream: gradients of the loss (summed over time, averaged over
streams), element-wise clipping to ``[-clip, clip]``, then the update.  All
reported losses are per character, in nats; bits per character are nats / ln 2.

Models are used through their public methods only and are found by name in
:data:`MODELS`, so any model with the same interface can be trained and
checkpointed.
"""

import csv
import io
import itertools
import math
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from fastrnn._kernels import optimizers as _opt
from fastrnn._validation import (
    check_int,
    check_num_chars,
    check_real,
    check_seed,
    check_temperature,
)
from fastrnn.checkpoint import (
    Checkpoint,
    CheckpointError,
    atomic_write,
    load_checkpoint,
    save_checkpoint,
)
from fastrnn.corpus import Streams, contiguous_parts, fingerprint, split_validation
from fastrnn.model import MODELS
from fastrnn.vocab import Vocabulary

__all__ = [
    "MODELS",
    "OPTIMIZERS",
    "DEFAULT_ITERATIONS",
    "TrainingConfig",
    "Trainer",
    "RunSummary",
    "TrainingDiverged",
    "TrainingInterrupted",
    "load_model",
    "generate",
    "CHECKPOINT_NAME",
    "BEST_NAME",
    "HISTORY_NAME",
    "PLOT_NAME",
]

OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam")
_DEFAULT_LEARNING_RATES = {"sgd": 0.1, "adagrad": 0.1, "rmsprop": 2e-3, "adam": 2e-3}

DEFAULT_ITERATIONS = 500_000
"""Default run length: 12.5 million characters (about 13 passes over the built-in
corpus), a few minutes on a 2-core CPU for the default model."""

CHECKPOINT_NAME = "checkpoint.npz"
BEST_NAME = "best.npz"
HISTORY_NAME = "history.csv"
PLOT_NAME = "loss.png"
HISTORY_COLUMNS = ("iteration", "train_loss", "val_loss", "chars_per_sec", "val_bpc",
                   "learning_rate", "epoch")
PLOT_HINT = 'pip install "fastrnn[plot]"'

# Options fixed for the life of a run: they decide the model's shape, the data
# it sees and the meaning of the optimizer state.  The others (the schedule)
# may change when a run is resumed.
FIXED_OPTIONS = ("model", "hidden_size", "num_layers", "seq_length", "batch_size",
                 "val_fraction", "seed", "optimizer", "eps", "beta1", "beta2", "decay_rate")

# The smoothed training loss is an exponential moving average with this factor,
# bias-corrected as in Adam so that it means something from the first step
# (min-char-rnn's 0.999 starting at log(V) lags by thousands of iterations).
_SMOOTHING = 0.99
# Validation is read in chunks of this length with the hidden state carried;
# longer chunks make larger matrix products, which multi-threaded BLAS slows
# down on small machines.
_VAL_CHUNK = 100
# The longest sample shown during training: about 2.5 s of sampling at H = 100
# and 1 MB of log each time.  A run must not accept a length it can only fail
# on hours later, at its first sample.
MAX_SAMPLE_LENGTH = 1_000_000


@dataclass(frozen=True)
class TrainingConfig:
    """Every option of a training run, validated on construction.

    The options above ``learning_rate`` are fixed for the life of a run (they
    decide the model's shape, the data and the optimizer state); the others
    form the schedule and may change when a run is resumed.

    Parameters
    ----------
    model : str, default "rnn"
        A name in :data:`MODELS`.
    hidden_size : int, default 100
        H, the size of the hidden state (of each layer).
    num_layers : int, default 1
        L, the number of stacked layers (``lstm`` and ``gru``; an ``rnn`` has one).
    seq_length : int, default 25
        T, the number of time steps backpropagated through (chunk length).
    batch_size : int, default 1
        B, the number of parallel streams.
    val_fraction : float, default 0.05
        The last fraction of the text held out for validation, in [0, 1).
    seed : int, default 0
        Seeds the initial weights and the sampling during training.
    optimizer : {"adagrad", "sgd", "rmsprop", "adam"}, default "adagrad"
    eps : float, default 1e-8
        Added to the denominators of adagrad, rmsprop and adam.
    beta1, beta2 : float, default 0.9, 0.999
        Adam's moment decay rates.
    decay_rate : float, default 0.95
        RMSProp's decay rate of the squared-gradient average (char-rnn's default).
    learning_rate : float, optional
        The base learning rate; by default 0.1 for sgd and adagrad (min-char-rnn),
        0.002 for rmsprop and adam (char-rnn, torch-rnn).
    clip : float, default 5.0
        Gradients are clipped element-wise to [-clip, clip]; 0 turns clipping off.
    lr_decay : float, default 1.0
        The learning rate is multiplied by this every ``lr_decay_every``
        iterations (1 = constant rate): the rate for step i + 1 is
        ``learning_rate * lr_decay ** (i // lr_decay_every)``.
    lr_decay_every : int, default 1000
    iterations : int, default DEFAULT_ITERATIONS
        Total optimizer steps of the run (counting those before a resume).
    eval_every : int, default 10000
        Validation, history row and checkpoint every this many iterations
        (and at the end).
    sample_every : int, default 50000
        A sample every this many iterations.
    sample_length : int, default 200
        Characters in each sample printed during training (0: no samples), at
        most :data:`MAX_SAMPLE_LENGTH`.
    """

    model: str = "rnn"
    hidden_size: int = 100
    num_layers: int = 1
    seq_length: int = 25
    batch_size: int = 1
    val_fraction: float = 0.05
    seed: int = 0
    optimizer: str = "adagrad"
    eps: float = 1e-8
    beta1: float = 0.9
    beta2: float = 0.999
    decay_rate: float = 0.95
    learning_rate: float = None
    clip: float = 5.0
    lr_decay: float = 1.0
    lr_decay_every: int = 1000
    iterations: int = DEFAULT_ITERATIONS
    eval_every: int = 10_000
    sample_every: int = 50_000
    sample_length: int = 200

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        if not isinstance(self.model, str) or self.model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}, got {self.model!r}")
        if not isinstance(self.optimizer, str) or self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        for name in ("hidden_size", "num_layers", "seq_length", "batch_size", "lr_decay_every",
                     "iterations", "eval_every", "sample_every"):
            put(name, check_int(name, getattr(self, name), 1))
        if self.model == "rnn" and self.num_layers != 1:
            raise ValueError(f"num_layers must be 1 for the rnn model (use lstm or gru for a "
                             f"stack), got {self.num_layers}")
        put("sample_length", check_int("sample_length", self.sample_length, 0))
        if self.sample_length > MAX_SAMPLE_LENGTH:
            raise ValueError(f"sample_length must be at most {MAX_SAMPLE_LENGTH:,} (the samples "
                             f"shown during training), got {self.sample_length:,}")
        put("val_fraction", check_real("val_fraction", self.val_fraction, 0.0, 1.0, high_open=True))
        seed = check_seed("seed", self.seed)
        if seed is None:
            raise ValueError("seed must be an integer in [0, 2**32 - 1], got None")
        put("seed", seed)
        put("eps", check_real("eps", self.eps, 0.0, low_open=True))
        for name in ("beta1", "beta2", "decay_rate"):
            put(name, check_real(name, getattr(self, name), 0.0, 1.0, high_open=True))
        if self.learning_rate is None:
            put("learning_rate", _DEFAULT_LEARNING_RATES[self.optimizer])
        put("learning_rate", check_real("learning_rate", self.learning_rate, 0.0, low_open=True))
        put("clip", check_real("clip", self.clip, 0.0))
        put("lr_decay", check_real("lr_decay", self.lr_decay, 0.0, 1.0, low_open=True))

    def learning_rate_at(self, iteration):
        """Return the learning rate of the step taken after ``iteration`` steps.

        Parameters
        ----------
        iteration : int
            Steps taken so far (>= 0).

        Returns
        -------
        float
        """
        iteration = check_int("iteration", iteration, 0)
        return self.learning_rate * self.lr_decay ** (iteration // self.lr_decay_every)

    def to_dict(self):
        """Return the options as a plain dict (JSON-serialisable)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, options):
        """Build a config from :meth:`to_dict`'s output; unknown keys are an error.

        Parameters
        ----------
        options : dict

        Returns
        -------
        TrainingConfig
        """
        if not isinstance(options, dict):
            raise ValueError(f"options must be a dict, got {type(options).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown training options: {', '.join(unknown)}")
        return cls(**options)


class TrainingDiverged(FloatingPointError):
    """The training loss (or a weight) became NaN or infinite; nothing was saved after it.

    Attributes
    ----------
    iteration : int
        The iteration (1-based) whose loss was not finite, or after which the
        weights were not.
    loss : float or None
        The loss, or None when it is the weights that are not finite.
    what : str
        Which loss: ``"loss"`` (training) or ``"validation loss"``.
    """

    def __init__(self, iteration, loss=None, detail="", what="loss"):
        self.iteration = iteration
        self.loss = loss
        self.what = what
        if loss is None:
            message = f"training diverged: the weights are not finite after iteration {iteration}"
        else:
            message = f"training diverged: the {what} at iteration {iteration} is {loss}"
        super().__init__(message + (f"; {detail}" if detail else ""))


class TrainingInterrupted(KeyboardInterrupt):
    """Training was stopped (Ctrl-C) after a checkpoint was saved.

    Attributes
    ----------
    iteration : int
        The iteration the checkpoint holds.
    checkpoint : str
        Its path.
    """

    def __init__(self, iteration, checkpoint):
        self.iteration = iteration
        self.checkpoint = checkpoint
        super().__init__(f"training interrupted at iteration {iteration}; "
                         f"checkpoint saved to {checkpoint}")


@dataclass(frozen=True)
class RunSummary:
    """What :meth:`Trainer.run` reports at the end.

    Attributes
    ----------
    iteration : int
        Iterations done in total.
    train_loss : float
        Smoothed training loss per character (nats).
    val_loss : float or None
        The last validation loss per character (nats); None without validation.
    best_val_loss : float or None
    checkpoint : str
        Path of the final checkpoint.
    seconds : float
        Wall time of this run.
    chars_per_sec : float
        Training throughput of this run (characters of training text per
        second, evaluation excluded).
    """

    iteration: int
    train_loss: float
    val_loss: float
    best_val_loss: float
    checkpoint: str
    seconds: float
    chars_per_sec: float


class _Optimizer:
    """An optimizer's state vectors and the kernel that updates with them."""

    def __init__(self, config, size, state=None):
        self.name = config.optimizer
        self.config = config
        names = {"sgd": (), "adagrad": ("mem",), "rmsprop": ("cache",), "adam": ("m", "v")}
        self.state = {name: np.zeros(size) for name in names[self.name]}
        if self.name == "adam":
            self.state["step"] = np.zeros((), dtype=np.int64)
        if state is not None:
            self._load(state, size)

    def _load(self, state, size):
        if set(state) != set(self.state):
            raise CheckpointError(
                f"the {self.name} optimizer state holds {sorted(state)}, expected "
                f"{sorted(self.state)}"
            )
        for name, value in state.items():
            target = self.state[name]
            value = np.asarray(value)
            if value.shape != target.shape or value.dtype.kind != target.dtype.kind:
                raise CheckpointError(
                    f"the optimizer state {name!r} has shape {value.shape} and dtype "
                    f"{value.dtype}, expected {target.shape} and {target.dtype}"
                )
            self.state[name] = np.array(value, dtype=target.dtype, order="C")

    def step(self, theta, grad, learning_rate, clip):
        c, s = self.config, self.state
        if self.name == "sgd":
            _opt.sgd_(theta, grad, learning_rate, clip)
        elif self.name == "adagrad":
            _opt.adagrad_(theta, grad, s["mem"], learning_rate, c.eps, clip)
        elif self.name == "rmsprop":
            _opt.rmsprop_(theta, grad, s["cache"], learning_rate, c.decay_rate, c.eps, clip)
        else:
            s["step"][...] += 1
            _opt.adam_(theta, grad, s["m"], s["v"], learning_rate, c.beta1, c.beta2, c.eps,
                       int(s["step"]), clip)


def _build_model(kind, args, seed=0):
    cls = MODELS.get(kind)
    if cls is None:
        raise CheckpointError(f"unknown model kind {kind!r}; this fastrnn knows {sorted(MODELS)}")
    try:
        return cls(**args, seed=seed)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"bad arguments for a {kind} model: {error}") from None


def _model_from_checkpoint(ckpt, where):
    """Build the model stored in a checkpoint, its weights checked and loaded."""
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
    model = _build_model(ckpt.model_kind, args)
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
        params[name][...] = value
    return model


def _file_identity(path):
    """What tells one version of a file from another: an atomic save makes a new inode."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


def _path(name, value):
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{name} must be a path (str or os.PathLike), got {value!r}")
    return os.fspath(value)


def _resolve_checkpoint(path):
    path = _path("path", path)
    if os.path.isdir(path):
        return os.path.join(path, CHECKPOINT_NAME)
    return path


def load_model(path):
    """Load the model and vocabulary of a checkpoint, ready to sample from.

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
    path = _resolve_checkpoint(path)
    ckpt = load_checkpoint(path)
    return _model_from_checkpoint(ckpt, path), ckpt.vocab


def generate(model, vocab, length=500, *, prime="", temperature=1.0, seed=None):
    """Sample text from a model: the prime text, then ``length`` new characters.

    The model reads the prime text (all of it but the last character, scored
    with :meth:`loss` to get its final state) and continues from its last
    character.  Without a prime text it starts after a newline when the
    vocabulary has one (as at the start of a line), otherwise after a
    character drawn uniformly from the vocabulary; that start is not part of
    the result.

    Parameters
    ----------
    model : RNN or another model of :data:`MODELS`
    vocab : Vocabulary
        The vocabulary the model was trained with.
    length : int, default 500
        Characters to generate, not counting the prime text (>= 0).
    prime : str, default ""
        Text to start from; every character must be in the vocabulary.
    temperature : float, default 1.0
        Softmax temperature (>= 0); 0 picks the most likely character (greedy).
    seed : int, optional
        Seed in [0, 2**32 - 1] for reproducible samples.

    Returns
    -------
    str
        ``prime`` followed by the generated characters.
    """
    if not isinstance(model, tuple(MODELS.values())):
        raise ValueError(f"model must be one of fastrnn's models ({', '.join(sorted(MODELS))}), "
                         f"got {type(model).__name__}")
    if not isinstance(vocab, Vocabulary):
        raise ValueError(f"vocab must be a Vocabulary, got {type(vocab).__name__}")
    length = check_num_chars(length, "length")
    temperature = check_temperature(temperature)
    seed = check_seed("seed", seed)
    if not isinstance(prime, str):
        raise ValueError(f"prime must be a str, got {type(prime).__name__}")
    indices = vocab.encode(prime, name="the prime text")  # names any unknown characters
    if getattr(model, "input_dim", vocab.size) != vocab.size:
        raise ValueError(
            f"the model reads {model.input_dim} symbols, the vocabulary has {vocab.size}"
        )
    h0 = None
    if prime:
        if len(indices) > 1:
            # loss() leaves the whole final state (every layer, an LSTM's c) in
            # last_hidden; the caller's last_hidden is put back afterwards.
            kept = model.last_hidden
            model.loss(indices[:-1], indices[1:])
            h0, model.last_hidden = model.last_hidden, kept
        start = int(indices[-1])
    elif "\n" in vocab:
        start = int(vocab.encode("\n")[0])
    else:
        start = int(np.random.default_rng(seed).integers(vocab.size))
    if length == 0:
        return prime
    out = model.predict(start, length, temperature=temperature, seed=seed, h0=h0)
    return prime + vocab.decode(out)


class _StopFlag:
    """Turns SIGINT into a flag checked between iterations (main thread only).

    The first Ctrl-C asks the loop to stop after the current step and save; it
    says so, since a step can take a while (the first one compiles kernels).
    A second Ctrl-C gives up at once with KeyboardInterrupt, without saving:
    the last checkpoint on disk is complete (writes are atomic) and is kept.
    """

    def __init__(self, enabled, notify):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.notify = notify
        self.raised = False
        self._previous = None

    def _handle(self, signum, frame):
        if self.raised:
            signal.signal(signal.SIGINT, self._previous)
            raise KeyboardInterrupt
        self.raised = True
        try:
            self.notify("stopping after this step to save a checkpoint (Ctrl-C again: stop "
                        "now, keeping the last checkpoint)")
        except (OSError, ValueError):
            # The log is gone (Ctrl-C often ends a `| tee` too).  Raising here
            # would stop the step half done; the flag alone stops the run.
            pass

    def __enter__(self):
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self.enabled:
            signal.signal(signal.SIGINT, self._previous)
        return False


class Trainer:
    """One training run on one text.

    Parameters
    ----------
    text : str
        The whole text; its vocabulary is built from all of it, its last
        ``config.val_fraction`` is held out for validation.
    config : TrainingConfig, optional
        Defaults to ``TrainingConfig()``.
    source : str, default "<text>"
        Where the text came from (a file path, ``"<builtin>"``), recorded in
        checkpoints to tell the user what a run was trained on.

    Attributes
    ----------
    config : TrainingConfig
    model : RNN
        The model being trained (any class of :data:`MODELS`).
    vocab : Vocabulary
    streams : fastrnn.corpus.Streams
        Where training is in the text.
    val_size : int
        Characters held out for validation (0: none).
    iteration : int
        Optimizer steps taken.
    hidden : ndarray or tuple of ndarray
        The state carried into the next chunk, in the model's batch form
        (``model.zero_state(B)``): (B, H) for an rnn, (L, B, H) for a gru,
        a pair of (L, B, H) for an lstm.
    smooth_loss : float
        Exponentially smoothed training loss per character (nats), NaN before
        the first step.
    best_val_loss : float or None
        Lowest validation loss per character so far.

    See Also
    --------
    Trainer.from_checkpoint : continue a saved run.
    """

    def __init__(self, text, config=None, *, source="<text>"):
        config = TrainingConfig() if config is None else config
        if not isinstance(config, TrainingConfig):
            raise ValueError(f"config must be a TrainingConfig, got {type(config).__name__}")
        if not isinstance(source, str):
            raise ValueError(f"source must be a str, got {type(source).__name__}")
        vocab = Vocabulary.from_text(text)  # validates text
        self._setup(text, vocab, config, source)
        V, H = vocab.size, config.hidden_size
        self.model_args = {"input_dim": V, "hidden_dim": H, "output_dim": V}
        if config.model != "rnn":
            self.model_args["num_layers"] = config.num_layers
        self.model = _build_model(config.model, self.model_args, seed=config.seed)
        self.iteration = 0
        self.hidden = self.model.zero_state(config.batch_size)
        self._loss_ema = 0.0  # before bias correction
        self.best_val_loss = None
        self._rng = np.random.default_rng(config.seed)
        self._optimizer = _Optimizer(config, self.model.parameter_vector.shape[0])
        self._own_checkpoint = None

    def _setup(self, text, vocab, config, source, position=0, epoch=0):
        self.config = config
        self.vocab = vocab
        self.source = source
        self.text_sha256 = fingerprint(text)
        self.text_length = len(text)
        train, val = split_validation(vocab.encode(text), config.val_fraction)
        self.streams = Streams(train, config.batch_size, config.seq_length,
                               position=position, epoch=epoch)
        self.val_size = int(val.shape[0])
        self._val = None
        if val.shape[0] >= 2:
            parts = max(1, min(config.batch_size, val.shape[0] // 2))
            self._val = contiguous_parts(val, parts)  # (Bv, Lv), Lv >= 2

    @classmethod
    def from_checkpoint(cls, checkpoint, text, *, source=None, **changes):
        """Continue a saved run exactly where it stopped.

        Parameters
        ----------
        checkpoint : str, os.PathLike or Checkpoint
            A checkpoint file, a training directory (its ``checkpoint.npz``) or
            a loaded :class:`~fastrnn.checkpoint.Checkpoint`.
        text : str
            The text the run was trained on; a different text (by its SHA-256
            fingerprint) is refused.
        source : str, optional
            Where the text came from now; by default the recorded source.
        **changes
            New values for schedule options of :class:`TrainingConfig`
            (``learning_rate``, ``clip``, ``iterations``, ...), applying from
            now on.  Fixed options (``hidden_size``, ``seq_length``,
            ``batch_size``, ``optimizer``, ...) may be given only with the value
            the checkpoint has.

        Returns
        -------
        Trainer

        Raises
        ------
        CheckpointError
            If the checkpoint is damaged or does not fit its own contents.
        ValueError
            If the text differs from the checkpoint's, or a fixed option would change.
        """
        where = "checkpoint"
        if not isinstance(checkpoint, Checkpoint):
            where = _resolve_checkpoint(checkpoint)
            checkpoint = load_checkpoint(where)
        ckpt = checkpoint
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        stored = ckpt.config
        length = stored.get("sample_length") if isinstance(stored, dict) else None
        if type(length) is int and length > MAX_SAMPLE_LENGTH:
            # Saved before sample_length had its cap: the longest sample allowed now.
            stored = {**stored, "sample_length": MAX_SAMPLE_LENGTH}
        try:
            saved = TrainingConfig.from_dict(stored)
        except (ValueError, TypeError) as error:
            raise CheckpointError(f"{where}: bad training configuration ({error})") from None
        for name, value in changes.items():
            if name not in saved.to_dict():
                raise ValueError(f"unknown training option {name!r}")
            if name in FIXED_OPTIONS and value != getattr(saved, name):
                raise ValueError(
                    f"{name} is {getattr(saved, name)!r} in the checkpoint and a resumed run "
                    f"cannot change it (got {value!r})"
                )
        config = replace(saved, **{k: v for k, v in changes.items() if v is not None})
        digest = fingerprint(text)
        if digest != ckpt.text_sha256:
            raise ValueError(
                f"this text is not the one the checkpoint was trained on "
                f"({ckpt.text_source}, {ckpt.text_length} characters, sha256 "
                f"{ckpt.text_sha256[:12]}...); this one has {len(text)} characters, sha256 "
                f"{digest[:12]}...; resume with the same text"
            )
        self = cls.__new__(cls)
        vocab = Vocabulary.from_text(text)
        if vocab != ckpt.vocab:
            raise CheckpointError(f"{where}: the vocabulary does not match its training text")
        try:
            self._setup(text, vocab, config, ckpt.text_source if source is None else source,
                        position=ckpt.position, epoch=ckpt.epoch)
        except ValueError as error:
            raise CheckpointError(f"{where}: bad data position ({error})") from None
        self.model = _model_from_checkpoint(ckpt, where)
        self.model_args = dict(ckpt.model_args)
        if ckpt.model_kind != config.model:
            raise CheckpointError(f"{where}: the file holds a {ckpt.model_kind} model, its config "
                                  f"says {config.model!r}")
        if ckpt.model_args.get("hidden_dim") != config.hidden_size:
            raise CheckpointError(f"{where}: the model's hidden size does not match its config")
        if ckpt.model_args.get("num_layers", 1) != config.num_layers:
            raise CheckpointError(f"{where}: the model's number of layers does not match its "
                                  f"config")
        expected = self.model.pack_state(self.model.zero_state(config.batch_size)).shape
        if ckpt.hidden.shape != expected:
            raise CheckpointError(
                f"{where}: the hidden state has shape {ckpt.hidden.shape}, expected {expected}"
            )
        if not np.all(np.isfinite(ckpt.hidden)):
            raise CheckpointError(f"{where}: the hidden state holds NaN or infinite values")
        if ckpt.optimizer != config.optimizer:
            raise CheckpointError(f"{where}: optimizer state of {ckpt.optimizer!r}, "
                                  f"config says {config.optimizer!r}")
        self.iteration = ckpt.iteration
        self.hidden = self.model.unpack_state(ckpt.hidden)
        self._loss_ema = ckpt.loss_ema
        self.best_val_loss = None if math.isnan(ckpt.best_val_loss) else ckpt.best_val_loss
        self._rng = np.random.default_rng(config.seed)
        try:
            self._rng.bit_generator.state = ckpt.rng_state
        except (TypeError, ValueError, KeyError, OverflowError) as error:
            raise CheckpointError(f"{where}: bad random generator state ({error})") from None
        self._optimizer = _Optimizer(config, self.model.parameter_vector.shape[0],
                                     ckpt.optimizer_state)
        # The very file (not just its path) this state continues: see _Run.prepare_dir.
        self._own_checkpoint = None if where == "checkpoint" else _file_identity(where)
        return self

    @property
    def smooth_loss(self):
        """Exponentially smoothed training loss per character (nats); NaN before any step."""
        if self.iteration == 0:
            return float("nan")
        return self._loss_ema / (1.0 - _SMOOTHING**self.iteration)

    # -- one step -----------------------------------------------------------

    def step(self):
        """Take one optimizer step on the next chunk of every stream.

        Returns
        -------
        float
            The chunk's loss per character (nats), before the update.

        Raises
        ------
        TrainingDiverged
            If the loss is NaN or infinite; the model is then left as it was
            before this step.
        """
        inputs, targets = self.streams.chunk()  # (B, T) each
        loss, _ = self.model.gradients(inputs, targets, self.hidden)
        if not math.isfinite(loss):
            raise TrainingDiverged(self.iteration + 1, loss)
        self._optimizer.step(self.model.parameter_vector, self.model.gradient_vector,
                             self.config.learning_rate_at(self.iteration), self.config.clip)
        model = self.model
        self.hidden = model.unpack_state(model.pack_state(model.last_hidden))  # a copy
        if self.streams.advance():
            # a new pass starts from a blank state
            self.hidden = model.zero_state(self.config.batch_size)
        self.iteration += 1
        per_char = loss / self.config.seq_length
        self._loss_ema = _SMOOTHING * self._loss_ema + (1.0 - _SMOOTHING) * per_char
        return per_char

    # -- evaluation and samples ---------------------------------------------

    def evaluate(self):
        """Return the validation loss per character (nats), or None without validation data.

        The validation text is read as up to ``batch_size`` contiguous streams
        from a zero hidden state, in chunks with the state carried, so every
        character after the first of each stream is scored.
        """
        return self._evaluate()

    def _evaluate(self):
        if self._val is None:
            return None
        parts = self._val  # (Bv, Lv)
        B, L = parts.shape
        h = self.model.zero_state(B)
        total = 0.0
        for start in range(0, L - 1, _VAL_CHUNK):
            stop_at = min(start + _VAL_CHUNK, L - 1)
            x = np.ascontiguousarray(parts[:, start:stop_at])  # (Bv, t)
            y = np.ascontiguousarray(parts[:, start + 1:stop_at + 1])
            total += self.model.loss(x, y, h) * B  # summed over the streams
            h = self.model.last_hidden  # carried into the next chunk
        return total / (B * (L - 1))

    def sample(self, length=200, *, temperature=1.0, seed=None):
        """Continue the training text from where stream 0 is, as min-char-rnn does.

        The model starts from the current hidden state of the first stream and
        the first character of its next chunk.  Without ``seed`` the draws come
        from the trainer's own generator (saved in checkpoints).

        Parameters
        ----------
        length : int, default 200
        temperature : float, default 1.0
        seed : int, optional

        Returns
        -------
        str
            ``length`` generated characters.
        """
        length = check_num_chars(length, "length")
        temperature = check_temperature(temperature)
        seed = check_seed("seed", seed)
        if seed is None:
            seed = int(self._rng.integers(0, 2**32))
        if length == 0:
            return ""
        start = int(self.streams.parts[0, self.streams.position])
        out = self.model.predict(start, length, temperature=temperature, seed=seed,
                                 h0=self.model.stream_state(self.hidden, 0))
        return self.vocab.decode(out)

    # -- checkpoints ---------------------------------------------------------

    def checkpoint(self):
        """Everything needed to continue this run, as a :class:`~fastrnn.checkpoint.Checkpoint`."""
        return Checkpoint(
            model_kind=self.config.model,
            model_args=dict(self.model_args),
            parameters={k: v.copy() for k, v in self.model.parameters().items()},
            vocab=self.vocab,
            config=self.config.to_dict(),
            iteration=self.iteration,
            epoch=self.streams.epoch,
            position=self.streams.position,
            hidden=np.array(self.model.pack_state(self.hidden)),
            optimizer=self.config.optimizer,
            optimizer_state={k: v.copy() for k, v in self._optimizer.state.items()},
            rng_state=self._rng.bit_generator.state,
            loss_ema=self._loss_ema,
            best_val_loss=float("nan") if self.best_val_loss is None else self.best_val_loss,
            text_sha256=self.text_sha256,
            text_length=self.text_length,
            text_source=self.source,
        )

    def save(self, path):
        """Write a checkpoint atomically.

        Parameters
        ----------
        path : str or os.PathLike

        Raises
        ------
        TrainingDiverged
            If a weight is not finite; nothing is written then.
        """
        self._check_weights()
        save_checkpoint(path, self.checkpoint())

    def _check_weights(self):
        if not np.all(np.isfinite(self.model.parameter_vector)):
            raise TrainingDiverged(self.iteration)

    # -- a whole run ----------------------------------------------------------

    def run(self, out_dir, *, progress=True, log=None, handle_sigint=True):
        """Train up to ``config.iterations``, writing results into ``out_dir``.

        Every ``eval_every`` iterations and at the end: the validation loss,
        a row of ``history.csv``, ``checkpoint.npz``, ``best.npz`` when the
        validation loss is the lowest so far, and ``loss.png`` (when
        matplotlib is installed).  Every ``sample_every`` iterations a sample
        goes to ``log``.

        Parameters
        ----------
        out_dir : str or os.PathLike
            Created if missing.  It may not hold a checkpoint of another run:
            a fresh trainer refuses a directory with a ``checkpoint.npz``, a
            resumed one any checkpoint but the one it was loaded from, and
            both a ``best.npz`` without its ``checkpoint.npz``.  A trainer
            continues the checkpoint it saved last, so after a Ctrl-C ``run``
            may be called again with the same directory.
        progress : bool, default True
            Show a progress bar (tqdm) on ``log``.
        log : file, optional
            Where messages and samples go; ``sys.stderr`` by default.
        handle_sigint : bool, default True
            Turn Ctrl-C (SIGINT) into a clean stop: the iteration in progress
            finishes, a checkpoint is saved and :class:`TrainingInterrupted` is
            raised.  Only possible in the main thread.

        Returns
        -------
        RunSummary

        Raises
        ------
        TrainingDiverged
            If the loss stops being finite; the last checkpoint is kept as it was.
        TrainingInterrupted
            After a clean stop on Ctrl-C.
        FileExistsError
            If ``out_dir`` holds another run's checkpoint or best model, or a
            directory where the run writes a file.
        ValueError
            If ``out_dir``'s ``history.csv`` cannot be read (nothing is written).
        OSError
            If the log or a file cannot be written; a checkpoint of the steps
            taken so far is saved first, where that is still possible.
        """
        out_dir = _path("out_dir", out_dir)
        if log is not None and not callable(getattr(log, "write", None)):
            raise ValueError(f"log must be a writable text file, got {log!r}")
        return _Run(self, out_dir, bool(progress), sys.stderr if log is None else log,
                    bool(handle_sigint)).go()


class _Run:
    """The bookkeeping of :meth:`Trainer.run`: files, progress, timing."""

    def __init__(self, trainer, out_dir, progress, log, handle_sigint):
        self.t = trainer
        self.out_dir = os.fspath(out_dir)
        self.progress = progress
        self.log = log
        self.handle_sigint = handle_sigint
        self.checkpoint_path = os.path.join(self.out_dir, CHECKPOINT_NAME)
        self.best_path = os.path.join(self.out_dir, BEST_NAME)
        self.history_path = os.path.join(self.out_dir, HISTORY_NAME)
        self.plot_path = os.path.join(self.out_dir, PLOT_NAME)
        self.saved_iteration = None
        self.stepping = False  # inside Trainer.step: its state may be half updated
        self.plot_failed = False
        self.val_loss = None
        self.bar = None

    def say(self, message):
        if self.bar is not None:
            self.bar.write(message, file=self.log)
        else:
            print(message, file=self.log)

    def prepare_dir(self):
        os.makedirs(self.out_dir, exist_ok=True)
        for path in (self.checkpoint_path, self.best_path, self.history_path, self.plot_path):
            if os.path.isdir(path):  # found now, not at the first save hours later
                raise FileExistsError(f"{path} is a directory, where the run writes a file; "
                                      f"move it away or train into another directory")
        if os.path.exists(self.checkpoint_path):
            # Only the version this trainer loaded or saved last: not another
            # run's, nor a newer one of this run that another process wrote.
            own = self.t._own_checkpoint
            if own is None or own != _file_identity(self.checkpoint_path):
                raise FileExistsError(
                    f"{self.out_dir} already holds a checkpoint of another run; resume it or "
                    f"train into another directory"
                )
            self.saved_iteration = self.t.iteration
        elif os.path.exists(self.best_path):
            # A best model without its checkpoint (a crash between the two
            # saves, or a deleted checkpoint): this run would overwrite it.
            raise FileExistsError(f"{self.out_dir} already holds the best model of another run "
                                  f"({BEST_NAME}); move it away or train into another directory")
        self.rows = self.read_history()
        self.write_history()

    def read_history(self):
        """History rows up to the current iteration (later ones belong to a lost future)."""
        rows = []
        if self.t.iteration == 0 or not os.path.exists(self.history_path):
            return rows
        try:
            with open(self.history_path, newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    try:
                        if int(row["iteration"]) <= self.t.iteration:
                            rows.append({k: row.get(k) or "" for k in HISTORY_COLUMNS})
                    except (KeyError, TypeError, ValueError):
                        continue  # a torn last line after a crash
        except (csv.Error, UnicodeDecodeError) as error:
            # Not a torn line but a damaged file: rewriting it would lose its
            # rows, so nothing is touched and the user decides.
            raise ValueError(f"{self.history_path} is not a readable history ({error}); move "
                             f"it away to continue with a new one") from None
        return rows

    def write_history(self):
        buf = io.StringIO()
        writer = csv.DictWriter(buf, HISTORY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        data = buf.getvalue().encode("utf-8")
        atomic_write(self.history_path, lambda f: f.write(data))

    def plot(self):
        if self.plot_failed or not self.rows:
            return
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            self.plot_failed = True
            self.say(f"matplotlib is not installed, so no {PLOT_NAME} is drawn; "
                     f"for plots: {PLOT_HINT}")
            return

        def number(text):
            return float(text) if text else float("nan")

        its = [int(r["iteration"]) for r in self.rows]
        train = [number(r["train_loss"]) for r in self.rows]
        val = [number(r["val_loss"]) for r in self.rows]
        fig = Figure(figsize=(7, 4.2), dpi=100)
        FigureCanvasAgg(fig)  # the Agg backend, without touching pyplot's global state
        ax = fig.add_subplot()
        marker = "o" if len(its) < 30 else None
        ax.plot(its, train, label="training (smoothed)", marker=marker)
        if not all(math.isnan(v) for v in val):
            ax.plot(its, val, label="validation", marker=marker)
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss per character (nats)")
        ax.set_title("fastrnn training")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        atomic_write(self.plot_path, lambda f: fig.savefig(f, format="png"))

    def eval_and_save(self, chars_per_sec):
        # Not interruptible: a Ctrl-C meanwhile takes effect after the save, so
        # every evaluation that was due is in the history (it is short).
        t = self.t
        self.check_weights()  # before anything is written
        val = t._evaluate()
        if val is not None and not math.isfinite(val):
            raise self.diverged(TrainingDiverged(t.iteration, val, what="validation loss"))
        self.val_loss = val
        improved = val is not None and (t.best_val_loss is None or val < t.best_val_loss)
        previous_best = t.best_val_loss
        self.rows.append({
            "iteration": t.iteration,
            "train_loss": f"{t.smooth_loss:.6f}",
            "val_loss": "" if val is None else f"{val:.6f}",
            "val_bpc": "" if val is None else f"{val / math.log(2):.6f}",
            "chars_per_sec": f"{chars_per_sec:.0f}",
            "learning_rate": f"{t.config.learning_rate_at(max(t.iteration - 1, 0)):.6g}",
            "epoch": f"{self.epochs():.4f}",
        })
        try:
            self.write_history()
        except BaseException:
            self.rows.pop()  # not on disk: the next write must not add it out of turn
            raise
        if improved:  # first: a crash between the two saves must not lose the best state
            t.best_val_loss = val
            try:
                t.save(self.best_path)
            except BaseException:
                # A checkpoint saved after this failure must not claim a best
                # loss whose model is not in best.npz.
                t.best_val_loss = previous_best
                raise
        self.save()
        self.plot()

    def epochs(self):
        """Count the passes over the training text so far, as a fraction."""
        s = self.t.streams
        return s.epoch + s.position / (s.chunks_per_epoch * s.seq_length)

    def check_weights(self):
        try:
            self.t._check_weights()
        except TrainingDiverged as error:
            raise self.diverged(error) from None

    def save(self):
        self.check_weights()
        self.t.save(self.checkpoint_path)
        self.saved_iteration = self.t.iteration
        # The trainer's state now continues this checkpoint: running it again
        # into this directory (after a Ctrl-C, say) resumes the same run.
        self.t._own_checkpoint = _file_identity(self.checkpoint_path)

    def save_if_possible(self):
        """Save after a failure outside the training step, when that can still be done.

        Failures to save (a full disk, weights gone non-finite) are swallowed:
        the caller re-raises the error that stopped the run, and the last
        checkpoint stays as it was.
        """
        if self.stepping or self.saved_iteration == self.t.iteration:
            return  # a step cut short may have updated the weights and not the rest
        try:
            self.save()
        except (OSError, TrainingDiverged):
            pass

    def postfix(self, chars_per_sec):
        parts = [f"loss={self.t.smooth_loss:.3f}"]
        if self.val_loss is not None:
            parts.append(f"val={self.val_loss:.3f}")
        parts.append(f"{chars_per_sec / 1000:.0f}k chars/s")
        return ", ".join(parts)

    def go(self):
        from tqdm import tqdm

        t = self.t
        c = t.config
        target = c.iterations
        if t.iteration > target:  # before anything in the directory is touched
            raise ValueError(f"the run is already at iteration {t.iteration}, beyond the "
                             f"{target} iterations asked for")
        self.prepare_dir()
        self.chars_per_step = c.batch_size * c.seq_length
        self.started = time.perf_counter()
        self.train_seconds = 0.0  # time in training steps only, for chars/sec
        self.total_steps = 0
        with _StopFlag(self.handle_sigint, self.say) as flag, tqdm(
            total=target, initial=t.iteration, desc="training", unit="it", file=self.log,
            disable=not self.progress, dynamic_ncols=True, mininterval=0.5, smoothing=0.05,
        ) as bar:
            self.bar = bar
            try:
                self.loop(flag, bar)
            except OSError:
                # The log or a file could not be written (the reader of a pipe
                # went away, a full disk): keep the steps taken so far.
                self.save_if_possible()
                raise
            if self.saved_iteration != t.iteration:  # interrupted, or nothing left to do
                self.save()
        self.bar = None
        if flag.raised:
            raise TrainingInterrupted(t.iteration, self.checkpoint_path)
        return RunSummary(
            iteration=t.iteration,
            train_loss=t.smooth_loss,
            val_loss=self.val_loss,
            best_val_loss=t.best_val_loss,
            checkpoint=self.checkpoint_path,
            seconds=time.perf_counter() - self.started,
            chars_per_sec=(self.total_steps * self.chars_per_step / self.train_seconds
                           if self.train_seconds else 0.0),
        )

    def loop(self, flag, bar):
        """Training steps until the target iteration or a Ctrl-C, with the periodic work."""
        t = self.t
        c = t.config
        target = c.iterations
        chars_per_step = self.chars_per_step
        window_chars, window_seconds = 0, 0.0
        last_postfix = 0.0
        first_step = True
        while t.iteration < target and not flag.raised:
            t0 = time.perf_counter()
            self.stepping = True
            try:
                t.step()
            except TrainingDiverged as error:
                raise self.diverged(error) from None
            self.stepping = False
            dt = time.perf_counter() - t0
            if first_step:  # it loads the compiled kernels: not training speed
                first_step = False
            else:
                self.train_seconds += dt
                window_seconds += dt
                window_chars += chars_per_step
                self.total_steps += 1
            bar.update(1)
            cps = window_chars / window_seconds if window_seconds > 0 else 0.0
            if c.sample_length and t.iteration % c.sample_every == 0:
                text = t.sample(c.sample_length)
                self.say(f"----- sample at iteration {t.iteration} -----\n{text}\n-----")
            if t.iteration % c.eval_every == 0 or t.iteration == target:
                self.eval_and_save(cps)
                window_chars, window_seconds = 0, 0.0
                bar.set_postfix_str(self.postfix(cps), refresh=False)
            elif t0 - last_postfix > 0.5:
                last_postfix = t0
                bar.set_postfix_str(self.postfix(cps), refresh=False)

    def diverged(self, error):
        if self.saved_iteration is None:
            kept = "no checkpoint was written"
        else:
            kept = (f"the last checkpoint ({self.checkpoint_path}, iteration "
                    f"{self.saved_iteration}) is kept as it was")
        rate = self.t.config.learning_rate_at(max(error.iteration - 1, 0))
        advice = f"try a smaller learning rate (now {rate:g})"
        if not self.t.config.clip:
            advice += " or turn gradient clipping on"
        return TrainingDiverged(error.iteration, error.loss, f"{kept}; {advice}", error.what)
