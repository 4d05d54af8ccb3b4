"""The seed example from the issue: train on "hello world", then sample.

    data = "hello world"; chars sorted; inputs data[:-1], targets data[1:]
    hidden 20, 1000 epochs of train(inputs, targets, 0.1)
    predict(char_to_ix['h'], 500) works
    greedy predict(char_to_ix['h'], 10, temperature=0) decodes to "ello world"
"""

import numpy as np
import pytest
from helpers import assert_params_close

import fastrnn
from fastrnn import reference

DATA = "hello world"
CHARS = sorted(set(DATA))
CHAR_TO_IX = {ch: i for i, ch in enumerate(CHARS)}
IX_TO_CHAR = dict(enumerate(CHARS))
INPUTS = [CHAR_TO_IX[ch] for ch in DATA[:-1]]
TARGETS = [CHAR_TO_IX[ch] for ch in DATA[1:]]


def _decode(indices):
    return "".join(IX_TO_CHAR[i] for i in indices)


def _trained(cls, seed, epochs=1000):
    model = cls(len(CHARS), 20, len(CHARS), seed=seed)
    losses = [model.train(INPUTS, TARGETS, 0.1) for _ in range(epochs)]
    return model, losses


def test_the_seed_indices_are_those_of_fastrnn_vocabulary():
    # The seed numbers characters in sorted order; so does the library's vocabulary, so a
    # model trained from Python on these indices reads the same text as the command line's.
    vocab = fastrnn.Vocabulary.from_text(DATA)
    assert vocab.chars == "".join(CHARS)
    assert vocab.encode(DATA[:-1]).tolist() == INPUTS
    assert vocab.encode(DATA[1:]).tolist() == TARGETS


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_hello_world_greedy_continuation(seed):
    model, losses = _trained(fastrnn.RNN, seed)
    assert losses[0] == pytest.approx(10 * np.log(8), rel=1e-3)  # uniform at the start
    assert losses[-1] < 0.05
    assert losses[-1] < losses[500] < losses[0]
    assert _decode(model.predict(CHAR_TO_IX["h"], 10, temperature=0)) == "ello world"


def test_gpt_is_the_rnn_class():
    # The seed's class name: the very same class, so everything tested of RNN holds for it.
    assert fastrnn.GPT is fastrnn.RNN


def test_hello_world_without_a_seed():
    model, losses = _trained(fastrnn.RNN, None)
    assert losses[-1] < 0.05
    assert _decode(model.predict(CHAR_TO_IX["h"], 10, temperature=0)) == "ello world"


def test_predict_500_characters():
    model, _ = _trained(fastrnn.RNN, 0)
    sample = model.predict(CHAR_TO_IX["h"], 500)
    assert len(sample) == 500
    assert all(type(i) is int and 0 <= i < len(CHARS) for i in sample)
    text = _decode(sample)
    assert len(text) == 500 and set(text) <= set(CHARS)
    # The model has learned the string: a sample is mostly "...o world world ...".
    # (a fixed seed keeps this deterministic; seeds 0-4 give 72-80 of at most 83)
    seeded = _decode(model.predict(CHAR_TO_IX["h"], 500, seed=1))
    assert seeded.count("world") >= 40
    assert seeded == _decode(model.predict(CHAR_TO_IX["h"], 500, seed=1))


def test_training_tracks_the_reference_for_1000_epochs():
    fast, fast_losses = _trained(fastrnn.RNN, 0)
    ref, ref_losses = _trained(reference.RNN, 0)
    np.testing.assert_allclose(fast_losses, ref_losses, rtol=1e-10, atol=1e-12)
    assert_params_close(fast, ref, rtol=1e-9, atol=1e-11)
    h = CHAR_TO_IX["h"]
    assert fast.predict(h, 10, temperature=0) == ref.predict(h, 10, temperature=0)
    assert fast.predict(h, 500, seed=5) == ref.predict(h, 500, seed=5)
    assert fast.predict(h, 300, seed=6, temperature=2.0) == ref.predict(
        h, 300, seed=6, temperature=2.0)
