"""Training a character-level model on a text: :class:`Trainer`, the API of ``fastrnn train``.

A :class:`Trainer` is one run: the model, its optimizer state, the streams over
the text, the carried hidden state; :meth:`Trainer.step` takes one optimizer
step, :meth:`Trainer.run` trains to ``config.iterations`` while writing
checkpoints, ``history.csv`` and ``loss.png`` into a directory.  Its options
are a :class:`~fastrnn.training.config.TrainingConfig`; sampling from the
result is :func:`fastrnn.load_model` and :func:`fastrnn.generate`.

Truncated BPTT as char-rnn does it: the training text (the part before the
validation split) is cut into ``batch_size`` contiguous parts, read in chunks of
``seq_length`` with the hidden state carried from chunk to chunk (see
:class:`fastrnn.corpus.Streams`).  One iteration is one optimizer step on one
chunk of every stream: gradients of the loss (summed over time, averaged over
streams), element-wise clipping to ``[-clip, clip]``, then the update.  All
reported losses are per character, in nats; bits per character are nats / ln 2.

Models are used through their public methods only and are found by name in
:data:`fastrnn.model.MODELS`, so any model with the same interface can be
trained and checkpointed.  :meth:`Trainer.run`'s loop is
:class:`~fastrnn.training.loop.RunLoop`, which uses the trainer through its
public methods.
"""

import math

import numpy as np

from fastrnn._validation import check_instance, check_num_chars, check_seed, check_temperature
from fastrnn.corpus import Streams, check_corpus, contiguous_parts, fingerprint, split_validation
from fastrnn.inference import nonnegative
from fastrnn.optim import Optimizer
from fastrnn.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from fastrnn.training.config import TrainingConfig, resumed_config, saved_config
from fastrnn.training.errors import CheckpointError, TrainingDiverged
from fastrnn.training.loading import (
    build_model,
    check_fits,
    model_args_of,
    model_from_checkpoint,
    resumed_vocabulary,
    start_from,
    vocabulary_of,
)
from fastrnn.training.loop import RunLoop, RunSummary
from fastrnn.training.rundir import RunDirectory, as_path, check_target, resolve_checkpoint
from fastrnn.training.signals import default_log
from fastrnn.vocab import Vocabulary

__all__ = ["Trainer", "RunSummary", "TrainingDiverged"]

