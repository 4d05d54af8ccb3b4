"""Text from models and models on texts (inference.py): ``generate``, ``pieces``, ``evaluate``.

``generate`` primes the model with the prime's state and draws reproducibly;
``pieces`` draws the same text a piece at a time, each run with a generator
of its own; ``evaluate`` is the loss of one pass over a text in any chunks,
leaving the model as it was.  Their bounds on memory are in
tests/models/test_limits.py; ``fastrnn sample`` and ``fastrnn eval`` in tests/cli.
"""

import io
import math
import re

import numpy as np
import pytest
from helpers import KINDS, random_state, read_rows, twin_models
from helpers import TRAIN_TEXT as TRAINED_ON
from helpers import small_config as small

from fastrnn import LSTM, RNN, Trainer, TrainingConfig, Vocabulary, evaluate, load_model
from fastrnn.inference import generate, pieces, sample_seeds

TEXT = "the cat sat on the mat; the dog sat on the log.\n" * 7
LONG_TEXT = "the cat sat on the mat; the dog sat on the log.\n" * 40


# -- generate -------------------------------------------------------------------------


def test_generate_starts_with_the_prime(trained_run):
    model, vocab = load_model(trained_run)
    text = generate(model, vocab, 50, prime="café", seed=1)
    assert text.startswith("café") and len(text) == 54
    assert generate(model, vocab, 50, prime="café", seed=1) == text
    assert generate(model, vocab, 0, prime="ab") == "ab"
    assert len(generate(model, vocab, 30, seed=2)) == 30


def test_n_samples_are_a_reproducible_list_each_seeded_on_its_own(trained_run):
    model, vocab = load_model(trained_run)
    texts = generate(model, vocab, 40, prime="the ", seed=7, n=4)
    assert isinstance(texts, list) and len(texts) == 4
    assert all(t.startswith("the ") and len(t) == 44 for t in texts)
    assert len(set(texts)) == 4  # independent draws
    assert generate(model, vocab, 40, prime="the ", seed=7, n=4) == texts
    seeds = sample_seeds(7, 4)
    assert texts == [generate(model, vocab, 40, prime="the ", seed=s) for s in seeds]
    assert generate(model, vocab, 40, seed=7, n=1) == [generate(model, vocab, 40, seed=seeds[0])]
    assert len(set(generate(model, vocab, 40, n=3))) == 3  # unseeded: fresh seeds each
    assert generate(model, vocab, 40, seed=7) == generate(model, vocab, 40, seed=7, n=None)


def test_stop_ends_a_sample_just_before_the_stop_text(trained_run):
    model, vocab = load_model(trained_run)
    full = generate(model, vocab, 2000, prime="the ", seed=3)
    stop = next(s for s in ("at", "he", "e", "t") if s in full[4:])
    cut = generate(model, vocab, 2000, prime="the ", seed=3, stop=stop)
    assert cut == full[:4 + full[4:].index(stop)]  # the prime is not searched
    assert stop not in cut[4:]
    # held back across pieces of any size: the same text, the stop text never printed
    for size in (1, 2, 3, 7, 4096):
        parts = list(pieces(model, vocab, 2000, prime="the ", seed=3, piece=size, stop=stop))
        assert "".join(parts) == cut, size
    never = "\x00never"  # not in the vocabulary: the whole sample
    assert generate(model, vocab, 300, seed=3, stop=never) == generate(model, vocab, 300, seed=3)
    texts = generate(model, vocab, 300, seed=4, n=3, stop="\n")
    assert all("\n" not in t for t in texts)


@pytest.mark.parametrize("options, message", [
    ({"n": 0}, "n must be an integer >= 1, got 0"),
    ({"n": 1.5}, "n must be an integer"),
    ({"n": 10**7}, "n must be an integer <= 1,000,000"),
    ({"stop": ""}, "stop must be a non-empty text, got ''"),
    ({"stop": 5}, "stop must be"),
])
def test_bad_n_and_stop_are_refused(trained_run, options, message):
    model, vocab = load_model(trained_run)
    with pytest.raises(ValueError, match=re.escape(message)):
        generate(model, vocab, 10, **options)


