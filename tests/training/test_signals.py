"""Stop signals, the progress bar and the log (training/signals.py), and a run they stop.

:class:`StopFlag` turns the first SIGINT, SIGTERM or SIGHUP into a stop after
the step in progress, with a checkpoint, and a second one into an immediate
stop that keeps the last checkpoint; the run's handlers are gone afterwards.
Here the signals are sent to this process; what the command line does with
them (its exit status, the resume command it prints) is in tests/cli.
"""

import io
import os
import signal
import threading

import pytest
from helpers import TRAIN_TEXT as TEXT
from helpers import BrokenLog, assert_same_state, read_rows, state_of
from helpers import small_config as small

from fastrnn.training import Trainer, TrainingInterrupted
from fastrnn.training.checkpoint import load_checkpoint
from fastrnn.training.signals import STOP_SIGNALS, StopFlag, StopSignal

# -- StopFlag -------------------------------------------------------------------------


def test_stop_signals_are_ctrl_c_sigterm_and_sighup():
    assert set(STOP_SIGNALS) == {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_the_first_signal_raises_the_flag_and_the_second_stops_at_once(signum):
    said = []
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    with StopFlag(True, said.append) as flag:
        assert all(signal.getsignal(s) != before[s] for s in STOP_SIGNALS)
        os.kill(os.getpid(), signum)
        assert flag.raised and flag.signum == signum
        again = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        assert said == [f"stopping after this step to save a checkpoint ({again} again: stop "
                        f"now, keeping the last checkpoint)"]
        with pytest.raises(StopSignal, match=f"stopped by {signal.Signals(signum).name}") as err:
            os.kill(os.getpid(), signum)
        assert err.value.signum == signum
        # the second signal gave the handlers back at once
        assert {s: signal.getsignal(s) for s in STOP_SIGNALS} == before
    assert {s: signal.getsignal(s) for s in STOP_SIGNALS} == before


def test_a_flag_that_is_not_enabled_leaves_the_signals_alone():
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    with StopFlag(False, print) as flag:
        assert {s: signal.getsignal(s) for s in STOP_SIGNALS} == before
    assert not flag.enabled and not flag.raised
    # nor can it be enabled outside the main thread
    flags = []
    worker = threading.Thread(target=lambda: flags.append(StopFlag(True, print)))
    worker.start()
    worker.join()
    assert not flags[0].enabled
    assert StopFlag(True, print).enabled  # the positive control, in the main thread


def test_a_notice_that_cannot_be_written_still_raises_the_flag():
    def gone(message):
        raise BrokenPipeError(32, "Broken pipe")

    with StopFlag(True, gone) as flag:
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag.raised and flag.signum == signal.SIGTERM


# -- a run that is stopped -----------------------------------------------------------


def _sigint_during(obj, name, when, signals=1, from_thread=False):
    """Wrap obj.name so that ``signals`` SIGINTs arrive during its call number ``when``.

    With ``from_thread`` the signal is sent from another thread and the call
    waits 0.2 s for it, as a Ctrl-C from the terminal would come.
    """
    original = getattr(obj, name)
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == when:
            for _ in range(signals):
                if from_thread:
                    threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGINT)).start()
                    threading.Event().wait(0.2)
                else:
                    os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)

    setattr(obj, name, wrapped)


def test_sigint_stops_cleanly_with_a_checkpoint(tmp_path):
    t = Trainer(TEXT, small(iterations=10**6, eval_every=10**5, sample_length=0))
    _sigint_during(t, "step", when=5, from_thread=True)  # as if Ctrl-C came mid-step
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when pytest runs as a background job
    with pytest.raises(TrainingInterrupted) as err:
        t.run(tmp_path, progress=False, log=io.StringIO())
    assert err.value.iteration == t.iteration >= 5
    assert signal.getsignal(signal.SIGINT) is before  # the run's handler is gone
    ckpt = load_checkpoint(tmp_path / "checkpoint.npz")
    assert ckpt.iteration == t.iteration
    again = Trainer.from_checkpoint(tmp_path, TEXT)
    assert_same_state(state_of(again), state_of(t))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_a_run_as_ctrl_c_does(tmp_path, signum):
    t = Trainer(TEXT, small(iterations=10**6, eval_every=10**5, sample_length=0))
    original, calls = t.step, []

    def step():
        calls.append(1)
        if len(calls) == 4:
            os.kill(os.getpid(), signum)
        return original()

    t.step = step
    before = signal.getsignal(signum)
    with pytest.raises(TrainingInterrupted) as err:
        t.run(tmp_path, progress=False, log=io.StringIO())
    assert err.value.signum == signum
    assert err.value.iteration == t.iteration == 4  # the step in progress finished
    assert signal.getsignal(signum) is before
    assert load_checkpoint(tmp_path / "checkpoint.npz").iteration == 4


