"""``evaluate`` and ``fastrnn eval``: a model's loss on a text, read as one stream."""

import io
import json
import math

import numpy as np
import pytest
from helpers import KINDS, random_state, read_rows, twin_models

from fastrnn import LSTM, RNN, Trainer, TrainingConfig, Vocabulary, evaluate, load_model
from fastrnn.cli import main
from fastrnn.training.checkpoint import Checkpoint, save_checkpoint

TEXT = "the cat sat on the mat; the dog sat on the log.\n" * 7


def _model(kind, vocab, seed=3):
    fast, _ = twin_models(kind, vocab.size, 6, vocab.size, 1 if kind == "rnn" else 2, rng=seed,
                          scale=0.6)
    return fast


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk_length", [1, 7, 50, 10_000])
def test_evaluate_is_the_loss_of_one_pass_in_any_chunks(kind, chunk_length):
    """Chunks with the state carried give the loss of the whole text in one call."""
    vocab = Vocabulary.from_text(TEXT)
    model = _model(kind, vocab)
    ids = vocab.encode(TEXT)
    whole = model.loss(ids[:-1], ids[1:]) / (len(ids) - 1)
    result = evaluate(model, vocab, TEXT, chunk_length=chunk_length)
    assert result.loss_nats == pytest.approx(whole, rel=1e-12)
    assert result.bits_per_char == pytest.approx(whole / math.log(2), rel=1e-12)
    assert result.characters == len(TEXT)


def test_evaluate_leaves_the_model_as_it_was():
    vocab = Vocabulary.from_text(TEXT)
    model = _model("lstm", vocab)
    h0 = random_state("lstm", np.random.default_rng(0), 2, None, 6)
    model.last_hidden = h0
    params = model.parameter_vector.copy()
    first = evaluate(model, vocab, TEXT, chunk_length=9)
    assert model.last_hidden is h0
    np.testing.assert_array_equal(model.parameter_vector, params)
    assert evaluate(model, vocab, TEXT, chunk_length=9) == first


def test_evaluate_two_characters():
    vocab = Vocabulary("ab")
    model = RNN(2, 3, 2, seed=0)
    ids = vocab.encode("ab")
    assert evaluate(model, vocab, "ab").loss_nats == pytest.approx(model.loss(ids[:1], ids[1:]))


@pytest.mark.parametrize(("call", "message"), [
    (lambda m, v: evaluate(m, v, "the cat ate a fish"), "holds 2 characters outside the "
                                                        "vocabulary: 'f', 'i'"),
    (lambda m, v: evaluate(m, v, "xyz!", name="notes.txt"), "notes.txt holds 4 characters"),
    (lambda m, v: evaluate(m, v, "t"), "the text has 1 character: scoring needs at least 2"),
    (lambda m, v: evaluate(m, v, ""), "the text has 0 characters"),
    (lambda m, v: evaluate(m, v, b"the"), "text must be a str"),
    (lambda m, v: evaluate(m, v, TEXT, chunk_length=0), "chunk_length must be an integer >= 1"),
    (lambda m, v: evaluate(m, Vocabulary("ab"), TEXT), "the model reads"),
    (lambda m, v: evaluate("model", v, TEXT), "model must be one of fastrnn's models"),
])
def test_evaluate_errors(call, message):
    vocab = Vocabulary.from_text(TEXT)
    with pytest.raises(ValueError, match=message):
        call(_model("rnn", vocab), vocab)


# -- fastrnn eval --------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory holding checkpoint.npz of a small LSTM, and the model itself."""
    vocab = Vocabulary.from_text(TEXT)
    model = LSTM(vocab.size, 5, vocab.size, seed=4)
    out = tmp_path_factory.mktemp("run")
    ckpt = Checkpoint(model_kind="lstm", model_args={"input_dim": vocab.size, "hidden_dim": 5,
                                                     "output_dim": vocab.size, "num_layers": 1},
                      parameters=model.parameters(), vocab=vocab, config={}, iteration=0,
                      epoch=0, position=0, hidden=np.zeros((2, 1, 1, 5)), optimizer="sgd")
    save_checkpoint(out / "checkpoint.npz", ckpt)
    (out / "text.txt").write_text(TEXT, encoding="utf-8")
    return out, model, vocab


def _eval(capsys, *args):
    status = main(["eval", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_eval_prints_the_loss(run_dir, capsys):
    out, model, vocab = run_dir
    ids = vocab.encode(TEXT)
    want = model.loss(ids[:-1], ids[1:]) / (len(ids) - 1)
    status, stdout, stderr = _eval(capsys, out, out / "text.txt", "--json")
    assert status == 0 and stderr == ""
    result = json.loads(stdout)
    assert list(result) == ["loss_nats", "bits_per_char", "characters"]
    assert result["loss_nats"] == pytest.approx(want, rel=1e-12)
    assert result["bits_per_char"] == pytest.approx(want / math.log(2), rel=1e-12)
    assert result["characters"] == len(TEXT)
    # a directory means its checkpoint.npz; without --json, one readable line
    status, stdout, _ = _eval(capsys, out / "checkpoint.npz", out / "text.txt")
    assert status == 0
    assert stdout == (f"{want:.4f} nats ({want / math.log(2):.4f} bits) per character on "
                      f"{len(TEXT):,} characters of {out / 'text.txt'}\n")


@pytest.mark.parametrize(("make", "fragments"), [
    (lambda d: d / "missing.txt", ["cannot read the text file", "No such file"]),
    (lambda d: d, ["is a directory, not a text file"]),
    (lambda d: _write(d / "empty.txt", ""), ["empty.txt is empty"]),
    (lambda d: _write(d / "bom.txt", "\ufeff"),
     ["bom.txt holds only a UTF-8 byte-order mark: there is nothing to score"]),
    (lambda d: _write(d / "one.txt", "t"), ["one.txt has 1 character"]),
    (lambda d: _write(d / "new.txt", "the zebra quizzed"),
     ["new.txt holds 6 characters outside the vocabulary: 'b', 'i', 'q', 'r', 'u', 'z'"]),
])
def test_eval_errors_are_one_line(run_dir, tmp_path, capsys, make, fragments):
    out, _, _ = run_dir
    status, stdout, stderr = _eval(capsys, out, make(tmp_path))
    assert status == 1 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("fastrnn: error: ")
    for fragment in fragments:
        assert fragment in stderr


def test_eval_checkpoint_errors_are_those_of_sample(run_dir, tmp_path, capsys):
    out, _, _ = run_dir
    status, _, stderr = _eval(capsys, tmp_path, out / "text.txt")
    assert status == 1 and f"{tmp_path} holds no checkpoint.npz" in stderr


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_a_perfect_prediction_scores_zero_not_minus_zero(tmp_path):
    # One symbol: every prediction is certain, and the rounding of log(1) must not show.
    text = "a" * 300
    trainer = Trainer(text, TrainingConfig(hidden_size=8, iterations=2, eval_every=2,
                                           sample_length=0))
    summary = trainer.run(tmp_path / "run", progress=False, log=io.StringIO())
    assert math.copysign(1.0, summary.train_loss) == 1.0 and summary.train_loss < 1e-12
    model, vocab = load_model(tmp_path / "run")
    result = evaluate(model, vocab, text)
    assert f"{result.loss_nats:.4f} {result.bits_per_char:.4f}" == "0.0000 0.0000"
    rows = read_rows(tmp_path / "run" / "history.csv")
    assert not rows[-1]["train_loss"].startswith("-")