def test_generate_primes_with_the_hidden_state_of_the_prime(trained_run):
    model, vocab = load_model(trained_run)
    prime = "the quick"
    _, hs, _ = model.forward(vocab.encode(prime[:-1]))
    expected = model.predict(int(vocab.encode(prime[-1])[0]), 20, temperature=0, h0=hs[-1])
    assert generate(model, vocab, 20, prime=prime, temperature=0) == prime + vocab.decode(expected)


def test_generate_with_a_prime_continues_from_the_primed_state():
    """generate() reads the prime with loss(); for an RNN that is forward()'s last state."""
    t = Trainer(TRAINED_ON, small())
    t.step()
    prime = "the quick"
    idx = t.vocab.encode(prime)
    _, hs, _ = t.model.forward(idx[:-1])
    expected = t.model.predict(int(idx[-1]), 20, seed=4, h0=hs[-1])
    kept = t.model.last_hidden
    assert generate(t.model, t.vocab, 20, prime=prime, seed=4) == prime + t.vocab.decode(expected)
    assert t.model.last_hidden is kept  # generate() leaves the model's state alone


@pytest.mark.parametrize("kwargs, message", [
    ({"prime": "ЖaΩ"}, r"the prime text holds 2 characters outside the vocabulary: 'Ω', 'Ж'"),
    ({"temperature": -1.0}, "temperature"),
    ({"length": -1}, "length"),
    ({"seed": -3}, "seed"),
    ({"prime": 5}, "prime must be a str"),
])
def test_generate_rejects(trained_run, kwargs, message):
    model, vocab = load_model(trained_run)
    with pytest.raises(ValueError, match=message):
        generate(model, vocab, **{"length": 5, **kwargs})


def test_generate_rejects_what_is_not_a_model(trained_run):
    _, vocab = load_model(trained_run)
    with pytest.raises(ValueError, match="model must be one of fastrnn's models"):
        generate(None, vocab, 5)


def test_generate_rejects_a_mismatched_vocabulary(trained_run):
    model, _ = load_model(trained_run)
    with pytest.raises(ValueError, match="vocabulary"):
        generate(model, Vocabulary("ab"), 5)
    with pytest.raises(ValueError, match="Vocabulary"):
        generate(model, "ab", 5)


# -- pieces ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [RNN, LSTM])
@pytest.mark.parametrize("options", [{}, {"temperature": 0}, {"top_k": 3, "top_p": 0.9},
                                     {"prime": "the cat sat"}])
def test_a_sample_in_pieces_is_the_sample_of_one_call(kind, options):
    vocab = Vocabulary.from_text(LONG_TEXT)
    model = kind(vocab.size, 16, vocab.size, seed=4)
    whole = generate(model, vocab, 300, seed=9, **options)
    assert "".join(pieces(model, vocab, 300, seed=9, piece=7, **options)) == whole
    if "prime" not in options:
        assert whole == vocab.decode(model.predict(vocab.encode("\n")[0], 300, seed=9,
                                                   **options))


def test_samples_taken_at_once_draw_from_generators_of_their_own():
    vocab = Vocabulary.from_text(LONG_TEXT)
    model = LSTM(vocab.size, 16, vocab.size, seed=4)
    whole = generate(model, vocab, 300, seed=9)
    runs = [pieces(model, vocab, 300, seed=9, piece=50) for _ in range(3)]
    taken = [[] for _ in runs]
    for _ in range(6):  # interleaved, with single calls in between
        for run, got in zip(runs, taken, strict=True):
            got.append(next(run))
        assert generate(model, vocab, 30, seed=9) == whole[:30]
    assert ["".join(got) for got in taken] == [whole] * 3


# -- evaluate -------------------------------------------------------------------------


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