# The smoothed training loss is an exponential moving average with this factor,
# bias-corrected as in Adam so that it means something from the first step
# (min-char-rnn's 0.999 starting at log(V) lags by thousands of iterations).
_SMOOTHING = 0.99
# Validation is read in chunks of this length with the hidden state carried;
# longer chunks make larger matrix products, which multi-threaded BLAS slows
# down on small machines.
_VAL_CHUNK = 100


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
    corpus : tuple of (str, str, int), optional
        The files the text was read from, as :func:`fastrnn.corpus.read_corpus`
        returns them (their texts joined must be ``text``); recorded in
        checkpoints, so that a resume can name a file that changed.
    val_text : str, optional
        Validate on this text instead of a held-out fraction of ``text``
        (``config.val_fraction`` must then be 0); the vocabulary covers both.
    val_source : str, default "<val_text>"
        Where the validation text came from, recorded in checkpoints.

    Attributes
    ----------
    config : TrainingConfig
    model : RNN, LSTM or GRU
        The model being trained (any class of :data:`fastrnn.model.MODELS`).
    vocab : Vocabulary
    streams : fastrnn.corpus.Streams
        Where training is in the text.
    val_size : int
        Characters held out for validation (0: none).
    iteration : int
        Optimizer steps taken.
    seconds : float
        Seconds spent in :meth:`run`, over the run's whole life (saved in
        checkpoints and carried by a resume), as of the last evaluation or
        checkpoint.
    hidden : ndarray or tuple of ndarray
        The state carried into the next chunk, in the model's batch form
        (``model.zero_state(B)``): (B, H) for an rnn, (L, B, H) for a gru,
        a pair of (L, B, H) for an lstm.
    smooth_loss : float
        Exponentially smoothed training loss per character (nats), NaN before
        the first step.
    best_val_loss : float or None
        Lowest validation loss per character so far.
    corpus : tuple of (str, str, int)
        The files the text was read from (see the parameter), carried by resumes.
    own_checkpoint : tuple or None
        :func:`~fastrnn._files.file_identity` of the checkpoint file this
        trainer's state continues (the one it was loaded from or saved last);
        None for a new run.  :meth:`run` refuses a directory holding any other
        checkpoint.

    See Also
    --------
    Trainer.from_checkpoint : continue a saved run.
    """

    def __init__(self, text, config=None, *, source="<text>", corpus=(), val_text=None,
                 val_source="<val_text>"):
        config = TrainingConfig() if config is None else config
        check_instance("config", config, TrainingConfig)
        check_instance("source", source, str)
        vocab = Vocabulary.from_text(text)  # validates text
        corpus = check_corpus(corpus, text)
        validation = ()
        if val_text is not None:
            check_instance("val_text", val_text, str)
            check_instance("val_source", val_source, str)
            if len(val_text) < 2:
                raise ValueError(f"val_text must hold at least 2 characters to validate on, "
                                 f"got {len(val_text)}")
            if config.val_fraction:
                raise ValueError(f"val_text replaces the held-out fraction of the text: give "
                                 f"val_fraction=0 with it (got {config.val_fraction})")
            vocab = vocabulary_of(vocab.chars, val_text)  # the characters of both
            validation = (val_source, fingerprint(val_text), len(val_text))
        if config.init_from is None:
            model_args = model_args_of(vocab.size, config)
            model = build_model(config.model, model_args, seed=config.seed)
        else:  # the source's architecture and weights, the vocabularies merged
            config, vocab, model, model_args = start_from(config, vocab)
        self._build(text, vocab, config, source, model, model_args,
                    Optimizer(config, model.parameter_vector.shape[0], dtype=model.dtype),
                    corpus=corpus, val_text=val_text, validation=validation)

    def _build(self, text, vocab, config, source, model, model_args, optimizer, *, position=0,
               epoch=0, iteration=0, seconds=0.0, hidden=None, loss_ema=0.0,
               best_val_loss=None, rng_state=None, own_checkpoint=None, corpus=(),
               val_text=None, validation=()):
        """Set every attribute of a trainer: the one place a trainer is built.

        The defaults are a new run's; :meth:`from_checkpoint` passes what the
        checkpoint holds, each part checked before.
        """
        if val_text is None:
            train, val = split_validation(vocab.encode(text, compact=True), config.val_fraction)
        else:
            train = vocab.encode(text, compact=True)
            val = vocab.encode(val_text, name="the validation text", compact=True)
        streams = Streams(train, config.batch_size, config.seq_length, position=position,
                          epoch=epoch)  # may refuse the position: before anything is set
        if config.patience and val.shape[0] < 2:
            raise ValueError(f"patience {config.patience} needs a validation text to watch: "
                             f"give val_fraction > 0 or a val_text")
        self.config, self.vocab, self.source, self.corpus = config, vocab, source, corpus
        self.validation = validation
        self.text_sha256, self.text_length = fingerprint(text), len(text)
        self.streams = streams
        self.val_size = int(val.shape[0])
        self._val = None
        if val.shape[0] >= 2:
            parts = max(1, min(config.batch_size, val.shape[0] // 2))
            self._val = contiguous_parts(val, parts)  # (Bv, Lv), Lv >= 2
        self.model, self.model_args = model, model_args
        self._optimizer = optimizer
        self.iteration = iteration
        self.seconds = seconds  # training time over the run's life, resumes included
        self.hidden = model.zero_state(config.batch_size) if hidden is None else hidden
        self._loss_ema = loss_ema  # before bias correction
        self.best_val_loss = best_val_loss
        self._rng = np.random.default_rng(config.seed)
        if rng_state is not None:
            self._rng.bit_generator.state = rng_state
        self.own_checkpoint = own_checkpoint

    @classmethod
    def from_checkpoint(cls, checkpoint, text, *, source=None, val_text=None, **changes):
        """Continue a saved run exactly where it stopped.

        Parameters
        ----------
        checkpoint : str, os.PathLike or Checkpoint
            A checkpoint file, a training directory (its ``checkpoint.npz``) or
            a loaded :class:`~fastrnn.training.checkpoint.Checkpoint`.
        text : str
            The text the run was trained on; a different text (by its SHA-256
            fingerprint) is refused.
        source : str, optional
            Where the text came from now; by default the recorded source.
        val_text : str, optional
            The run's validation text, when it validates on one (see
            :class:`Trainer`); the same text, by its fingerprint, is required.
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
        if not isinstance(checkpoint, Checkpoint):
            checkpoint = load_checkpoint(resolve_checkpoint(checkpoint))
        # One read from a file continues that very version of it (see
        # RunDirectory.check); one built in memory continues no file.
        where, own_checkpoint = checkpoint.origin or ("checkpoint", None)
        ckpt = checkpoint
        check_instance("text", text, str)
        try:
            saved = saved_config(ckpt.config)
        except (ValueError, TypeError) as error:
            raise CheckpointError(f"{where}: bad training configuration ({error})") from None
        config = resumed_config(saved, changes)
        digest = fingerprint(text)
        if digest != ckpt.text_sha256:
            raise ValueError(
                f"this text is not the one the checkpoint was trained on "
                f"({ckpt.text_source}, {ckpt.text_length} characters, sha256 "
                f"{ckpt.text_sha256[:12]}...); this one has {len(text)} characters, sha256 "
                f"{digest[:12]}...; resume with the same text"
            )
        vocab = resumed_vocabulary(ckpt, config, text, val_text, where)
        model = model_from_checkpoint(ckpt, where)
        check_fits(ckpt, config, model, where)
        if not math.isfinite(ckpt.loss_ema):  # else the first log line would blame the rate
            raise CheckpointError(f"{where}: the smoothed training loss (loss_ema) is "
                                  f"{ckpt.loss_ema}")
        try:
            np.random.default_rng().bit_generator.state = ckpt.rng_state
        except (TypeError, ValueError, KeyError, OverflowError) as error:
            raise CheckpointError(f"{where}: bad random generator state ({error})") from None
        try:
            optimizer = Optimizer(config, model.parameter_vector.shape[0], ckpt.optimizer_state,
                                  model.dtype)
        except ValueError as error:
            raise CheckpointError(f"{where}: {error}") from None
        hidden = model.unpack_state(ckpt.hidden)
        best = None if math.isnan(ckpt.best_val_loss) else ckpt.best_val_loss
        self = cls.__new__(cls)
        try:
            self._build(text, vocab, config, ckpt.text_source if source is None else source,
                        model, dict(ckpt.model_args), optimizer, position=ckpt.position,
                        epoch=ckpt.epoch, iteration=ckpt.iteration, seconds=ckpt.seconds,
                        hidden=hidden, loss_ema=ckpt.loss_ema, best_val_loss=best,
                        rng_state=ckpt.rng_state, own_checkpoint=own_checkpoint,
                        corpus=ckpt.corpus, val_text=val_text, validation=ckpt.validation)
        except ValueError as error:  # the streams refuse the position
            raise CheckpointError(f"{where}: bad data position ({error})") from None
        return self

    @property
    def smooth_loss(self):
        """Exponentially smoothed training loss per character (nats); NaN before any step."""
        if self.iteration == 0:
            return float("nan")
        return nonnegative(self._loss_ema / (1.0 - _SMOOTHING**self.iteration))

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
        model = self.model
        with model.lock:  # the gradient and the update as one call on the model
            loss, _ = model.gradients(inputs, targets, self.hidden)
            if not math.isfinite(loss):
                raise TrainingDiverged(self.iteration + 1, loss)
            self._optimizer.step(model.parameter_vector, model.gradient_vector,
                                 self.config.learning_rate_at(self.iteration), self.config.clip)
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
        return nonnegative(total / (B * (L - 1)))

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
        """Everything needed to continue this run, as a :class:`.checkpoint.Checkpoint`."""
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
            seconds=self.seconds,
            corpus=self.corpus,
            validation=self.validation,
        )

    def save(self, path):
        """Write :meth:`checkpoint` to ``path`` with :func:`.checkpoint.save_checkpoint`.

        Raises
        ------
        TrainingDiverged
            If a weight is not finite; nothing is written then.
        """
        self.check_weights()
        save_checkpoint(path, self.checkpoint())

    def check_weights(self):
        """Raise :class:`TrainingDiverged` if a weight is not finite."""
        if not np.all(np.isfinite(self.model.parameter_vector)):
            raise TrainingDiverged(self.iteration)

    # -- a whole run ----------------------------------------------------------

    def run(self, out_dir, *, progress=True, log=None, handle_sigint=True, stop=None):
        """Train up to ``config.iterations``, writing results into ``out_dir``.

        With ``config.time_limit``, the run ends sooner when that many seconds
        have passed since it started (counted as the summary's ``seconds``):
        the step in progress finishes and the run ends as at its last
        iteration, with a validation, a checkpoint, a history row and the plot.

        Every ``eval_every`` iterations and at the end: the validation loss,
        ``checkpoint.npz``, ``best.npz`` when the validation loss is the lowest
        so far, a row of ``history.csv`` and ``loss.png`` (when matplotlib is
        installed).  Every ``sample_every`` iterations a sample goes to ``log``
        (``sample_every`` or ``sample_length`` 0: none).  A history row's
        ``train_loss`` is the mean training loss per character over the
        iterations since the previous row; after a resume the first row
        averages the iterations since the resume.

        Parameters
        ----------
        out_dir : str or os.PathLike
            Created if missing.  The run holds a lock on it (``.fastrnn.lock``,
            :func:`fcntl.flock`, released by the kernel however the process
            ends), so no two runs write into it at once.  It may not hold
            another run's files: a fresh trainer refuses a directory with a
            ``checkpoint.npz``, a resumed one any checkpoint but the one it was
            loaded from, and both a ``best.npz``, ``history.csv`` or
            ``loss.png`` without its ``checkpoint.npz``, or a training text
            under one of those names.  A trainer continues the checkpoint it
            saved last, so after a Ctrl-C ``run`` may be called again with the
            same directory.  Temporary files of a save that was killed are removed.
        progress : bool, default True
            Show a progress bar (tqdm) on ``log``.
        log : file, optional
            Where messages and samples go; ``sys.stderr`` by default.
        handle_sigint : bool, default True
            Turn Ctrl-C (SIGINT), SIGTERM and SIGHUP into a clean stop: the
            iteration in progress finishes, a checkpoint is saved and
            :class:`TrainingInterrupted` is raised.  Only possible in the main thread.
        stop : threading.Event, optional
            Once set, from any thread, it stops the run as Ctrl-C does (the
            exception's ``signum`` is then None): the way to stop a run that
            does not own the main thread.

        Returns
        -------
        RunSummary

        Raises
        ------
        TrainingDiverged
            If the loss becomes NaN or infinite or blows up (see
            :mod:`fastrnn.training.loop`); the last checkpoint and best model are
            kept as they were.
        TrainingInterrupted
            After a clean stop on a signal.
        BlockingIOError
            If another process is training into ``out_dir``
            (:class:`~fastrnn.training.errors.DirectoryLockedError`).
        FileExistsError
            If ``out_dir`` holds another run's files, or a directory where the
            run writes a file.
        ValueError
            If ``out_dir``'s ``history.csv`` cannot be read, or the trainer is
            already beyond ``config.iterations`` (nothing is written).
        OSError
            If the log or a file cannot be written; a checkpoint of the steps
            taken so far is saved first, where that is still possible.  A file
            that could not be written is named, with the complete checkpoint
            that is on disk.
        """
        out_dir = as_path("out_dir", out_dir)
        if log is not None and not callable(getattr(log, "write", None)):
            raise ValueError(f"log must be a writable text file, got {log!r}")
        if stop is not None and not callable(getattr(stop, "is_set", None)):
            raise ValueError(f"stop must be a threading.Event, got {stop!r}")
        return RunLoop(self, out_dir, bool(progress), default_log() if log is None else log,
                       bool(handle_sigint), stop).train()

    def check_run(self, out_dir):
        """Raise what :meth:`run` would refuse ``out_dir`` for, touching nothing.

        The command line asks this before it announces a run, so that a refused
        run says nothing else; :meth:`run` asks it again as it starts.
        """
        check_target(self.iteration, self.config.iterations)
        RunDirectory(as_path("out_dir", out_dir)).check(self.own_checkpoint, self.source)
