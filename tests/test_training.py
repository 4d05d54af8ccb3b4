import dataclasses
import importlib.util
import io
import math
import os
import re
import signal
import sys
import threading

import numpy as np
import pytest
from helpers import read_rows

from fastrnn import RNN
from fastrnn.corpus import CorpusError
from fastrnn.training import (
    MODELS,
    OPTIMIZERS,
    Trainer,
    TrainingConfig,
    TrainingDiverged,
    TrainingInterrupted,
    generate,
    load_model,
)
from fastrnn.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from fastrnn.vocab import Vocabulary

# loss.png is written only where the optional matplotlib is installed
PLOT = ["loss.png"] if importlib.util.find_spec("matplotlib") else []

TEXT = "the quick brown fox jumps over the lazy dog. naïve café, 日本語! " * 40


def small(**overrides):
    options = dict(hidden_size=12, seq_length=8, batch_size=2, iterations=12, eval_every=4,
                   sample_every=6, sample_length=20, val_fraction=0.1)
    options.update(overrides)
    return TrainingConfig(**options)


def state_of(trainer):
    return (trainer.model.parameter_vector.copy(), trainer.model.pack_state(trainer.hidden).copy(),
            {k: v.copy() for k, v in trainer._optimizer.state.items()},
            trainer.streams.position, trainer.streams.epoch, trainer._loss_ema,
            trainer._rng.bit_generator.state)


def assert_same_state(a, b):
    assert a[0].tobytes() == b[0].tobytes()
    assert a[1].tobytes() == b[1].tobytes()
    assert a[2].keys() == b[2].keys()
    for k in a[2]:
        assert a[2][k].tobytes() == b[2][k].tobytes(), k
    assert a[3:] == b[3:]


def split_run_matches_whole_run(tmp_path, config):
    """Seven steps in one trainer, and three saved to c.npz then four resumed, agree."""
    one = Trainer(TEXT, config)
    for _ in range(7):
        one.step()
    one.sample(10)
    two = Trainer(TEXT, config)
    for _ in range(3):
        two.step()
    two.sample(10)
    two.save(tmp_path / "c.npz")
    three = Trainer.from_checkpoint(tmp_path / "c.npz", TEXT)
    assert three.iteration == 3
    for _ in range(4):
        three.step()
    assert_same_state(state_of(one), state_of(three))
    assert three.sample(40) == one.sample(40)
    return one, three


# -- the trainer ---------------------------------------------------------------------