def test_sigint_during_an_evaluation_still_records_it(tmp_path):
    t = Trainer(TEXT, small(iterations=20, eval_every=5, sample_length=0))
    _sigint_during(t.model, "loss", when=2)  # inside the evaluation at iteration 5
    log = io.StringIO()
    with pytest.raises(TrainingInterrupted) as err:
        t.run(tmp_path, progress=False, log=log)
    assert err.value.iteration == 5
    assert "stopping after this step" in log.getvalue()
    assert [r["iteration"] for r in read_rows(tmp_path / "history.csv")] == ["5"]
    assert load_checkpoint(tmp_path / "checkpoint.npz").iteration == 5
    # the resumed run evaluates at 10, 15 and 20: no evaluation is lost
    Trainer.from_checkpoint(tmp_path, TEXT).run(tmp_path, progress=False, log=io.StringIO())
    rows = read_rows(tmp_path / "history.csv")
    assert [r["iteration"] for r in rows] == ["5", "10", "15", "20"]


def test_second_sigint_stops_at_once_and_keeps_the_last_checkpoint(tmp_path):
    t = Trainer(TEXT, small(iterations=10**6, eval_every=3, sample_length=0))
    # both Ctrl-C inside one step, after the save at iteration 3
    _sigint_during(t, "step", when=5, signals=2)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt) as err:
        t.run(tmp_path, progress=False, log=io.StringIO())
    assert not isinstance(err.value, TrainingInterrupted)  # nothing saved after the 2nd
    assert signal.getsignal(signal.SIGINT) is before
    assert load_checkpoint(tmp_path / "checkpoint.npz").iteration == 3


def test_a_stop_event_set_from_another_thread_stops_with_a_checkpoint(tmp_path):
    t = Trainer(TEXT, small(iterations=10**6, eval_every=10**5, sample_length=0))
    stop = threading.Event()
    original = t.step

    def step():
        if t.iteration == 7:
            threading.Thread(target=stop.set).start()
            threading.Event().wait(0.2)  # the event is set mid-step
        return original()

    t.step = step
    with pytest.raises(TrainingInterrupted) as err:
        t.run(tmp_path, progress=False, log=io.StringIO(), stop=stop)
    assert err.value.signum is None
    assert err.value.iteration == t.iteration == 8  # the step in progress finished
    assert load_checkpoint(tmp_path / "checkpoint.npz").iteration == 8
    again = Trainer.from_checkpoint(tmp_path, TEXT)
    assert_same_state(state_of(again), state_of(t))
    with pytest.raises(ValueError, match="stop must be a threading.Event"):
        again.run(tmp_path, stop=True)


def test_ctrl_c_with_a_broken_log_still_stops_after_a_whole_step(tmp_path):
    # The notice the Ctrl-C handler writes fails; the step must not stop half done.
    t = Trainer(TEXT, small(iterations=10**6, eval_every=10**5, sample_length=0))
    _sigint_during(t, "step", when=3)
    with pytest.raises(TrainingInterrupted):
        t.run(tmp_path, progress=False, log=BrokenLog(lines=0))
    assert t.iteration == 3
    assert_same_state(state_of(Trainer.from_checkpoint(tmp_path, TEXT)), state_of(t))


def test_a_trainer_continues_its_own_run_after_ctrl_c(tmp_path):
    t = Trainer(TEXT, small(iterations=12, eval_every=4, sample_length=0))
    _sigint_during(t, "step", when=6)
    with pytest.raises(TrainingInterrupted):
        t.run(tmp_path, progress=False, log=io.StringIO())
    assert t.iteration == 6
    del t.step  # the plain method again
    t.run(tmp_path, progress=False, log=io.StringIO())  # the notebook cell run again
    assert load_checkpoint(tmp_path / "checkpoint.npz").iteration == 12
    assert [r["iteration"] for r in read_rows(tmp_path / "history.csv")] == ["4", "8", "12"]
    whole = Trainer(TEXT, small(iterations=12, eval_every=4, sample_length=0))
    whole.run(tmp_path / "whole", progress=False, log=io.StringIO())
    assert_same_state(state_of(whole), state_of(t))
    with pytest.raises(FileExistsError, match="another run"):  # a fresh trainer still may not
        Trainer(TEXT, small(iterations=12)).run(tmp_path, progress=False)


# -- the progress bar ----------------------------------------------------------------


def test_run_shows_a_progress_bar(tmp_path, capsys):
    Trainer(TEXT, small(iterations=4, sample_length=0)).run(tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "4/4" in err and "loss=" in err and "val=" in err and "chars/s" in err
