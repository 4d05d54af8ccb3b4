"""The options of a training run: :class:`TrainingConfig`, its defaults and its bounds.

Each option's rule is written once, in :data:`OPTION_CHECKS`: the config
applies it on construction and the command line builds its argument
converters from it, so a bound or a message cannot drift between the two.
:func:`resumed_config` is the rule for a resumed run: the fixed options
(:data:`FIXED_OPTIONS`) stay as saved, the schedule may change, and the options
of one call of ``run`` (:data:`RUN_OPTIONS`) are not inherited.
"""

from dataclasses import asdict, dataclass, fields, replace
from functools import partial

from fastrnn._limits import MAX_SAMPLE_LENGTH, MAX_STEPS
from fastrnn._validation import (
    DTYPES,
    check_dimension,
    check_dtype,
    check_instance,
    check_int,
    check_real,
    check_seed,
)
from fastrnn.model import MODELS
from fastrnn.training.errors import FixedOptionError

__all__ = [
    "OPTIMIZERS",
    "OPTION_CHOICES",
    "DEFAULT_ITERATIONS",
    "MAX_SAMPLE_LENGTH",
    "FIXED_OPTIONS",
    "ARCHITECTURE_OPTIONS",
    "RUN_OPTIONS",
    "OPTION_CHECKS",
    "TrainingConfig",
    "FixedOptionError",
    "saved_config",
    "resumed_config",
]

OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam")
_DEFAULT_LEARNING_RATES = {"sgd": 0.1, "adagrad": 0.1, "rmsprop": 2e-3, "adam": 2e-3}

DEFAULT_ITERATIONS = 500_000
"""Default run length: 12.5 million characters (about 13 passes over the built-in
corpus), a few minutes on a 2-core CPU for the default model."""


# Options fixed for the life of a run: they decide the model's shape, the data
# it sees and the meaning of the optimizer state.  The others (the schedule)
# may change when a run is resumed.
FIXED_OPTIONS = ("model", "hidden_size", "num_layers", "dtype", "seq_length", "batch_size",
                 "val_fraction", "seed", "optimizer", "eps", "beta1", "beta2", "decay_rate",
                 "init_from")

# The options that make a model's architecture: with init_from, the source's.
ARCHITECTURE_OPTIONS = ("model", "hidden_size", "num_layers", "dtype")

# Options of one call of Trainer.run, not of the run as a whole: a resumed run
# has the time limit it is given (or none), whatever the checkpoint's was.
RUN_OPTIONS = ("time_limit",)


def _check_sample_length(name, value):
    value = check_int(name, value, 0)
    if value > MAX_SAMPLE_LENGTH:
        raise ValueError(f"{name} must be at most {MAX_SAMPLE_LENGTH:,} (the samples shown "
                         f"during training), got {value:,}")
    return value


def _check_run_seed(name, value):
    # A run's seed is saved and reused on resume: a fresh one each time (None)
    # would make the run impossible to repeat.
    if value is None:
        raise ValueError(f"{name} must be an integer in [0, 2**32 - 1], got None")
    return check_seed(name, value)


_fraction = partial(check_real, low=0.0, high=1.0, high_open=True)
# Counts of iterations: bounded so that every count a checkpoint stores fits its int64.
_steps = partial(check_dimension, high=MAX_STEPS)
_positive = partial(check_real, low=0.0, low_open=True)


def _check_source(name, value):
    if value is None:  # a run of its own, from fresh weights
        return None
    check_instance(name, value, str)
    if not value:
        raise ValueError(f"{name} must name a run directory, a checkpoint or 'pretrained', "
                         f"got ''")
    return value


def _check_time_limit(name, value):
    return None if value is None else _positive(name, value)  # None: no limit


# The options that name one of a few choices (the others are numbers, OPTION_CHECKS).
OPTION_CHOICES = {"model": tuple(MODELS), "optimizer": OPTIMIZERS, "dtype": DTYPES}

OPTION_CHECKS = {
    "hidden_size": check_dimension,
    "num_layers": check_dimension,
    "seq_length": check_dimension,
    "batch_size": check_dimension,
    "lr_decay_every": _steps,
    "iterations": _steps,
    "eval_every": _steps,
    "sample_every": partial(check_int, low=0, high=MAX_STEPS),  # 0: no samples
    "sample_length": _check_sample_length,
    "val_fraction": _fraction,
    "seed": _check_run_seed,
    "eps": _positive,
    "beta1": _fraction,
    "beta2": _fraction,
    "decay_rate": _fraction,
    "learning_rate": _positive,
    "clip": partial(check_real, low=0.0),
    "lr_decay": partial(check_real, low=0.0, high=1.0, low_open=True),
    "time_limit": _check_time_limit,
    "patience": partial(check_int, low=0, high=MAX_STEPS),  # 0: no early stop
    "init_from": _check_source,
}
"""The check of every numeric option: ``check(name, value)`` returns the value
normalised or raises ValueError naming ``name``."""