def test_trainer_setup():
    t = Trainer(TEXT, small())
    assert t.vocab == Vocabulary.from_text(TEXT)
    assert t.model.Wxh.shape == (12, t.vocab.size)
    assert t.hidden.shape == (2, 12) and not t.hidden.any()
    assert t.iteration == 0 and math.isnan(t.smooth_loss)
    n_val = round(len(TEXT) * 0.1)
    assert t.streams.parts.shape == (2, (len(TEXT) - n_val) // 2)


def test_first_step_is_clip_then_the_optimizer_on_the_model_gradients():
    t = Trainer(TEXT, small(optimizer="adagrad", clip=0.01))
    twin = RNN(t.vocab.size, 12, t.vocab.size, seed=0)
    np.testing.assert_array_equal(twin.parameter_vector, t.model.parameter_vector)
    x, y = t.streams.chunk()
    loss, _ = twin.gradients(x, y, np.zeros((2, 12)))
    g = np.clip(twin.gradient_vector, -0.01, 0.01)
    expected = twin.parameter_vector - 0.1 * g / np.sqrt(g * g + 1e-8)
    assert t.step() == pytest.approx(loss / 8)
    np.testing.assert_allclose(t.model.parameter_vector, expected, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(t.hidden, twin.last_hidden, rtol=1e-13)
    assert t.smooth_loss == pytest.approx(loss / 8)  # bias-corrected from the first step


def test_hidden_state_is_carried_and_reset_when_the_streams_wrap():
    t = Trainer("abcdefghij" * 3, TrainingConfig(hidden_size=4, seq_length=4, batch_size=1,
                                                  val_fraction=0))
    assert t.streams.chunks_per_epoch == 7  # (30 - 1) // 4
    for _ in range(6):
        t.step()
        assert t.hidden.any()
    t.step()  # the seventh chunk ends the pass
    assert t.streams.position == 0 and t.streams.epoch == 1
    assert not t.hidden.any()


def test_loss_goes_down_on_a_learnable_text():
    t = Trainer("abcdefgh" * 200, small(hidden_size=16, val_fraction=0.1, batch_size=1))
    before = t.evaluate()
    assert before == pytest.approx(math.log(8), rel=0.01)  # uniform at first
    for _ in range(300):
        t.step()
    assert t.evaluate() < 0.1 * before
    assert t.smooth_loss < 0.3 * before


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_learns(optimizer):
    t = Trainer("0123456789" * 100, small(optimizer=optimizer, hidden_size=16, batch_size=1))
    before = t.evaluate()
    for _ in range(150):
        t.step()
    assert t.evaluate() < 0.7 * before


def test_evaluate_equals_one_pass_over_the_validation_text():
    text = "".join(chr(97 + i % 7) for i in range(0, 5000, 3))
    t = Trainer(text, TrainingConfig(hidden_size=8, seq_length=5, val_fraction=0.2))
    for _ in range(20):
        t.step()
    val = t.vocab.encode(text)[-round(len(text) * 0.2):]
    one_pass = t.model.loss(val[:-1][None, :], val[1:][None, :]) / (len(val) - 1)
    assert t.evaluate() == pytest.approx(one_pass, rel=1e-12)


def test_no_validation_data():
    t = Trainer(TEXT, small(val_fraction=0))
    assert t.evaluate() is None


def test_sample_is_reproducible_and_uses_the_trainer_rng():
    t = Trainer(TEXT, small())
    a = t.sample(30, seed=5)
    assert a == t.sample(30, seed=5) and len(a) == 30
    assert set(a) <= set(t.vocab.chars)
    state = t._rng.bit_generator.state
    t.sample(10)
    assert t._rng.bit_generator.state != state
    assert t.sample(0) == ""


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("ab" * 5, "too short"),
])
def test_trainer_rejects_texts(text, message):
    with pytest.raises(ValueError, match=message):
        Trainer(text, small())


def test_trainer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="TrainingConfig"):
        Trainer(TEXT, {"hidden_size": 3})
    with pytest.raises(ValueError):
        Trainer(b"bytes", small())
    with pytest.raises(CorpusError):
        Trainer("ab" * 5, small())


# -- checkpoints and resuming --------------------------------------------------------


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_resume_is_bit_identical(tmp_path, optimizer):
    one, three = split_run_matches_whole_run(tmp_path, small(optimizer=optimizer, lr_decay=0.9,
                                                             lr_decay_every=2))
    assert three.iteration == 7


def test_resume_across_a_wrap(tmp_path):
    config = TrainingConfig(hidden_size=6, seq_length=4, batch_size=2, val_fraction=0)
    text = "abcdefghijklmnopqrstuvwxyz" * 2
    one = Trainer(text, config)
    for _ in range(20):
        one.step()
    two = Trainer(text, config)
    for _ in range(5):  # 52 / 2 = 26 per stream: 6 chunks per pass, so this is mid-pass
        two.step()
    two.save(tmp_path / "c.npz")
    three = Trainer.from_checkpoint(tmp_path / "c.npz", text)
    for _ in range(15):
        three.step()
    assert three.streams.epoch == one.streams.epoch == 3
    assert_same_state(state_of(one), state_of(three))


