"""The run loop (training/loop.py): what ``Trainer.run`` does between its first step and its end.

Evaluations, saves and history rows every ``eval_every`` iterations, samples
every ``sample_every``; the end at ``iterations`` or at ``time_limit``; a
blow-up (a non-finite loss or weight, a loss far above where it was) stops
the run keeping the last good files; a log that breaks or a disk that fills
stops it with what was saved still whole.  The directory's own rules are in
test_rundir.py, stop signals in test_signals.py.
"""

import io
import math
import os
import re

import numpy as np
import pytest
from helpers import PLOT, BrokenLog, assert_same_state, read_rows, state_of
from helpers import TRAIN_TEXT as TEXT
from helpers import small_config as small

from fastrnn.training import Trainer, TrainingConfig, TrainingDiverged
from fastrnn.training.checkpoint import load_checkpoint
from fastrnn.training.loop import evaluations_since_best

HUGE = 10**9  # iterations no test run reaches


def test_run_writes_checkpoints_history_and_plot(tmp_path, capsys):
    t = Trainer(TEXT, small(iterations=10, eval_every=4, sample_every=5))
    summary = t.run(tmp_path / "out", progress=False)
    out = tmp_path / "out"
    assert sorted(os.listdir(out)) == [".fastrnn.lock", "best.npz", "checkpoint.npz", "history.csv",
                                       *PLOT]
    rows = read_rows(out / "history.csv")
    assert [r["iteration"] for r in rows] == ["4", "8", "10"]  # every eval and at the end
    assert list(rows[0]) == ["iteration", "train_loss", "val_loss", "chars_per_sec", "val_bpc",
                             "learning_rate", "epoch"]
    for r in rows:
        assert float(r["val_bpc"]) == pytest.approx(float(r["val_loss"]) / math.log(2), rel=1e-5)
        assert float(r["chars_per_sec"]) > 0
    assert summary.iteration == 10
    assert summary.val_loss == pytest.approx(float(rows[-1]["val_loss"]), abs=1e-6)
    assert load_checkpoint(out / "checkpoint.npz").iteration == 10
    best = load_checkpoint(out / "best.npz")
    assert best.best_val_loss == pytest.approx(min(float(r["val_loss"]) for r in rows), abs=1e-6)
    if PLOT:
        assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    err = capsys.readouterr().err
    assert err.count("sample at iteration") == 2


@pytest.mark.parametrize("sample_every", [0, 3])
def test_sample_every_0_means_no_samples(tmp_path, sample_every):
    log = io.StringIO()
    config = TrainingConfig(hidden_size=8, iterations=6, eval_every=3, sample_every=sample_every)
    Trainer(TEXT, config).run(tmp_path, progress=False, log=log)
    samples = re.findall(r"----- sample at iteration (\d+) -----", log.getvalue())
    assert samples == ([] if sample_every == 0 else ["3", "6"])  # the positive control: 3


def test_train_loss_is_the_mean_over_the_interval_and_restarts_at_a_resume(tmp_path):
    config = TrainingConfig(hidden_size=8, seq_length=8, iterations=9, eval_every=3,
                            sample_every=0)
    t = Trainer(TEXT, config)
    losses = []
    original = t.step
    t.step = lambda: losses.append(original()) or losses[-1]
    t.run(tmp_path / "a", progress=False, log=io.StringIO())
    rows = read_rows(tmp_path / "a" / "history.csv")
    for row, start in zip(rows, (0, 3, 6), strict=True):
        assert float(row["train_loss"]) == pytest.approx(np.mean(losses[start:start + 3]),
                                                         abs=1e-6)
    # stopped at 4 and resumed: rows at 3 and 9 as before, the one at 6 averages 5 and 6
    Trainer(TEXT, TrainingConfig(**{**config.to_dict(), "iterations": 4})).run(
        tmp_path / "b", progress=False, log=io.StringIO())
    Trainer.from_checkpoint(tmp_path / "b", TEXT, iterations=9).run(
        tmp_path / "b", progress=False, log=io.StringIO())
    resumed = read_rows(tmp_path / "b" / "history.csv")
    assert [r["iteration"] for r in resumed] == ["3", "4", "6", "9"]
    assert resumed[0]["train_loss"] == rows[0]["train_loss"]
    assert resumed[-1]["train_loss"] == rows[-1]["train_loss"]
    assert float(resumed[2]["train_loss"]) == pytest.approx(np.mean(losses[4:6]), abs=1e-6)


