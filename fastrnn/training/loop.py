"""The loop of :meth:`fastrnn.training.Trainer.run`: steps, the periodic work, timing, saves.

The loop uses the trainer through its public interface only: ``step``,
``evaluate``, ``sample``, ``save``, ``check_weights``, its ``config``,
``streams``, ``iteration``, ``seconds``, ``best_val_loss`` and
``own_checkpoint`` (which it brings up to date after each save).

It ends at ``config.iterations`` or sooner: ``config.time_limit`` seconds
after it started (:meth:`RunLoop.ending`), or ``config.patience`` evaluations
in a row without a new best validation loss (:meth:`RunLoop.out_of_patience`),
each way with an evaluation and a save, and says which in
:attr:`RunSummary.reason`; a stop signal or the caller's stop event ends it
with a save too, and :class:`~fastrnn.training.errors.TrainingInterrupted`.

Every ``eval_every`` iterations (and at the end) it evaluates, saves
``checkpoint.npz``, then ``best.npz`` when the validation loss improved (the
same state), appends a history row and draws the plot; every ``sample_every``
iterations it logs a sample.  A failure keeps the last good checkpoint, or
saves the steps taken when that is still safe; a file that could not be
written is named together with the complete checkpoint on disk.

A loss that blows up stops the run before anything more is saved
(:class:`_BlowUpGuard`): NaN or infinite, or far above where it was.
"""

import math
import time
from dataclasses import dataclass

from fastrnn._files import describe_os_error, file_identity
from fastrnn.inference import nonnegative
from fastrnn.training.checkpoint import load_checkpoint
from fastrnn.training.errors import CheckpointError, TrainingDiverged, TrainingInterrupted
from fastrnn.training.rundir import RunDirectory, check_target
from fastrnn.training.signals import StopFlag, progress_bar

__all__ = ["RunLoop", "RunSummary"]

