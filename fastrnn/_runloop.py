"""The loop of :meth:`fastrnn.training.Trainer.run`: steps, the periodic work, timing, saves.

Every ``eval_every`` iterations (and at the end) it evaluates, appends a history
row, saves ``best.npz`` when the validation loss improved, then
``checkpoint.npz``, then draws the plot; every ``sample_every`` iterations it
logs a sample.  A failure keeps the last good checkpoint, or saves the steps
taken when that is still safe.
"""

import math
import time

from fastrnn._rundir import RunDirectory, StopFlag, check_target, progress_bar
from fastrnn.checkpoint import file_identity
from fastrnn.training import RunSummary, TrainingDiverged, TrainingInterrupted

__all__ = ["RunLoop"]


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
        Turn Ctrl-C into a clean stop (see :class:`~fastrnn._rundir.StopFlag`).
    """

    def __init__(self, trainer, out_dir, progress, log, handle_sigint):
        self.trainer = trainer
        self.files = RunDirectory(out_dir)
        self.progress = progress
        self.log = log
        self.handle_sigint = handle_sigint
        self.saved_iteration = None
        self.stepping = False  # inside Trainer.step: its state may be half updated
        self.val_loss = None
        self.bar = None
        self.chars_per_step = trainer.config.batch_size * trainer.config.seq_length
        self.train_seconds = 0.0  # time in training steps only, for chars/sec
        self.timed_steps = 0

    def say(self, message):
        if self.bar is not None:
            self.bar.write(message, file=self.log)
        else:
            print(message, file=self.log)

    def train(self):
        """Claim the directory, train to the target, save; return the summary."""
        trainer = self.trainer
        target = trainer.config.iterations
        check_target(trainer.iteration, target)  # before anything in the directory is touched
        if self.files.claim(trainer._own_checkpoint, trainer.iteration):
            self.saved_iteration = trainer.iteration
        started = time.perf_counter()
        with StopFlag(self.handle_sigint, self.say) as stop, progress_bar(
            target, trainer.iteration, self.log, self.progress
        ) as bar:
            self.bar = bar
            try:
                self.steps_until(target, stop)
            except OSError:
                # The log or a file could not be written (the reader of a pipe
                # went away, a full disk): keep the steps taken so far.
                self.save_if_possible()
                raise
            if self.saved_iteration != trainer.iteration:  # interrupted, or nothing left to do
                self.save()
        self.bar = None
        if stop.raised:
            raise TrainingInterrupted(trainer.iteration, self.files.checkpoint_path)
        return RunSummary(
            iteration=trainer.iteration,
            train_loss=trainer.smooth_loss,
            val_loss=self.val_loss,
            best_val_loss=trainer.best_val_loss,
            checkpoint=self.files.checkpoint_path,
            seconds=time.perf_counter() - started,
            chars_per_sec=(self.timed_steps * self.chars_per_step / self.train_seconds
                           if self.train_seconds else 0.0),
        )

    def steps_until(self, target, stop):
        """Training steps until ``target`` or a Ctrl-C, with the periodic work."""
        trainer, config, bar = self.trainer, self.trainer.config, self.bar
        window_chars, window_seconds = 0, 0.0
        last_postfix = 0.0
        first_step = True
        while trainer.iteration < target and not stop.raised:
            step_start = time.perf_counter()
            self.stepping = True
            try:
                trainer.step()
            except TrainingDiverged as error:
                raise self.diverged(error) from None
            self.stepping = False
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
            if config.sample_length and trainer.iteration % config.sample_every == 0:
                text = trainer.sample(config.sample_length)
                self.say(f"----- sample at iteration {trainer.iteration} -----\n{text}\n-----")
            if trainer.iteration % config.eval_every == 0 or trainer.iteration == target:
                self.eval_and_save(chars_per_sec)
                window_chars, window_seconds = 0, 0.0
                bar.set_postfix_str(self.postfix(chars_per_sec), refresh=False)
            elif step_start - last_postfix > 0.5:
                last_postfix = step_start
                bar.set_postfix_str(self.postfix(chars_per_sec), refresh=False)

    def eval_and_save(self, chars_per_sec):
        # Not interruptible: a Ctrl-C meanwhile takes effect after the save, so
        # every evaluation that was due is in the history (it is short).
        trainer = self.trainer
        self.check_weights()  # before anything is written
        val = trainer._evaluate()
        if val is not None and not math.isfinite(val):
            raise self.diverged(TrainingDiverged(trainer.iteration, val, what="validation loss"))
        self.val_loss = val
        improved = val is not None and (trainer.best_val_loss is None
                                        or val < trainer.best_val_loss)
        previous_best = trainer.best_val_loss
        rate = trainer.config.learning_rate_at(max(trainer.iteration - 1, 0))
        self.files.add_row({
            "iteration": trainer.iteration,
            "train_loss": f"{trainer.smooth_loss:.6f}",
            "val_loss": "" if val is None else f"{val:.6f}",
            "val_bpc": "" if val is None else f"{val / math.log(2):.6f}",
            "chars_per_sec": f"{chars_per_sec:.0f}",
            "learning_rate": f"{rate:.6g}",
            "epoch": f"{self.epochs():.4f}",
        })
        if improved:  # first: a crash between the two saves must not lose the best state
            trainer.best_val_loss = val
            try:
                trainer.save(self.files.best_path)
            except BaseException:
                # A checkpoint saved after this failure must not claim a best
                # loss whose model is not in best.npz.
                trainer.best_val_loss = previous_best
                raise
        self.save()
        self.files.plot(self.say)

    def epochs(self):
        """Count the passes over the training text so far, as a fraction."""
        streams = self.trainer.streams
        return streams.epoch + streams.position / (streams.chunks_per_epoch * streams.seq_length)

    def check_weights(self):
        try:
            self.trainer._check_weights()
        except TrainingDiverged as error:
            raise self.diverged(error) from None

    def save(self):
        self.check_weights()
        self.trainer.save(self.files.checkpoint_path)
        self.saved_iteration = self.trainer.iteration
        # The trainer's state now continues this checkpoint: running it again
        # into this directory (after a Ctrl-C, say) resumes the same run.
        self.trainer._own_checkpoint = file_identity(self.files.checkpoint_path)

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
        parts = [f"loss={self.trainer.smooth_loss:.3f}"]
        if self.val_loss is not None:
            parts.append(f"val={self.val_loss:.3f}")
        parts.append(f"{chars_per_sec / 1000:.0f}k chars/s")
        return ", ".join(parts)

    def diverged(self, error):
        if self.saved_iteration is None:
            kept = "no checkpoint was written"
        else:
            kept = (f"the last checkpoint ({self.files.checkpoint_path}, iteration "
                    f"{self.saved_iteration}) is kept as it was")
        rate = self.trainer.config.learning_rate_at(max(error.iteration - 1, 0))
        advice = f"try a smaller learning rate (now {rate:g})"
        if not self.trainer.config.clip:
            advice += " or turn gradient clipping on"
        return TrainingDiverged(error.iteration, error.loss, f"{kept}; {advice}", error.what)