def test_resume_with_nothing_left_to_do(tmp_path):
    devnull = io.StringIO()
    Trainer(TEXT, small(iterations=3)).run(tmp_path, progress=False, log=devnull)
    before = (tmp_path / "checkpoint.npz").read_bytes()
    summary = Trainer.from_checkpoint(tmp_path, TEXT).run(tmp_path, progress=False, log=devnull)
    assert summary.iteration == 3
    assert (tmp_path / "checkpoint.npz").read_bytes() == before
    with pytest.raises(ValueError, match="beyond"):
        Trainer.from_checkpoint(tmp_path, TEXT, iterations=2).run(tmp_path, progress=False)


# -- the time limit ------------------------------------------------------------------


def test_a_run_ends_at_its_time_limit_and_saves_as_at_its_end(tmp_path):
    config = TrainingConfig(hidden_size=12, seq_length=8, batch_size=2, iterations=HUGE,
                            eval_every=10**6, sample_length=0, val_fraction=0.1, time_limit=0.3)
    summary = Trainer(TEXT, config).run(tmp_path, progress=False, log=io.StringIO())
    assert 0 < summary.iteration < HUGE
    assert sorted(os.listdir(tmp_path)) == [".fastrnn.lock", "best.npz", "checkpoint.npz",
                                            "history.csv", *PLOT]
    assert [int(r["iteration"]) for r in read_rows(tmp_path / "history.csv")] == [summary.iteration]
    assert load_checkpoint(tmp_path / "checkpoint.npz").iteration == summary.iteration
    assert load_checkpoint(tmp_path / "best.npz").iteration == summary.iteration
    assert summary.val_loss is not None and summary.best_val_loss == summary.val_loss

    # The resumed run keeps no limit of its own: it runs to the iterations asked for.
    resumed = Trainer.from_checkpoint(tmp_path, TEXT, iterations=summary.iteration + 3)
    assert resumed.config.time_limit is None
    again = resumed.run(tmp_path, progress=False, log=io.StringIO())
    assert again.iteration == summary.iteration + 3
    rows = read_rows(tmp_path / "history.csv")
    assert [int(r["iteration"]) for r in rows] == [summary.iteration, summary.iteration + 3]

    # ... and a new limit may be given on resume.
    limited = Trainer.from_checkpoint(tmp_path, TEXT, iterations=HUGE, time_limit=0.2)
    assert limited.config.time_limit == 0.2
    third = limited.run(tmp_path, progress=False, log=io.StringIO())
    assert again.iteration < third.iteration < HUGE


# -- blow-ups ------------------------------------------------------------------------


def test_run_keeps_the_last_good_checkpoint_when_diverging(tmp_path):
    t = Trainer(TEXT, small(optimizer="sgd", clip=0.0, iterations=4, eval_every=4))
    t.run(tmp_path, progress=False, log=io.StringIO())
    before = {n: (tmp_path / n).read_bytes() for n in ("checkpoint.npz", "best.npz",
                                                       "history.csv")}
    t = Trainer.from_checkpoint(tmp_path, TEXT, learning_rate=1e308, iterations=100)
    kept = r"loss at iteration \d+ is nan; the last checkpoint .*iteration 4\) is kept as it was"
    with pytest.raises(TrainingDiverged, match=kept):
        t.run(tmp_path, progress=False, log=io.StringIO())
    for name, data in before.items():
        assert (tmp_path / name).read_bytes() == data, name


def test_run_never_saves_non_finite_weights(tmp_path):
    t = Trainer(TEXT, small(optimizer="sgd", learning_rate=1e308, clip=0.0, eval_every=1,
                            iterations=50))
    with pytest.raises(TrainingDiverged, match="try a smaller learning rate") as err:
        t.run(tmp_path / "fresh", progress=False, log=io.StringIO())
    assert "gradient clipping on" in str(err.value)
    assert not (tmp_path / "fresh" / "checkpoint.npz").exists()  # it diverged at once
    # A run with good checkpoints and history behind it: they stay finite.
    out = tmp_path / "run"
    Trainer(TEXT, small(optimizer="sgd", clip=0.0, eval_every=1, iterations=3)).run(
        out, progress=False, log=io.StringIO())
    t = Trainer.from_checkpoint(out, TEXT, learning_rate=1e308, iterations=50)
    with pytest.raises(TrainingDiverged) as err:
        t.run(out, progress=False, log=io.StringIO())
    ckpt = load_checkpoint(out / "checkpoint.npz")
    assert ckpt.iteration == 3 < err.value.iteration
    assert all(np.isfinite(w).all() for w in ckpt.parameters.values())
    rows = read_rows(out / "history.csv")
    assert [r["iteration"] for r in rows] == ["1", "2", "3"]
    for row in rows:
        assert math.isfinite(float(row["val_loss"]))
        assert math.isfinite(float(row["train_loss"]))


