"""The errors of a run (training/errors.py): each one's message, attributes and base class.

The command line reads these attributes to say the same thing in terms of its
flags, so each is checked here by building the error directly; that the run
raises them where it should is tested with the module that raises them.
"""

import errno
import signal

import pytest

from fastrnn.training import checkpoint, config, errors, loop, rundir, signals, trainer


def test_each_error_is_importable_from_where_it_is_raised():
    assert checkpoint.CheckpointError is errors.CheckpointError
    assert config.FixedOptionError is errors.FixedOptionError
    assert rundir.AnotherRunError is errors.AnotherRunError
    assert rundir.DirectoryLockedError is errors.DirectoryLockedError
    assert rundir.TargetPassedError is errors.TargetPassedError
    assert signals.StopSignal is errors.StopSignal
    assert loop.TrainingDiverged is trainer.TrainingDiverged is errors.TrainingDiverged
    assert loop.TrainingInterrupted is errors.TrainingInterrupted
    assert sorted(errors.__all__) == sorted(
        name for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, BaseException))


def test_a_checkpoint_error_is_a_value_error():
    assert issubclass(errors.CheckpointError, ValueError)
    assert str(errors.CheckpointError("c.npz: damaged")) == "c.npz: damaged"


def test_a_fixed_option_error_names_the_option_and_both_values():
    err = errors.FixedOptionError("hidden_size", 12, 13)
    assert isinstance(err, ValueError)
    assert (err.name, err.stored, err.given) == ("hidden_size", 12, 13)
    assert str(err) == ("hidden_size is 12 in the checkpoint and a resumed run cannot change it "
                        "(got 13)")
    assert "'lstm'" in str(errors.FixedOptionError("model", "lstm", "gru"))  # values as repr


def test_training_diverged_says_which_loss_or_the_weights():
    err = errors.TrainingDiverged(7, float("nan"), detail="the last checkpoint is kept",
                                  what="validation loss")
    assert isinstance(err, FloatingPointError)
    assert (err.iteration, err.what, err.detail) == (7, "validation loss",
                                                     "the last checkpoint is kept")
    assert str(err) == ("training diverged: the validation loss at iteration 7 is nan; "
                        "the last checkpoint is kept")
    weights = errors.TrainingDiverged(3)
    assert weights.loss is None and weights.what == "loss"
    assert str(weights) == "training diverged: the weights are not finite after iteration 3"


def test_training_interrupted_carries_the_checkpoint_and_the_signal():
    err = errors.TrainingInterrupted(5, "run/checkpoint.npz")
    assert isinstance(err, KeyboardInterrupt)
    assert (err.iteration, err.checkpoint, err.signum) == (5, "run/checkpoint.npz",
                                                           signal.SIGINT)
    assert str(err) == ("training interrupted at iteration 5; checkpoint saved to "
                        "run/checkpoint.npz")
    assert errors.TrainingInterrupted(5, "c", signum=None).signum is None  # a stop event


def test_a_stop_signal_names_its_signal():
    err = errors.StopSignal(signal.SIGHUP)
    assert isinstance(err, KeyboardInterrupt) and err.signum == signal.SIGHUP
    assert str(err) == "stopped by SIGHUP"


def test_another_run_error_names_the_directory_and_what_to_do():
    err = errors.AnotherRunError("runs/a")
    assert isinstance(err, FileExistsError) and err.out_dir == "runs/a"
    assert str(err) == ("runs/a already holds a checkpoint of another run; resume it or train "
                        "into another directory")


@pytest.mark.parametrize("pid, holder", [(1234, "process 1234"), (None, "another process")])
def test_a_locked_directory_error_names_the_process_holding_it(pid, holder):
    err = errors.DirectoryLockedError("runs/a", pid, "runs/a/.fastrnn.lock")
    assert isinstance(err, BlockingIOError) and err.errno == errno.EAGAIN
    assert (err.out_dir, err.pid) == ("runs/a", pid)
    assert str(err) == (f"runs/a is in use: {holder} is training into it (it holds "
                        f"runs/a/.fastrnn.lock); wait for it to end or train into another "
                        f"directory")


def test_target_passed_says_where_the_run_is():
    err = errors.TargetPassedError(30, 5)
    assert isinstance(err, ValueError) and (err.iteration, err.target) == (30, 5)
    assert str(err) == "the run is already at iteration 30, beyond the 5 iterations asked for"