def test_checkpoint_holds_the_weights_by_name(tmp_path):
    t = Trainer(TEXT, small())
    t.step()
    t.save(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:
        for name, value in t.model.parameters().items():
            np.testing.assert_array_equal(npz[name], value)
        assert str(npz["text_sha256"]) == t.text_sha256
        assert int(npz["iteration"]) == 1
        assert npz["hidden"].shape == (2, 12)
        assert npz["optimizer.mem"].shape == t.model.parameter_vector.shape


def test_resume_refuses_another_text(tmp_path):
    t = Trainer(TEXT, small())
    t.save(tmp_path / "c.npz")
    with pytest.raises(ValueError, match="not the one the checkpoint was trained on"):
        Trainer.from_checkpoint(tmp_path / "c.npz", TEXT + "x")


def test_resume_refuses_fixed_changes_and_applies_schedule_changes(tmp_path):
    t = Trainer(TEXT, small())
    t.save(tmp_path / "c.npz")
    with pytest.raises(ValueError, match="hidden_size is 12 in the checkpoint"):
        Trainer.from_checkpoint(tmp_path / "c.npz", TEXT, hidden_size=13)
    with pytest.raises(ValueError, match="unknown training option"):
        Trainer.from_checkpoint(tmp_path / "c.npz", TEXT, colour=1)
    same = Trainer.from_checkpoint(tmp_path / "c.npz", TEXT, hidden_size=12, learning_rate=0.5,
                                   iterations=99, clip=0.0)
    assert same.config.learning_rate == 0.5 and same.config.iterations == 99
    assert same.config.clip == 0.0


def test_from_checkpoint_accepts_a_directory(tmp_path):
    t = Trainer(TEXT, small())
    t.save(tmp_path / "checkpoint.npz")
    assert Trainer.from_checkpoint(tmp_path, TEXT).iteration == 0


def test_from_checkpoint_rejects_inconsistent_contents(tmp_path):
    t = Trainer(TEXT, small())
    ckpt = t.checkpoint()
    ckpt.parameters["Whh"] = np.zeros((3, 3))
    with pytest.raises(CheckpointError, match="Whh has shape"):
        Trainer.from_checkpoint(ckpt, TEXT)
    ckpt = t.checkpoint()
    ckpt.model_kind = "transformer"
    with pytest.raises(CheckpointError, match="unknown model kind"):
        Trainer.from_checkpoint(ckpt, TEXT)
    ckpt = t.checkpoint()
    ckpt.hidden = np.zeros((5, 12))
    with pytest.raises(CheckpointError, match="hidden state has shape"):
        Trainer.from_checkpoint(ckpt, TEXT)
    ckpt = t.checkpoint()
    ckpt.optimizer_state = {"m": np.zeros(3)}
    with pytest.raises(CheckpointError, match="optimizer state"):
        Trainer.from_checkpoint(ckpt, TEXT)
    ckpt = t.checkpoint()
    ckpt.position = 3
    with pytest.raises(CheckpointError, match="data position"):
        Trainer.from_checkpoint(ckpt, TEXT)
    ckpt = t.checkpoint()
    ckpt.rng_state = {"bit_generator": "MT19937"}
    with pytest.raises(CheckpointError, match="random generator"):
        Trainer.from_checkpoint(ckpt, TEXT)
    ckpt = t.checkpoint()
    ckpt.config = {**ckpt.config, "hidden_size": "big"}
    with pytest.raises(CheckpointError, match="configuration"):
        Trainer.from_checkpoint(ckpt, TEXT)
    ckpt = t.checkpoint()  # resumed, it would save an lstm checkpoint of rnn weights
    ckpt.config = {**ckpt.config, "model": "lstm"}
    with pytest.raises(CheckpointError, match="holds a rnn model, its config says 'lstm'"):
        Trainer.from_checkpoint(ckpt, TEXT)



def test_damaged_checkpoints_are_refused_before_any_allocation(tmp_path):
    t = Trainer(TEXT, small())
    ckpt = t.checkpoint()
    ckpt.model_args = {**ckpt.model_args, "hidden_dim": 10**7}  # a 10**14-element Whh
    with pytest.raises(CheckpointError, match="hidden_dim"):
        Trainer.from_checkpoint(ckpt, TEXT)
    ckpt = t.checkpoint()
    ckpt.model_args = {**ckpt.model_args, "output_dim": ckpt.model_args["output_dim"] + 1}
    with pytest.raises(CheckpointError, match="output_dim"):
        Trainer.from_checkpoint(ckpt, TEXT)
    ckpt = t.checkpoint()
    ckpt.parameters["Whh"] = np.full_like(ckpt.parameters["Whh"], np.nan)
    with pytest.raises(CheckpointError, match="Whh holds NaN"):
        Trainer.from_checkpoint(ckpt, TEXT)
    ckpt = t.checkpoint()
    ckpt.hidden = np.full_like(ckpt.hidden, np.inf)
    with pytest.raises(CheckpointError, match="hidden state holds NaN or infinite"):
        Trainer.from_checkpoint(ckpt, TEXT)
    ckpt = t.checkpoint()
    state = ckpt.rng_state
    ckpt.rng_state = {**state, "state": {**state["state"], "state": -(2**200)}}
    with pytest.raises(CheckpointError, match="random generator"):
        Trainer.from_checkpoint(ckpt, TEXT)
    ckpt = t.checkpoint()
    ckpt.model_args = {**ckpt.model_args, "num_layers": 10**10}
    with pytest.raises(CheckpointError, match="num_layers"):
        Trainer.from_checkpoint(ckpt, TEXT)
    # the same refusals reach load_model, which sampling uses
    ckpt = t.checkpoint()
    ckpt.parameters["Why"] = ckpt.parameters["Why"][:, :3].copy()
    save_checkpoint(tmp_path / "bad.npz", ckpt)
    with pytest.raises(CheckpointError, match="Why"):
        load_model(tmp_path / "bad.npz")

# -- divergence ----------------------------------------------------------------------


def test_non_finite_loss_stops_and_names_the_iteration():
    t = Trainer(TEXT, small(optimizer="sgd", learning_rate=1e308, clip=0.0))
    with pytest.raises(TrainingDiverged, match=r"the loss at iteration (\d+) is (nan|inf)") as err:
        for _ in range(50):
            t.step()
    assert err.value.iteration == t.iteration + 1
    assert not math.isfinite(err.value.loss)


def test_save_refuses_non_finite_weights(tmp_path):
    t = Trainer(TEXT, small())
    t.model.parameter_vector[3] = np.inf
    with pytest.raises(TrainingDiverged, match="weights are not finite after iteration 0"):
        t.save(tmp_path / "c.npz")
    assert not (tmp_path / "c.npz").exists()


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


# -- whole runs ----------------------------------------------------------------------


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


def test_run_refuses_a_directory_holding_another_run(tmp_path):
    Trainer(TEXT, small(iterations=2)).run(tmp_path, progress=False, log=io.StringIO())
    with pytest.raises(FileExistsError, match="already holds a checkpoint"):
        Trainer(TEXT, small(iterations=2)).run(tmp_path, progress=False)


def test_run_refuses_another_runs_best_model_and_directories_where_files_go(tmp_path):
    (tmp_path / "best.npz").write_bytes(b"a model")  # its checkpoint was lost
    with pytest.raises(FileExistsError, match="best model of another run"):
        Trainer(TEXT, small(iterations=2)).run(tmp_path, progress=False, log=io.StringIO())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz"]
    assert (tmp_path / "best.npz").read_bytes() == b"a model"
    other = tmp_path / "other"
    Trainer(TEXT, small(iterations=2)).run(other, progress=False, log=io.StringIO())
    with pytest.raises(FileExistsError, match="best model of another run"):  # resumed elsewhere
        Trainer.from_checkpoint(other, TEXT, iterations=4).run(tmp_path, progress=False)
    assert (tmp_path / "best.npz").read_bytes() == b"a model"
    for name in ("checkpoint.npz", "best.npz", "history.csv", "loss.png"):
        out = tmp_path / name.replace(".", "_")
        (out / name).mkdir(parents=True)
        with pytest.raises(FileExistsError, match=f"{name} is a directory"):
            Trainer(TEXT, small(iterations=2)).run(out, progress=False, log=io.StringIO())
        assert [p.name for p in out.iterdir()] == [name]


@pytest.mark.parametrize("damage", [b"iteration,train_loss\n4," + b"x" * 200_000 + b"\n",
                                    b"iteration,train_loss\n\xff\xfe4,1.0\n"])
def test_resume_refuses_an_unreadable_history_and_changes_nothing(tmp_path, damage):
    Trainer(TEXT, small(iterations=4, eval_every=2)).run(tmp_path, progress=False,
                                                         log=io.StringIO())
    (tmp_path / "history.csv").write_bytes(damage)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    t = Trainer.from_checkpoint(tmp_path, TEXT, iterations=8)
    with pytest.raises(ValueError, match="history.csv is not a readable history"):
        t.run(tmp_path, progress=False, log=io.StringIO())
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files


class _BrokenLog(io.StringIO):
    """A log whose reader goes away after ``lines`` writes (``... 2>&1 | head``)."""

    def __init__(self, lines):
        super().__init__()
        self.left = lines

    def write(self, text):
        if self.left == 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.left -= 1
        return super().write(text)


@pytest.mark.parametrize("progress", [False, True])
def test_a_log_that_breaks_stops_the_run_with_a_checkpoint(tmp_path, progress):
    t = Trainer(TEXT, small(iterations=10**6, eval_every=10**5, sample_every=3))
    with pytest.raises(BrokenPipeError):
        t.run(tmp_path, progress=progress, log=_BrokenLog(lines=4))
    assert t.iteration >= 3
    ckpt = load_checkpoint(tmp_path / "checkpoint.npz")
    assert ckpt.iteration == t.iteration  # not one step is lost
    assert_same_state(state_of(Trainer.from_checkpoint(tmp_path, TEXT)), state_of(t))


def test_a_checkpoint_remembers_its_file_through_replace(tmp_path):
    Trainer(TEXT, small(iterations=2, eval_every=2, sample_length=0)).run(
        tmp_path, progress=False, log=io.StringIO())
    path = str(tmp_path / "checkpoint.npz")
    ckpt = load_checkpoint(path)
    assert ckpt.origin[0] == path
    changed = dataclasses.replace(ckpt, config={**ckpt.config, "learning_rate": "fast"})
    assert changed.origin == ckpt.origin
    with pytest.raises(CheckpointError, match=f"^{re.escape(path)}: bad training configuration"):
        Trainer.from_checkpoint(changed, TEXT)
    in_memory = dataclasses.replace(changed, origin=None)  # continues no file
    with pytest.raises(CheckpointError, match="^checkpoint: bad training configuration"):
        Trainer.from_checkpoint(in_memory, TEXT)


def test_a_log_that_breaks_keeps_the_last_checkpoint_if_weights_went_bad(tmp_path):
    t = Trainer(TEXT, small(iterations=10**6, eval_every=2, sample_every=3, sample_length=5))
    original = t.sample

    def sample(length):
        text = original(length)
        t.model.parameter_vector[0] = np.nan  # after the save at iteration 2
        return text

    t.sample = sample
    with pytest.raises(BrokenPipeError):
        t.run(tmp_path, progress=False, log=_BrokenLog(lines=0))
    assert load_checkpoint(tmp_path / "checkpoint.npz").iteration == 2


def test_ctrl_c_with_a_broken_log_still_stops_after_a_whole_step(tmp_path):
    # The notice the Ctrl-C handler writes fails; the step must not stop half done.
    t = Trainer(TEXT, small(iterations=10**6, eval_every=10**5, sample_length=0))
    _sigint_during(t, "step", when=3)
    with pytest.raises(TrainingInterrupted):
        t.run(tmp_path, progress=False, log=_BrokenLog(lines=0))
    assert t.iteration == 3
    assert_same_state(state_of(Trainer.from_checkpoint(tmp_path, TEXT)), state_of(t))


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


def test_a_trainer_may_not_overwrite_a_newer_checkpoint_of_its_run(tmp_path):
    t = Trainer(TEXT, small(iterations=4, eval_every=2, sample_length=0))
    t.run(tmp_path / "a", progress=False, log=io.StringIO())
    later = Trainer.from_checkpoint(tmp_path / "a", TEXT, iterations=8)
    later.run(tmp_path / "a", progress=False, log=io.StringIO())
    t.config = small(iterations=6, eval_every=2, sample_length=0)
    with pytest.raises(FileExistsError, match="another run"):
        t.run(tmp_path / "a", progress=False, log=io.StringIO())
    assert load_checkpoint(tmp_path / "a" / "checkpoint.npz").iteration == 8
    # its own directory, renamed, is still its own; a vanished one is not an error
    (tmp_path / "a").rename(tmp_path / "b")
    later.config = small(iterations=10, eval_every=2, sample_length=0)
    later.run(tmp_path / "b", progress=False, log=io.StringIO())
    assert load_checkpoint(tmp_path / "b" / "checkpoint.npz").iteration == 10
    Trainer(TEXT, small(iterations=2)).run(tmp_path / "c", progress=False, log=io.StringIO())
    with pytest.raises(FileExistsError, match="another run"):
        later.run(tmp_path / "c", progress=False, log=io.StringIO())


def test_runs_saved_before_the_sample_length_cap_resume(tmp_path):
    ckpt = Trainer(TEXT, small()).checkpoint()
    ckpt.config = {**ckpt.config, "sample_length": 5_000_000}
    assert Trainer.from_checkpoint(ckpt, TEXT).config.sample_length == 1_000_000
    assert Trainer.from_checkpoint(ckpt, TEXT, sample_length=200).config.sample_length == 200


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


def test_run_resumes_and_trims_history_of_a_lost_future(tmp_path):
    devnull = io.StringIO()
    Trainer(TEXT, small(iterations=4, eval_every=2)).run(tmp_path, progress=False, log=devnull)
    with open(tmp_path / "history.csv", "a") as f:
        f.write("6,1.0,1.0,1,1.0,0.1,0.1\n7,1.0,")  # rows a crash left behind
    t = Trainer.from_checkpoint(tmp_path, TEXT, iterations=8)
    t.run(tmp_path, progress=False, log=devnull)
    assert [r["iteration"] for r in read_rows(tmp_path / "history.csv")] == ["2", "4", "6", "8"]


def test_run_without_matplotlib_says_how_to_get_plots(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    Trainer(TEXT, small(iterations=4)).run(tmp_path, progress=False)
    assert not (tmp_path / "loss.png").exists()
    assert 'pip install "fastrnn[plot]"' in capsys.readouterr().err


def test_run_shows_a_progress_bar(tmp_path, capsys):
    Trainer(TEXT, small(iterations=4, sample_length=0)).run(tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "4/4" in err and "loss=" in err and "val=" in err and "chars/s" in err


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


def test_a_rejected_run_leaves_the_directory_alone(tmp_path):
    devnull = io.StringIO()
    Trainer(TEXT, small(iterations=4, eval_every=2)).run(tmp_path, progress=False, log=devnull)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ValueError, match="beyond"):
        Trainer.from_checkpoint(tmp_path, TEXT, iterations=2).run(tmp_path, progress=False)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files
    with pytest.raises(ValueError, match="beyond"):
        Trainer.from_checkpoint(tmp_path, TEXT, iterations=2).run(tmp_path / "new" / "sub",
                                                                 progress=False)
    assert not (tmp_path / "new").exists()


def test_resume_with_nothing_left_to_do(tmp_path):
    devnull = io.StringIO()
    Trainer(TEXT, small(iterations=3)).run(tmp_path, progress=False, log=devnull)
    before = (tmp_path / "checkpoint.npz").read_bytes()
    summary = Trainer.from_checkpoint(tmp_path, TEXT).run(tmp_path, progress=False, log=devnull)
    assert summary.iteration == 3
    assert (tmp_path / "checkpoint.npz").read_bytes() == before
    with pytest.raises(ValueError, match="beyond"):
        Trainer.from_checkpoint(tmp_path, TEXT, iterations=2).run(tmp_path, progress=False)


# -- sampling from a checkpoint ------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    t = Trainer(TEXT, small(iterations=60, eval_every=60, sample_length=0, batch_size=1))
    t.run(out, progress=False, log=io.StringIO())
    return out


def test_load_model_from_file_or_directory(trained):
    model, vocab = load_model(trained)
    model2, _ = load_model(trained / "checkpoint.npz")
    assert isinstance(model, RNN) and vocab == Vocabulary.from_text(TEXT)
    np.testing.assert_array_equal(model.parameter_vector, model2.parameter_vector)


def test_generate_starts_with_the_prime(trained):
    model, vocab = load_model(trained)
    text = generate(model, vocab, 50, prime="café", seed=1)
    assert text.startswith("café") and len(text) == 54
    assert generate(model, vocab, 50, prime="café", seed=1) == text
    assert generate(model, vocab, 0, prime="ab") == "ab"
    assert len(generate(model, vocab, 30, seed=2)) == 30


def test_generate_primes_with_the_hidden_state_of_the_prime(trained):
    model, vocab = load_model(trained)
    prime = "the quick"
    _, hs, _ = model.forward(vocab.encode(prime[:-1]))
    expected = model.predict(int(vocab.encode(prime[-1])[0]), 20, temperature=0, h0=hs[-1])
    assert generate(model, vocab, 20, prime=prime, temperature=0) == prime + vocab.decode(expected)


@pytest.mark.parametrize("kwargs, message", [
    ({"prime": "ЖaΩ"}, r"the prime text holds 2 characters outside the vocabulary: 'Ω', 'Ж'"),
    ({"temperature": -1.0}, "temperature"),
    ({"length": -1}, "length"),
    ({"seed": -3}, "seed"),
    ({"prime": 5}, "prime must be a str"),
])
def test_generate_rejects(trained, kwargs, message):
    model, vocab = load_model(trained)
    with pytest.raises(ValueError, match=message):
        generate(model, vocab, **{"length": 5, **kwargs})


def test_generate_rejects_what_is_not_a_model(trained):
    _, vocab = load_model(trained)
    with pytest.raises(ValueError, match="model must be one of fastrnn's models"):
        generate(None, vocab, 5)


def test_generate_rejects_a_mismatched_vocabulary(trained):
    model, _ = load_model(trained)
    with pytest.raises(ValueError, match="vocabulary"):
        generate(model, Vocabulary("ab"), 5)
    with pytest.raises(ValueError, match="Vocabulary"):
        generate(model, "ab", 5)


def test_load_model_rejects_foreign_files(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(2))
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "x.npz")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.npz")


def test_save_then_save_checkpoint_again_is_byte_stable(tmp_path):
    t = Trainer(TEXT, small())
    t.step()
    t.save(tmp_path / "a.npz")
    save_checkpoint(tmp_path / "b.npz", load_checkpoint(tmp_path / "a.npz"))
    a, b = load_checkpoint(tmp_path / "a.npz"), load_checkpoint(tmp_path / "b.npz")
    assert a.config == b.config and a.rng_state == b.rng_state


def test_run_and_load_model_reject_bad_arguments(tmp_path):
    t = Trainer(TEXT, small())
    with pytest.raises(ValueError, match="out_dir must be a path"):
        t.run(None)
    with pytest.raises(ValueError, match="log must be a writable"):
        t.run(tmp_path, log="stderr")
    with pytest.raises(ValueError, match="path must be a path"):
        load_model(3)


def test_run_never_saves_non_finite_weights(tmp_path):
    t = Trainer(TEXT, small(optimizer="sgd", learning_rate=1e308, clip=0.0, eval_every=1,
                            iterations=50))
    with pytest.raises(TrainingDiverged, match="try a smaller learning rate") as err:
        t.run(tmp_path, progress=False, log=io.StringIO())
    assert "gradient clipping on" in str(err.value)
    if (tmp_path / "checkpoint.npz").exists():
        ckpt = load_checkpoint(tmp_path / "checkpoint.npz")
        assert ckpt.iteration < err.value.iteration
        assert all(np.isfinite(w).all() for w in ckpt.parameters.values())
    if (tmp_path / "history.csv").exists():  # written from the first evaluation on
        for row in read_rows(tmp_path / "history.csv"):
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


# -- the gated models ----------------------------------------------------------------


@pytest.mark.parametrize(("kind", "layers", "shape"),
                         [("lstm", 1, (2, 1, 2, 12)), ("lstm", 2, (2, 2, 2, 12)),
                          ("gru", 2, (2, 2, 12))])
def test_gated_models_train_and_resume_bit_identically(tmp_path, kind, layers, shape):
    config = small(model=kind, num_layers=layers, optimizer="adam", learning_rate=0.01)
    one, three = split_run_matches_whole_run(tmp_path, config)
    assert type(one.model) is MODELS[kind] and one.model.num_layers == layers
    assert one.model_args["num_layers"] == layers
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:
        assert npz["hidden"].shape == shape
        assert str(npz["model_kind"]) == kind
    assert math.isfinite(three.evaluate())
    model, vocab = load_model(tmp_path / "c.npz")
    assert type(model) is MODELS[kind] and model.num_layers == layers
    text = generate(model, vocab, 30, prime="the ", seed=3)
    assert text.startswith("the ") and len(text) == 34
    assert text == generate(model, vocab, 30, prime="the ", seed=3)


def test_gated_hidden_state_is_carried_and_reset_on_a_wrap():
    config = TrainingConfig(model="gru", num_layers=2, hidden_size=6, seq_length=4, batch_size=2,
                            val_fraction=0)
    t = Trainer("abcdefghijklmnopqrstuvwxyz" * 2, config)
    assert t.hidden.shape == (2, 2, 6) and not t.hidden.any()
    t.step()
    assert t.hidden.any()
    for _ in range(5):  # six chunks per pass: the sixth step wraps
        t.step()
    assert t.streams.epoch == 1 and not t.hidden.any()


def test_generate_with_a_prime_continues_from_the_primed_state():
    """generate() reads the prime with loss(); for an RNN that is forward()'s last state."""
    t = Trainer(TEXT, small())
    t.step()
    prime = "the quick"
    idx = t.vocab.encode(prime)
    _, hs, _ = t.model.forward(idx[:-1])
    expected = t.model.predict(int(idx[-1]), 20, seed=4, h0=hs[-1])
    kept = t.model.last_hidden
    assert generate(t.model, t.vocab, 20, prime=prime, seed=4) == prime + t.vocab.decode(expected)
    assert t.model.last_hidden is kept  # generate() leaves the model's state alone


def test_resume_refuses_another_number_of_layers(tmp_path):
    t = Trainer(TEXT, small(model="lstm", num_layers=2))
    t.step()
    t.save(tmp_path / "c.npz")
    with pytest.raises(ValueError, match="num_layers"):
        Trainer.from_checkpoint(tmp_path / "c.npz", TEXT, num_layers=1)


def test_a_loaded_checkpoint_resumes_its_own_file(tmp_path):
    Trainer(TEXT, small(iterations=2, eval_every=2)).run(tmp_path, progress=False,
                                                         log=io.StringIO())
    ckpt = load_checkpoint(tmp_path / "checkpoint.npz")
    t = Trainer.from_checkpoint(ckpt, TEXT, iterations=4)  # read once, still its own file
    t.run(tmp_path, progress=False, log=io.StringIO())
    assert load_checkpoint(tmp_path / "checkpoint.npz").iteration == 4
    ckpt.position = 3  # errors name the file the checkpoint came from
    with pytest.raises(CheckpointError, match=r"checkpoint\.npz: bad data position"):
        Trainer.from_checkpoint(ckpt, TEXT)


def test_check_run_refuses_what_run_would_without_touching_anything(tmp_path):
    Trainer(TEXT, small(iterations=4, eval_every=2)).run(tmp_path, progress=False,
                                                         log=io.StringIO())
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(FileExistsError, match="already holds a checkpoint of another run"):
        Trainer(TEXT, small()).check_run(tmp_path)
    with pytest.raises(ValueError, match="already at iteration 4, beyond the 2"):
        Trainer.from_checkpoint(tmp_path, TEXT, iterations=2).check_run(tmp_path)
    Trainer.from_checkpoint(tmp_path, TEXT, iterations=8).check_run(tmp_path)
    Trainer(TEXT, small()).check_run(tmp_path / "new")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files
    assert not (tmp_path / "new").exists()