def test_save_time_check_catches_weights_that_overflowed(tmp_path):
    t = Trainer(TEXT, small(iterations=3, eval_every=2))
    original = t.step

    def step():
        loss = original()
        if t.iteration == 2:
            t.model.parameter_vector[0] = np.inf  # a finite loss, then an overflowing update
        return loss

    t.step = step
    with pytest.raises(TrainingDiverged, match="weights are not finite after iteration 2; "
                                               "no checkpoint was written"):
        t.run(tmp_path, progress=False, log=io.StringIO())
    assert not (tmp_path / "checkpoint.npz").exists()


def test_a_loss_back_above_the_uniform_guess_after_learning_is_a_blow_up(tmp_path):
    config = TrainingConfig(hidden_size=16, seq_length=8, batch_size=2, optimizer="sgd",
                            iterations=300, eval_every=100, sample_every=0, val_fraction=0.1)
    Trainer(TEXT, config).run(tmp_path, progress=False, log=io.StringIO())
    learned = load_checkpoint(tmp_path / "checkpoint.npz")
    uniform = math.log(learned.vocab.size)
    assert Trainer.from_checkpoint(learned, TEXT).smooth_loss < 0.9 * uniform
    before = {name: (tmp_path / name).read_bytes() for name in ("checkpoint.npz", "best.npz")}
    t = Trainer.from_checkpoint(tmp_path, TEXT, learning_rate=30.0, clip=0.0, iterations=400)
    with pytest.raises(TrainingDiverged, match=r"at iteration (\d+) is .*; above the uniform "
                       r"guess ln V = .*, after having been") as error:
        t.run(tmp_path, progress=False, log=io.StringIO())
    assert 300 < error.value.iteration < 400
    for name, data in before.items():
        assert (tmp_path / name).read_bytes() == data, name


def test_a_validation_loss_several_times_the_best_is_a_blow_up(tmp_path):
    t = Trainer(TEXT, TrainingConfig(hidden_size=8, iterations=4, eval_every=2, sample_every=0))
    t.evaluate = lambda: 0.5 if t.iteration < 4 else 2.0  # below ln V, 4 times the best
    with pytest.raises(TrainingDiverged, match="validation loss at iteration 4 .*above 3 times "
                                               "the best validation loss"):
        t.run(tmp_path, progress=False, log=io.StringIO())
    assert load_checkpoint(tmp_path / "checkpoint.npz").iteration == 2


# -- patience: an early stop ----------------------------------------------------------

# Validation losses by iteration (evaluations every 4): a best at 8, then four without a new
# best; a later value below every earlier one.
_SCRIPTED = {4: 1.3, 8: 1.1, 12: 1.2, 16: 1.15, 20: 1.25, 24: 1.12, 28: 0.9}


def _scripted(trainer):
    trainer.evaluate = lambda: _SCRIPTED.get(trainer.iteration, 0.8)
    return trainer


@pytest.mark.parametrize("patience, end, reason", [(3, 20, "patience"), (4, 24, "patience"),
                                                   (0, 40, "iterations")])
def test_patience_stops_after_that_many_evaluations_without_a_new_best(tmp_path, patience, end,
                                                                        reason):
    config = small(iterations=40, sample_every=0, patience=patience)
    summary = _scripted(Trainer(TEXT, config)).run(tmp_path, progress=False, log=io.StringIO())
    assert (summary.iteration, summary.reason) == (end, reason)  # patience 0: to the end
    assert summary.best_val_loss == (1.1 if patience else 0.8)
    rows = read_rows(tmp_path / "history.csv")
    assert [int(r["iteration"]) for r in rows] == list(range(4, end + 1, 4))
    # saved as at a normal end: the checkpoint is the last step, best.npz the best
    assert load_checkpoint(tmp_path / "checkpoint.npz").iteration == end
    best = load_checkpoint(tmp_path / "best.npz")
    assert (best.iteration, best.best_val_loss) == ((8, 1.1) if patience else (32, 0.8))


def test_a_resumed_run_goes_on_counting_from_its_history(tmp_path):
    _scripted(Trainer(TEXT, small(iterations=40, sample_every=0, patience=3))).run(
        tmp_path, progress=False, log=io.StringIO())  # stops at 20, three since the best
    assert evaluations_since_best(read_rows(tmp_path / "history.csv")) == 3
    again = _scripted(Trainer.from_checkpoint(tmp_path, TEXT))
    summary = again.run(tmp_path, progress=False, log=io.StringIO())
    assert (summary.iteration, summary.reason) == (24, "patience")  # the 4th without a best
    more = _scripted(Trainer.from_checkpoint(tmp_path, TEXT, patience=5))  # a schedule option
    summary = more.run(tmp_path, progress=False, log=io.StringIO())
    assert (summary.iteration, summary.reason) == (40, "iterations")  # 28 was a new best
    assert summary.best_val_loss == 0.8


