"""Every error a training run raises of its own, at the bottom of the training package.

They carry what the command line needs to say the same in terms of its flags
(an iteration, a directory, an option).  Each is also importable from the
module that raises it.
"""

import errno
import signal

__all__ = [
    "CheckpointError",
    "FixedOptionError",
    "TrainingDiverged",
    "TrainingInterrupted",
    "AnotherRunError",
    "DirectoryLockedError",
    "TargetPassedError",
    "StopSignal",
]


class CheckpointError(ValueError):
    """A file that is not a readable fastrnn checkpoint (damaged, truncated or foreign)."""


class FixedOptionError(ValueError):
    """A resumed run was asked to change an option fixed for the life of the run.

    Attributes
    ----------
    name : str
        The option (one of :data:`fastrnn.training.config.FIXED_OPTIONS`).
    stored : object
        Its value in the checkpoint.
    given : object
        The value asked for.
    """

    def __init__(self, name, stored, given):
        self.name, self.stored, self.given = name, stored, given
        super().__init__(f"{name} is {stored!r} in the checkpoint and a resumed run cannot "
                         f"change it (got {given!r})")


class TrainingDiverged(FloatingPointError):
    """The loss blew up (NaN, infinite or far above where it was); nothing was saved after it.

    Attributes
    ----------
    iteration : int
        The iteration (1-based) whose loss was not finite, or after which the
        weights were not.
    loss : float or None
        The loss, or None when it is the weights that are not finite.
    what : str
        Which loss: ``"loss"`` (training), ``"validation loss"``, ...
    detail : str
        Why it counts as a blow-up, and what was kept.
    """

    def __init__(self, iteration, loss=None, detail="", what="loss"):
        self.iteration, self.loss, self.what, self.detail = iteration, loss, what, detail
        if loss is None:
            message = f"training diverged: the weights are not finite after iteration {iteration}"
        else:
            message = f"training diverged: the {what} at iteration {iteration} is {loss}"
        super().__init__(message + (f"; {detail}" if detail else ""))


class TrainingInterrupted(KeyboardInterrupt):
    """Training was stopped (Ctrl-C, SIGTERM or SIGHUP) after a checkpoint was saved.

    Attributes
    ----------
    iteration : int
        The iteration the checkpoint holds.
    checkpoint : str
        Its path.
    signum : int or None
        The signal that stopped it (``signal.SIGINT`` for Ctrl-C); None when
        it was the ``stop`` event of :meth:`Trainer.run`.
    """

    def __init__(self, iteration, checkpoint, signum=signal.SIGINT):
        self.iteration = iteration
        self.checkpoint = checkpoint
        self.signum = signum
        super().__init__(f"training interrupted at iteration {iteration}; "
                         f"checkpoint saved to {checkpoint}")


class StopSignal(KeyboardInterrupt):
    """A second stop signal (``signum``): the run ends at once, keeping the last checkpoint."""

    def __init__(self, signum):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


class AnotherRunError(FileExistsError):
    """The directory holds a checkpoint that the trainer did not load or save last.

    Attributes
    ----------
    out_dir : str
        The run directory, which the run leaves as it was.
    """

    def __init__(self, out_dir):
        self.out_dir = out_dir
        advice = "resume it or train into another directory"
        super().__init__(f"{out_dir} already holds a checkpoint of another run; {advice}")


class DirectoryLockedError(BlockingIOError):
    """Another process is training into the directory now.

    Attributes
    ----------
    out_dir : str
    pid : int or None
        The process holding the lock, when it could be read.
    lock_path : str
        The lock file, named in the message.
    """

    def __init__(self, out_dir, pid, lock_path):
        self.out_dir, self.pid = out_dir, pid
        holder = "another process" if pid is None else f"process {pid}"
        super().__init__(errno.EAGAIN, f"{out_dir} is in use: {holder} is training into it "
                                       f"(it holds {lock_path}); wait for it to end or train "
                                       f"into another directory")

    def __str__(self):
        return self.strerror


class TargetPassedError(ValueError):
    """The run is already beyond the number of iterations asked for.

    Attributes
    ----------
    iteration : int
        Where the run is.
    target : int
        The iterations asked for.
    """

    def __init__(self, iteration, target):
        self.iteration, self.target = iteration, target
        super().__init__(f"the run is already at iteration {iteration}, beyond the {target} "
                         f"iterations asked for")
