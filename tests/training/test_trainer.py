"""Trainer (training/trainer.py): its steps, evaluation and samples, and resuming a checkpoint.

A step is the clip and the optimizer on the model's gradients, the hidden state
carried between chunks; a resumed trainer continues bit for bit what a whole
run would have done, and refuses a checkpoint whose run state does not fit
(the model's own refusals are in test_loading.py, the file's in test_checkpoint.py).
"""

import dataclasses
import io
import math
import re

import numpy as np
import pytest
from helpers import TRAIN_TEXT as TEXT
from helpers import assert_same_state, rewrite_npz, state_of
from helpers import small_config as small

from fastrnn import RNN
from fastrnn.corpus import CorpusError, fingerprint
from fastrnn.training import (
    MODELS,
    OPTIMIZERS,
    Trainer,
    TrainingConfig,
    TrainingDiverged,
    generate,
    load_model,
)
from fastrnn.training.checkpoint import CheckpointError, load_checkpoint
from fastrnn.vocab import Vocabulary


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


# -- steps, evaluation, samples -------------------------------------------------------


def test_trainer_setup():
    t = Trainer(TEXT, small())
    assert t.vocab == Vocabulary.from_text(TEXT)
    assert t.model.Wxh.shape == (12, t.vocab.size)
    assert t.hidden.shape == (2, 12) and not t.hidden.any()
    assert t.iteration == 0 and math.isnan(t.smooth_loss)
    n_val = round(len(TEXT) * 0.1)
    assert t.streams.parts.shape == (2, (len(TEXT) - n_val) // 2)


def test_the_corpus_a_text_was_read_from_is_carried_by_checkpoints(tmp_path):
    half = len(TEXT) // 2
    files = (("/texts/a.txt", "ab" * 32, half), ("/texts/b.txt", "cd" * 32, len(TEXT) - half))
    t = Trainer(TEXT, small(), source="/texts", corpus=files)
    assert t.corpus == files and t.checkpoint().corpus == files
    t.save(tmp_path / "c.npz")
    assert Trainer.from_checkpoint(tmp_path / "c.npz", TEXT).corpus == files
    assert Trainer(TEXT, small()).checkpoint().corpus == ()  # a text given as a string
    with pytest.raises(ValueError, match="the corpus's files hold 10 characters, the text"):
        Trainer(TEXT, small(), corpus=[("/a", "ab" * 32, 10)])
    with pytest.raises(ValueError, match="corpus must be a sequence of"):
        Trainer(TEXT, small(), corpus=[("/a", "ab" * 32)])


VAL = "a cat and a dog sat on a log; the mat!\n" * 5  # '!' is not in TEXT


def test_a_validation_text_replaces_the_held_out_fraction(tmp_path):
    t = Trainer(TEXT, small(val_fraction=0, batch_size=1), val_text=VAL, val_source="val.txt")
    assert "!" in t.vocab and t.val_size == len(VAL)
    assert t.streams.parts.size <= len(TEXT)  # the whole text trains
    model_loss = t.model.loss(t.vocab.encode(VAL[:-1]), t.vocab.encode(VAL[1:])) / (len(VAL) - 1)
    assert t.evaluate() == pytest.approx(model_loss, rel=1e-12)  # all of VAL, one stream
    t.save(tmp_path / "c.npz")
    assert load_checkpoint(tmp_path / "c.npz").validation == (
        "val.txt", fingerprint(VAL), len(VAL))
    again = Trainer.from_checkpoint(tmp_path / "c.npz", TEXT, val_text=VAL)
    assert again.validation == t.validation and again.evaluate() == t.evaluate()
    with pytest.raises(ValueError, match=r"this run validates on val.txt \(195 characters\): "
                                         r"give its val_text"):
        Trainer.from_checkpoint(tmp_path / "c.npz", TEXT)
    with pytest.raises(ValueError, match="this validation text is not the run's"):
        Trainer.from_checkpoint(tmp_path / "c.npz", TEXT, val_text=VAL + "x")
    Trainer(TEXT, small()).save(tmp_path / "held.npz")  # the control: a held-out fraction
    with pytest.raises(ValueError, match="holds out a fraction of its text for validation; it "
                                         "takes no val_text"):
        Trainer.from_checkpoint(tmp_path / "held.npz", TEXT, val_text=VAL)


@pytest.mark.parametrize("options, val_text, message", [
    ({}, VAL, "val_text replaces the held-out fraction of the text: give val_fraction=0"),
    ({"val_fraction": 0}, "a", "val_text must hold at least 2 characters"),
    ({"val_fraction": 0}, b"bytes", "val_text must be"),
    ({"val_fraction": 0, "patience": 2}, None, "patience 2 needs a validation text to watch: "
                                               "give val_fraction > 0 or a val_text"),
])
def test_bad_validation_texts_are_refused(options, val_text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Trainer(TEXT, small(**options), val_text=val_text)


def test_patience_watches_a_validation_text():
    assert Trainer(TEXT, small(val_fraction=0, patience=2), val_text=VAL).config.patience == 2


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


def test_run_rejects_bad_arguments(tmp_path):
    t = Trainer(TEXT, small())
    with pytest.raises(ValueError, match="out_dir must be a path"):
        t.run(None)
    with pytest.raises(ValueError, match="log must be a writable"):
        t.run(tmp_path, log="stderr")


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


def test_from_checkpoint_accepts_a_directory(tmp_path):
    t = Trainer(TEXT, small())
    t.save(tmp_path / "checkpoint.npz")
    assert Trainer.from_checkpoint(tmp_path, TEXT).iteration == 0


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


def test_runs_saved_before_the_sample_length_cap_resume(tmp_path):
    ckpt = Trainer(TEXT, small()).checkpoint()
    ckpt.config = {**ckpt.config, "sample_length": 5_000_000}
    assert Trainer.from_checkpoint(ckpt, TEXT).config.sample_length == 1_000_000
    assert Trainer.from_checkpoint(ckpt, TEXT, sample_length=200).config.sample_length == 200


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


# -- what a resume refuses -----------------------------------------------------------


def test_resume_refuses_another_text_naming_the_one_it_was_trained_on(tmp_path):
    t = Trainer(TEXT, small(), source="words.txt")
    t.save(tmp_path / "c.npz")
    with pytest.raises(ValueError, match="not the one the checkpoint was trained on") as err:
        Trainer.from_checkpoint(tmp_path / "c.npz", TEXT + "x")
    assert "(words.txt, " in str(err.value)


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


def test_resume_refuses_another_number_of_layers(tmp_path):
    t = Trainer(TEXT, small(model="lstm", num_layers=2))
    t.step()
    t.save(tmp_path / "c.npz")
    with pytest.raises(ValueError, match="num_layers"):
        Trainer.from_checkpoint(tmp_path / "c.npz", TEXT, num_layers=1)


@pytest.mark.parametrize("damage, message", [
    (lambda c: setattr(c, "hidden", np.zeros((5, 12))), "hidden state has shape"),
    (lambda c: setattr(c, "hidden", np.full_like(c.hidden, np.inf)),
     "hidden state holds NaN or infinite"),
    (lambda c: setattr(c, "optimizer_state", {"m": np.zeros(3)}), "optimizer state"),
    (lambda c: setattr(c, "position", 3), "data position"),
    (lambda c: setattr(c, "rng_state", {"bit_generator": "MT19937"}), "random generator"),
    (lambda c: setattr(c, "rng_state", {**c.rng_state,
                                        "state": {**c.rng_state["state"], "state": -(2**200)}}),
     "random generator"),
    (lambda c: setattr(c, "config", {**c.config, "hidden_size": "big"}), "configuration"),
    # resumed, it would save an lstm checkpoint of rnn weights
    (lambda c: setattr(c, "config", {**c.config, "model": "lstm"}),
     "holds a rnn model, its config says 'lstm'"),
], ids=["hidden-shape", "hidden-inf", "optimizer-state", "position", "rng-kind", "rng-state",
        "config-value", "config-model"])
def test_from_checkpoint_refuses_a_run_state_that_does_not_fit(damage, message):
    ckpt = Trainer(TEXT, small()).checkpoint()
    damage(ckpt)
    with pytest.raises(CheckpointError, match=message):
        Trainer.from_checkpoint(ckpt, TEXT)


@pytest.fixture
def saved32(tmp_path):
    """A float32 run's checkpoint after two steps (adam: every kind of optimizer state)."""
    trainer = Trainer(TEXT, TrainingConfig(hidden_size=8, iterations=4, eval_every=2,
                                           sample_length=0, dtype="float32", optimizer="adam"))
    trainer.step()
    trainer.step()
    (tmp_path / "run").mkdir()
    path = tmp_path / "run" / "checkpoint.npz"
    trainer.save(path)
    return path


@pytest.mark.parametrize("name, change", [
    ("optimizer.v", lambda v: -np.abs(v) - 1.0),  # a mean of squares: never negative
    ("optimizer.m", lambda v: np.full_like(v, np.nan)),
    ("optimizer.m", lambda v: np.full(v.shape, 1e39)),  # inf in float32
    ("loss_ema", lambda v: np.array(np.nan)),
])
def test_an_optimizer_state_or_smoothed_loss_that_cannot_be_right_is_refused(saved32, name,
                                                                            change):
    with np.load(saved32, allow_pickle=False) as npz:
        rewrite_npz(saved32, **{name: change(npz[name].astype(np.float64))})
    with pytest.raises(CheckpointError, match=f"{saved32}: .*{name.split('.')[-1]}"):
        Trainer.from_checkpoint(saved32, TEXT)


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