def test_evaluations_since_best_counts_rows_after_the_first_lowest():
    rows = [{"val_loss": v} for v in ("1.5", "", "1.2", "1.3", "1.2", "1.4")]
    assert evaluations_since_best(rows) == 3  # a tie is no new best; empty cells do not count
    assert evaluations_since_best([]) == 0
    assert evaluations_since_best([{"val_loss": ""}]) == 0


# -- a log that breaks, a step that fails, a full disk --------------------------------


@pytest.mark.parametrize("progress", [False, True])
def test_a_log_that_breaks_stops_the_run_with_a_checkpoint(tmp_path, progress):
    t = Trainer(TEXT, small(iterations=10**6, eval_every=10**5, sample_every=3))
    with pytest.raises(BrokenPipeError):
        t.run(tmp_path, progress=progress, log=BrokenLog(lines=4))
    assert t.iteration >= 3
    ckpt = load_checkpoint(tmp_path / "checkpoint.npz")
    assert ckpt.iteration == t.iteration  # not one step is lost
    assert_same_state(state_of(Trainer.from_checkpoint(tmp_path, TEXT)), state_of(t))


def test_a_log_that_breaks_keeps_the_last_checkpoint_if_weights_went_bad(tmp_path):
    t = Trainer(TEXT, small(iterations=10**6, eval_every=2, sample_every=3, sample_length=5))
    original = t.sample

    def sample(length):
        text = original(length)
        t.model.parameter_vector[0] = np.nan  # after the save at iteration 2
        return text

    t.sample = sample
    with pytest.raises(BrokenPipeError):
        t.run(tmp_path, progress=False, log=BrokenLog(lines=0))
    assert load_checkpoint(tmp_path / "checkpoint.npz").iteration == 2


def test_a_failure_inside_a_step_saves_nothing_more(tmp_path):
    t = Trainer(TEXT, small(iterations=10**6, eval_every=2, sample_length=0))
    original = t.step

    def step():
        loss = original()  # as if cut short after the weights changed
        if t.iteration == 3:
            raise BrokenPipeError(32, "Broken pipe")
        return loss

    t.step = step
    with pytest.raises(BrokenPipeError):
        t.run(tmp_path, progress=False, log=io.StringIO())
    assert load_checkpoint(tmp_path / "checkpoint.npz").iteration == 2


def _run_until_the_disk_is_full(out, name, at):
    """Run a trainer whose ``at``-th save of ``name`` fails as on a full disk; return the error."""
    t = Trainer(TEXT, small(iterations=10**6, eval_every=2, sample_length=0))
    original, saves = t.save, []

    def save(path):
        if os.path.basename(path) == name:
            saves.append(path)
            if len(saves) == at:
                raise OSError(28, "No space left on device")  # a failed write names no file
        return original(path)

    t.save = save
    with pytest.raises(OSError) as err:
        t.run(out, progress=False, log=io.StringIO())
    assert err.value.filename == str(out / name)
    return str(err.value)


def test_a_failed_best_save_names_it_and_leaves_the_run_resumable(tmp_path):
    message = _run_until_the_disk_is_full(tmp_path, "best.npz", at=2)
    assert re.fullmatch(r".*best\.npz: cannot be written \(No space left on device\); .*"
                        r"checkpoint\.npz \(iteration 4\) is complete, is the best model.*",
                        message)
    ckpt = load_checkpoint(tmp_path / "checkpoint.npz")
    assert ckpt.iteration == 4 and load_checkpoint(tmp_path / "best.npz").iteration == 2
    # resuming repairs the pair: the checkpoint is the best model, so it becomes best.npz
    resumed = Trainer.from_checkpoint(tmp_path, TEXT, iterations=6)
    resumed.run(tmp_path, progress=False, log=io.StringIO())
    best = load_checkpoint(tmp_path / "best.npz")
    assert best.iteration in (4, 6) and best.best_val_loss <= ckpt.best_val_loss
    assert [r["iteration"] for r in read_rows(tmp_path / "history.csv")] == ["2", "6"]


def test_a_failed_checkpoint_save_names_it_and_writes_nothing_after_it(tmp_path):
    message = _run_until_the_disk_is_full(tmp_path, "checkpoint.npz", at=1)
    assert "checkpoint.npz: cannot be written" in message
    assert message.endswith("; no checkpoint was written")
    assert sorted(os.listdir(tmp_path)) == [".fastrnn.lock"]  # the directory can be reused
    Trainer(TEXT, small(iterations=2)).run(tmp_path, progress=False, log=io.StringIO())
    message = _run_until_the_disk_is_full(tmp_path / "b", "checkpoint.npz", at=2)
    assert "checkpoint.npz (iteration 2) is complete and resumes the run" in message
    assert load_checkpoint(tmp_path / "b" / "checkpoint.npz").iteration == 2