@dataclass(frozen=True)
class TrainingConfig:
    """Every option of a training run, validated on construction.

    The options above ``learning_rate`` are fixed for the life of a run (they
    decide the model's shape, the data and the optimizer state); the others
    form the schedule and may change when a run is resumed.

    Parameters
    ----------
    model : str, default "rnn"
        A name in :data:`fastrnn.model.MODELS`.
    hidden_size : int, default 100
        H, the size of the hidden state (of each layer).
    num_layers : int, default 1
        L, the number of stacked layers (``lstm`` and ``gru``; an ``rnn`` has one).
    dtype : {"float64", "float32"}, default "float64"
        What the model computes in (see :class:`fastrnn.RNN`); a numpy dtype
        or type is accepted and stored by its name.
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
    init_from : str, optional
        Start from the weights of a run directory, a checkpoint file or
        ``"pretrained"`` (the bundled model) instead of fresh ones: the
        architecture (:data:`ARCHITECTURE_OPTIONS`) is the source's, where an
        option left at its default takes the source's value and another value
        is refused; characters the source knows keep their weights, new ones
        get fresh rows and columns; the optimizer and the iteration start anew.
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
        A sample every this many iterations (0: no samples).
    sample_length : int, default 200
        Characters in each sample printed during training (0: no samples), at
        most :data:`MAX_SAMPLE_LENGTH`.
    time_limit : float, optional
        Stop after this many seconds of training (a positive, finite number),
        saving as at the end; counted from the start of each call of
        :meth:`~fastrnn.training.Trainer.run`, as its ``RunSummary.seconds``
        is.  A resumed run does not inherit it.
    patience : int, default 0
        Stop after this many evaluations in a row without a new best
        validation loss, saving as at the end (``best.npz`` holds the best);
        0 never stops early.  Needs validation (``val_fraction`` > 0, or the
        trainer's ``val_text``).  After a resume the count goes on from the
        run's history.
    """

    model: str = "rnn"
    hidden_size: int = 100
    num_layers: int = 1
    dtype: str = "float64"
    seq_length: int = 25
    batch_size: int = 1
    val_fraction: float = 0.05
    seed: int = 0
    optimizer: str = "adagrad"
    eps: float = 1e-8
    beta1: float = 0.9
    beta2: float = 0.999
    decay_rate: float = 0.95
    init_from: str | None = None
    learning_rate: float | None = None
    clip: float = 5.0
    lr_decay: float = 1.0
    lr_decay_every: int = 1000
    iterations: int = DEFAULT_ITERATIONS
    eval_every: int = 10_000
    sample_every: int = 50_000
    sample_length: int = 200
    time_limit: float | None = None
    patience: int = 0

    def __post_init__(self):
        if not isinstance(self.model, str) or self.model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}, got {self.model!r}")
        if not isinstance(self.optimizer, str) or self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.learning_rate is None:
            object.__setattr__(self, "learning_rate", _DEFAULT_LEARNING_RATES[self.optimizer])
        for name, check in OPTION_CHECKS.items():
            object.__setattr__(self, name, check(name, getattr(self, name)))
        object.__setattr__(self, "dtype", check_dtype(self.dtype).name)
        if self.model == "rnn" and self.num_layers != 1:
            raise ValueError(f"num_layers must be 1 for the rnn model (use lstm or gru for a "
                             f"stack), got {self.num_layers}")

    def learning_rate_at(self, iteration):
        """Return the learning rate (a float) of the step taken after ``iteration`` >= 0 steps."""
        iteration = check_int("iteration", iteration, 0, MAX_STEPS)
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
            Option values by name; the missing ones take their defaults.

        Returns
        -------
        TrainingConfig
            Checked as the constructor checks every option.
        """
        check_instance("options", options, dict)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown training options: {', '.join(unknown)}")
        return cls(**options)


def saved_config(options):
    """Rebuild the :class:`TrainingConfig` a checkpoint holds (its ``config`` entry).

    Runs saved before ``sample_length`` had its cap resume with the longest
    sample allowed now; anything else is checked (and refused) as
    :meth:`~TrainingConfig.from_dict` does.
    """
    length = options.get("sample_length") if isinstance(options, dict) else None
    if type(length) is int and length > MAX_SAMPLE_LENGTH:
        options = {**options, "sample_length": MAX_SAMPLE_LENGTH}
    return TrainingConfig.from_dict(options)


def resumed_config(saved, changes):
    """Apply the changes asked of a resumed run to its saved configuration.

    Parameters
    ----------
    saved : TrainingConfig
        The configuration the checkpoint holds.
    changes : dict
        New values by option name; None leaves an option as saved.  A fixed
        option may be given only with its saved value.  The options of
        :data:`RUN_OPTIONS` are those given, or None: they are not inherited.

    Returns
    -------
    TrainingConfig

    Raises
    ------
    FixedOptionError
        If a fixed option would change.
    ValueError
        If an option is unknown or a new value is out of bounds.
    """
    for name, value in changes.items():
        if name not in saved.to_dict():
            raise ValueError(f"unknown training option {name!r}")
        if name in FIXED_OPTIONS and value is not None:
            # As the config stores it (np.float32 is "float32"); a bad value fails here.
            value = getattr(replace(saved, **{name: value}), name)
        if name in FIXED_OPTIONS and value != getattr(saved, name):
            raise FixedOptionError(name, getattr(saved, name), value)
    kept = {k: v for k, v in changes.items() if v is not None}
    kept.update({name: changes.get(name) for name in RUN_OPTIONS})
    return replace(saved, **kept)