# A smoothed training loss below this fraction of the uniform guess ln V shows
# that the model has learned: from then on, a loss above ln V (worse than
# guessing) is a blow-up.  Before, the loss hovers about ln V and only one of
# _FAR_ABOVE times ln V counts.  A validation loss _FAR_ABOVE times the best
# one is a blow-up too.  A healthy run never comes near these bounds; a
# too-large learning rate without clipping passes them by orders of magnitude.
# Only a loss of a run past _SETTLED iterations (the smoothed loss's horizon)
# shows what it has learned: one that starts from a trained model
# (init_from) may predict its first chunks far better than the rest.
_LEARNED = 0.9
_FAR_ABOVE = 3.0
_SETTLED = 100


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
    reason : {"iterations", "time limit", "patience"}
        What ended the run: ``config.iterations`` reached, ``config.time_limit``
        spent, or ``config.patience`` evaluations without a new best
        validation loss.
    """

    iteration: int
    train_loss: float
    val_loss: float
    best_val_loss: float
    checkpoint: str
    seconds: float
    chars_per_sec: float
    reason: str = "iterations"


def evaluations_since_best(rows):
    """How many history rows with a validation loss came after the best one (the first lowest)."""
    losses = [float(row["val_loss"]) for row in rows if row.get("val_loss")]
    if not losses:
        return 0
    return len(losses) - 1 - losses.index(min(losses))


class _BlowUpGuard:
    """Tells a loss that blew up from one that is only noisy.

    Parameters
    ----------
    trainer : Trainer
        Its vocabulary gives the uniform guess ln V; a resumed trainer's
        smoothed loss and best validation loss are where the run was.
    """

    def __init__(self, trainer):
        self.trainer = trainer
        self.uniform = math.log(trainer.vocab.size)
        self.lowest = trainer.smooth_loss if trainer.iteration >= _SETTLED else math.inf

    def _ceiling(self):
        if self.lowest < _LEARNED * self.uniform:
            return self.uniform, f"the uniform guess ln V = {self.uniform:.3f}, after having "\
                                 f"been {self.lowest:.3f}"
        return _FAR_ABOVE * self.uniform, f"{_FAR_ABOVE:g} times the uniform guess ln V = "\
                                          f"{self.uniform:.3f}"

    def _check_ceiling(self, loss, what):
        """Raise TrainingDiverged if ``loss`` is not finite or above where a run may go."""
        iteration = self.trainer.iteration
        if not math.isfinite(loss):
            raise TrainingDiverged(iteration, loss, what=what)
        ceiling, why = self._ceiling()
        if self.uniform > 0 and loss > ceiling:
            raise TrainingDiverged(iteration, loss, f"above {why}", what)

    def check_training(self, loss, what):
        """Raise TrainingDiverged if the training ``loss`` (per character) blew up."""
        self._check_ceiling(loss, what)
        if self.trainer.iteration >= _SETTLED:
            self.lowest = min(self.lowest, loss)

    def check_validation(self, val):
        """Raise TrainingDiverged if the validation loss ``val`` blew up."""
        self._check_ceiling(val, "validation loss")
        best = self.trainer.best_val_loss
        if best is not None and best > 0 and val > _FAR_ABOVE * best:
            raise TrainingDiverged(self.trainer.iteration, val, f"above {_FAR_ABOVE:g} times "
                                   f"the best validation loss {best:.3f}", "validation loss")


class _SaveError(OSError):
    """A file of the run could not be written; the message says what is on disk instead."""

    def __str__(self):
        return describe_os_error(self)


class RunLoop:
    """One call of :meth:`Trainer.run`: the trainer, its directory, the log and the timing.

    Parameters
    ----------
    trainer : Trainer
    out_dir : str
    progress : bool
        Show a progress bar on ``log``.
    log : file
    handle_sigint : bool
        Turn Ctrl-C, SIGTERM and SIGHUP into a clean stop (see
        :class:`~fastrnn.training.signals.StopFlag`).
    stop_event : threading.Event, optional
        Once set (from any thread), the run stops as after a stop signal.
    """

    def __init__(self, trainer, out_dir, progress, log, handle_sigint, stop_event=None):
        self.trainer = trainer
        self.files = RunDirectory(out_dir)
        self.progress = progress
        self.log = log
        self.handle_sigint = handle_sigint
        self.stop_event = stop_event
        self.deadline = math.inf  # perf_counter() time at which the time limit is reached
        self.started, self.base_seconds = time.perf_counter(), trainer.seconds  # see clock()
        self.saved_iteration = None
        self.stepping = False  # inside Trainer.step: its state may be half updated
        self.val_loss = None
        self.bar = None
        self.chars_per_step = trainer.config.batch_size * trainer.config.seq_length
        self.train_seconds = 0.0  # time in training steps only, for chars/sec
        self.timed_steps = 0
        # The training losses since the last history row, for its train_loss.
        # Not in checkpoints (their format stays): after a resume the first
        # row averages the steps since the resume.
        self.interval_sum, self.interval_steps = 0.0, 0
        self.guard = _BlowUpGuard(trainer)
        self.stale = 0  # evaluations in a row without a new best validation loss
        self.reason = "iterations"  # what ended the run (RunSummary.reason)

    def say(self, message):
        """Write ``message`` to the log, above the progress bar."""
        if self.bar is not None:
            self.bar.write(message, file=self.log)
        else:
            print(message, file=self.log)

    def train(self):
        """Lock and claim the directory, train to the target, save; return the summary."""
        trainer = self.trainer
        target = trainer.config.iterations
        check_target(trainer.iteration, target)  # before anything in the directory is touched
        if self.files.claim(trainer.own_checkpoint, trainer.iteration, trainer.source):
            self.saved_iteration = trainer.iteration
        try:
            return self._train_locked(target)
        finally:
            self.files.unlock()

    def _train_locked(self, target):
        trainer = self.trainer
        if self.saved_iteration is not None:
            self.repair_best()
        self.stale = evaluations_since_best(self.files.rows)  # a resume goes on counting
        started = self.started = time.perf_counter()
        self.base_seconds = trainer.seconds
        if trainer.config.time_limit is not None:
            self.deadline = started + trainer.config.time_limit
        with StopFlag(self.handle_sigint, self.say) as stop, progress_bar(
            target, trainer.iteration, self.log, self.progress
        ) as bar:
            self.bar = bar
            try:
                self.steps_until(target, stop)
            except _SaveError:
                raise  # it says what is on disk: nothing more is written
            except OSError:
                # The log or a file could not be written (the reader of a pipe
                # went away, a full disk): keep the steps taken so far.
                self.save_if_possible()
                raise
            if self.saved_iteration != trainer.iteration:  # interrupted, or nothing left to do
                self.save()
        self.bar = None
        if stop.raised:
            raise TrainingInterrupted(trainer.iteration, self.files.checkpoint_path, stop.signum)
        return RunSummary(
            iteration=trainer.iteration,
            train_loss=trainer.smooth_loss,
            val_loss=self.val_loss,
            best_val_loss=trainer.best_val_loss,
            checkpoint=self.files.checkpoint_path,
            seconds=time.perf_counter() - started,
            chars_per_sec=(self.timed_steps * self.chars_per_step / self.train_seconds
                           if self.train_seconds else 0.0),
            reason=self.reason,
        )

    def steps_until(self, target, stop):
        """Training steps until ``target`` or a stop signal, with the periodic work."""
        trainer, config, bar = self.trainer, self.trainer.config, self.bar
        window_chars, window_seconds = 0, 0.0
        last_postfix = 0.0
        first_step = True
        while trainer.iteration < target and not self.stop_asked(stop):
            step_start = time.perf_counter()
            self.stepping = True
            try:
                loss = trainer.step()
            except TrainingDiverged as error:
                raise self.diverged(error) from None
            self.stepping = False
            self.interval_sum += loss
            self.interval_steps += 1
            self.check_training(trainer.smooth_loss, "smoothed training loss")
            step_seconds = time.perf_counter() - step_start
            if first_step:  # it loads the compiled kernels: not training speed
                first_step = False
            else:
                self.train_seconds += step_seconds
                window_seconds += step_seconds
                window_chars += self.chars_per_step
                self.timed_steps += 1
            bar.update(1)
            chars_per_sec = window_chars / window_seconds if window_seconds > 0 else 0.0
            if (config.sample_length and config.sample_every
                    and trainer.iteration % config.sample_every == 0):
                text = trainer.sample(config.sample_length)
                self.say(f"----- sample at iteration {trainer.iteration} -----\n{text}\n-----")
            ending = self.ending(target)
            if trainer.iteration % config.eval_every == 0 or ending:
                self.eval_and_save(chars_per_sec)
                window_chars, window_seconds = 0, 0.0
                bar.set_postfix_str(self.postfix(chars_per_sec), refresh=False)
                ending = ending or self.out_of_patience()
            elif step_start - last_postfix > 0.5:
                last_postfix = step_start
                bar.set_postfix_str(self.postfix(chars_per_sec), refresh=False)
            if ending:
                break

    def ending(self, target):
        """Whether the run ends after the step just taken: ``target`` reached, or its time limit."""
        if self.trainer.iteration >= target:
            self.reason = "iterations"
        elif time.perf_counter() >= self.deadline:
            self.reason = "time limit"
        else:
            return False
        return True

    def out_of_patience(self):
        """Whether ``config.patience`` evaluations in a row brought no new best (the run ends)."""
        patience = self.trainer.config.patience
        if patience and self.stale >= patience:
            self.reason = "patience"
            return True
        return False

    def stop_asked(self, stop):
        """Whether a stop signal came or the stop event was set (which then counts as one)."""
        if self.stop_event is not None and self.stop_event.is_set():
            stop.raised = True
        return stop.raised

    def check_training(self, loss, what):
        """Stop the run (:meth:`diverged`) if the training ``loss`` blew up."""
        self._guarded(self.guard.check_training, loss, what)

    def _guarded(self, check, *args):
        """``check(*args)``, a blow-up turned into the run's error (:meth:`diverged`)."""
        try:
            check(*args)
        except TrainingDiverged as error:
            raise self.diverged(error) from None

    def eval_and_save(self, chars_per_sec):
        """The periodic work: validate, save, keep the best, add a history row, draw the plot."""
        # Not interruptible: a signal meanwhile takes effect after the save, so
        # every evaluation that was due is in the history (it is short).
        trainer = self.trainer
        self.clock()
        self.check_weights()  # before anything is written
        train_loss = nonnegative(self.interval_sum / self.interval_steps)
        self.check_training(train_loss, "mean training loss since the last evaluation")
        val = trainer.evaluate()
        if val is not None:
            self._guarded(self.guard.check_validation, val)
        self.val_loss = val
        improved = val is not None and (trainer.best_val_loss is None
                                        or val < trainer.best_val_loss)
        if val is not None:
            self.stale = 0 if improved else self.stale + 1
        previous_best = trainer.best_val_loss
        if improved:
            trainer.best_val_loss = val
        try:
            # First: whatever fails after it, the directory can be resumed.
            self.save()
        except BaseException:
            # A checkpoint saved after this failure must not claim a best
            # loss whose model is nowhere.
            trainer.best_val_loss = previous_best
            raise
        if improved:  # the state just saved; a failure here is repaired on resume
            self.write(self.files.best_path, lambda: trainer.save(self.files.best_path))
        rate = trainer.config.learning_rate_at(max(trainer.iteration - 1, 0))
        row = {
            "iteration": trainer.iteration,
            "train_loss": f"{train_loss:.6f}",
            "val_loss": "" if val is None else f"{val:.6f}",
            "val_bpc": "" if val is None else f"{val / math.log(2):.6f}",
            "chars_per_sec": f"{chars_per_sec:.0f}",
            "learning_rate": f"{rate:.6g}",
            "epoch": f"{self.epochs():.4f}",
        }
        self.write(self.files.history_path, lambda: self.files.add_row(row))
        self.interval_sum, self.interval_steps = 0.0, 0
        self.write(self.files.plot_path, lambda: self.files.plot(self.say))

    def epochs(self):
        """Count the passes over the training text so far, as a fraction."""
        streams = self.trainer.streams
        return streams.epoch + streams.position / (streams.chunks_per_epoch * streams.seq_length)

    def check_weights(self):
        """Stop the run (:meth:`diverged`) if a weight is not finite."""
        self._guarded(self.trainer.check_weights)

    def clock(self):
        """Bring the trainer's seconds up to now, for the checkpoint about to be written."""
        self.trainer.seconds = self.base_seconds + (time.perf_counter() - self.started)

    def save(self):
        """Save ``checkpoint.npz``, checked first; the trainer then continues that file."""
        self.clock()
        self.check_weights()
        if self.trainer.iteration and self.saved_iteration != self.trainer.iteration:
            self.check_training(self.trainer.smooth_loss, "smoothed training loss")
        path = self.files.checkpoint_path
        self.write(path, lambda: self.trainer.save(path))
        self.saved_iteration = self.trainer.iteration
        # The trainer's state now continues this checkpoint: running it again
        # into this directory (after a Ctrl-C, say) resumes the same run.
        self.trainer.own_checkpoint = file_identity(path)

    def write(self, path, save):
        """Call ``save()``, which writes ``path``; an OSError then names it and what is kept."""
        try:
            save()
        except OSError as error:
            if isinstance(error, _SaveError):
                raise
            if self.saved_iteration is None:
                kept = "no checkpoint was written"
            elif path == self.files.best_path:
                kept = (f"{self.files.checkpoint_path} (iteration {self.saved_iteration}) is "
                        f"complete, is the best model so far and resumes the run")
            else:
                kept = (f"{self.files.checkpoint_path} (iteration {self.saved_iteration}) is "
                        f"complete and resumes the run")
            reason = describe_os_error(error, with_name=False)
            raise _SaveError(error.errno, f"cannot be written ({reason}); {kept}",
                             path) from error

    def repair_best(self):
        """Make ``best.npz`` agree with a resumed checkpoint whose best was not saved.

        The checkpoint is saved first, ``best.npz`` (the same state) second: a
        failure between the two leaves a checkpoint claiming a best loss that
        ``best.npz`` does not hold.  When the checkpoint's own validation loss
        is that best, it is the best model and is copied; otherwise the run
        forgets the claim, so that ``best.npz`` is replaced at the next improvement.
        """
        trainer = self.trainer
        if trainer.best_val_loss is None:
            return
        try:
            best = load_checkpoint(self.files.best_path).best_val_loss
        except FileNotFoundError:
            best = math.nan
        except (OSError, CheckpointError):
            return  # not ours to judge: the next improvement replaces it
        if best <= trainer.best_val_loss:
            return
        if trainer.evaluate() == trainer.best_val_loss:
            self.write(self.files.best_path, lambda: trainer.save(self.files.best_path))
        else:
            trainer.best_val_loss = None if math.isnan(best) else best

    def save_if_possible(self):
        """Save after a failure outside the training step, when that can still be done.

        Failures to save (a full disk, weights gone non-finite) are swallowed:
        the caller re-raises the error that stopped the run, and the last
        checkpoint stays as it was.
        """
        if self.stepping or self.saved_iteration == self.trainer.iteration:
            return  # a step cut short may have updated the weights and not the rest
        try:
            self.save()
        except (OSError, TrainingDiverged):
            pass

    def postfix(self, chars_per_sec):
        """The progress bar's text: the losses and the speed."""
        parts = [f"loss={self.trainer.smooth_loss:.3f}"]
        if self.val_loss is not None:
            parts.append(f"val={self.val_loss:.3f}")
        parts.append(f"{chars_per_sec / 1000:.0f}k chars/s")
        return ", ".join(parts)

    def diverged(self, error):
        """``error`` told in terms of the run: what is kept on disk, and what to try."""
        if self.saved_iteration is None:
            kept = "no checkpoint was written"
        else:
            kept = (f"the last checkpoint ({self.files.checkpoint_path}, iteration "
                    f"{self.saved_iteration}) is kept as it was")
        rate = self.trainer.config.learning_rate_at(max(error.iteration - 1, 0))
        advice = f"try a smaller learning rate (now {rate:g})"
        if not self.trainer.config.clip:
            advice += " or turn gradient clipping on"
        detail = "; ".join(part for part in (error.detail, kept, advice) if part)
        return TrainingDiverged(error.iteration, error.loss, detail, error.what)
